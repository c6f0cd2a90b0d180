"""Code shared by the ingest, bridge and stream services.

Nothing here knows what a service does: configuration helpers, the message schema
(the Kafka value, the Redis records, the SSE frames), JSON logging, JSON errors, the
operational endpoints and Prometheus helpers.
"""
