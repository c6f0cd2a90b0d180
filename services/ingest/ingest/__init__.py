"""ingest: validates a posted chat message, rate-limits its sender and produces it to Kafka.

It answers 201 only once Kafka has acknowledged the record (acks=all), with the record's
offset as the message id.
"""
