"""ingest's Prometheus metrics (HTTP request metrics come from chat_common.metrics)."""

from prometheus_client import Counter, Gauge, Histogram

from chat_common.metrics import LATENCY_BUCKETS, with_labels

MESSAGES_ACCEPTED = Counter("chat_ingest_messages_total", "Messages acknowledged by Kafka and answered 201.")
REJECTED = with_labels(
    Counter(
        "chat_ingest_rejected_total",
        "Requests refused, by error code (invalid_text, rate_limited, redis_unavailable, kafka_unavailable ...).",
        ["reason"],
    ),
    "invalid_room", "invalid_json", "invalid_body", "invalid_user", "invalid_text", "text_too_long",
    "invalid_client_id", "unsupported_media_type", "cross_origin", "name_taken", "rate_limited",
    "host_not_allowed", "redis_unavailable", "message_deleted", "invalid_emoji", "invalid_reply_to",
)
RATE_LIMITED = with_labels(
    Counter("chat_ingest_rate_limited_total", "Requests refused by a rate limit or budget, by scope.", ["scope"]),
    "user", "ip", "ip_bytes", "ip_typing", "ip_deletes", "ip_rooms", "ip_day", "ip_bytes_day", "user_reactions",
)
PRODUCE_SECONDS = Histogram(
    "chat_ingest_produce_duration_seconds",
    "Time from handing a record to the Kafka producer to its acknowledgement (acks=all).",
    buckets=LATENCY_BUCKETS,
)
PRODUCE_ERRORS = with_labels(
    Counter(
        "chat_ingest_produce_errors_total",
        "Records refused because Kafka did not acknowledge them in time or was unreachable, by error.",
        ["error"],
    ),
    "unreachable", "KafkaTimeoutError",
)
PRODUCER_CONNECTS = with_labels(
    Counter(
        "chat_ingest_producer_connects_total",
        "Kafka producers made (connected, the topic's metadata fetched), by what made one: a worker warming up"
        " (at start, or its readiness check) or a request that found none (after a failure): that request waits.",
        ["by"],
    ),
    "warm_up", "request",
)
REPLAYED = Counter("chat_ingest_replayed_total",
                   "Retried POSTs answered with the message already stored for their client_id.")
RATE_LIMIT_ERRORS = Counter(
    "chat_ingest_rate_limit_errors_total",
    "Requests refused (503) because Redis did not answer the budget check: never let through unchecked.",
)
# One node only: in cluster mode each admission call goes alone, by the cluster client.
ADMISSION_CALLS = Counter("chat_ingest_admission_calls_total",
                          "Admission calls (the Redis check before a request is produced) sent to Redis.")
ADMISSION_ROUND_TRIPS = Counter(
    "chat_ingest_admission_round_trips_total",
    "Round trips to Redis that carried admission calls: calls made while one is under way share the next.",
)
NAME_CHECK_ERRORS = Counter(
    "chat_ingest_name_check_errors_total",
    "Requests refused (503) because Redis did not answer the held-name check: never let through unchecked.",
)
DELETES = Counter("chat_ingest_deletes_total", "Tombstones acknowledged by Kafka: messages taken back (answered 204).")
DELETE_REPEATS = Counter("chat_ingest_delete_repeats_total",
                         "Deletes of a message already deleted: answered 204, nothing written.")
TYPING = Counter("chat_ingest_typing_total", "Typing signals published to a room's readers (never stored).")
CHANGES = with_labels(
    Counter("chat_ingest_changes_total",
            "Changes to messages acknowledged by Kafka, by kind: edit, reaction (added or taken back), reply "
            "(a post quoting another).", ["kind"]),
    "edit", "reaction", "reply",
)
CHANGE_REPEATS = with_labels(
    Counter("chat_ingest_change_repeats_total",
            "Edits to the same text and reactions already there (or already gone): answered, nothing written.",
            ["kind"]),
    "edit", "reaction",
)

# kafka-python's own producer metrics, as the client computes them (averages over its last
# minute or so), copied every KAFKA_CLIENT_EVERY_S; only with INGEST_KAFKA_CLIENT_METRICS=true.
KAFKA_CLIENT_METRICS = ("records-per-request-avg", "request-latency-avg", "record-queue-time-avg",
                        "batch-size-avg", "record-send-rate")
KAFKA_CLIENT = Gauge(
    "chat_ingest_kafka_client",
    "kafka-python's producer metrics per worker, by name (records-per-request-avg: records that shared a produce"
    " request; request-latency-avg and record-queue-time-avg in ms). Only with INGEST_KAFKA_CLIENT_METRICS=true.",
    ["metric"], multiprocess_mode="liveall",
)
