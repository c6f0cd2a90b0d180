"""stream's Prometheus metrics."""

from prometheus_client import Counter, Gauge, Histogram

from chat_common.metrics import LATENCY_BUCKETS, with_labels

CONNECTIONS = Gauge("chat_stream_connections", "Open SSE connections.", multiprocess_mode="livesum")
SUBSCRIPTIONS = Gauge("chat_stream_subscribed_rooms", "Rooms with a Redis subscription.", multiprocess_mode="livesum")
CONNECTS = with_labels(
    Counter("chat_stream_connects_total", "SSE connections opened, by kind (fresh, resume, flask_sse).", ["kind"]),
    "fresh", "resume", "flask_sse",
)
DISCONNECTS = with_labels(
    Counter(
        "chat_stream_disconnects_total", "SSE connections ended, by reason (client, slow, drain, error, removed).",
        ["reason"]
    ),
    "client", "slow", "drain", "error", "removed",
)
CUT_OFF = Counter("chat_stream_clients_cut_off_total", "Clients disconnected because their buffer filled up.")
STREAMS_REFUSED = Counter(
    "chat_stream_opens_refused_total", "Streams refused because their address opened STREAM_OPENS_PER_IP this window."
)
OPEN_STREAMS_REFUSED = Counter(
    "chat_stream_open_streams_refused_total",
    "Streams refused because their address held STREAM_CONNECTIONS_PER_IP streams open already.",
)
RESUMES = with_labels(
    Counter("chat_stream_resumes_total", "Reconnects with a Last-Event-ID, by outcome (exact, reset).", ["outcome"]),
    "exact", "reset",
)
# label values; any other event is "other"
EVENT_KINDS = ("message", "delete", "edit", "reaction", "typing", "presence")
EVENTS_SENT = with_labels(
    Counter("chat_stream_events_sent_total", "Events written to client sockets, by event type.", ["event"]),
    *EVENT_KINDS, "other",
)
LIVE_RECEIVED = with_labels(
    Counter("chat_stream_live_received_total", "Events received from Redis pub/sub, by event type.", ["event"]),
    *EVENT_KINDS, "other",
)


def event_kind(event: str | None) -> str:
    """The ``event`` label of an SSE event type (a flask-sse publisher may name any type)."""
    event = event or "message"
    return event if event in EVENT_KINDS else "other"

DROPPED = Counter("chat_stream_live_dropped_total", "Pub/sub payloads refused (not flask-sse JSON, or unsafe fields).")
REDIS_RECONNECTS = Counter("chat_stream_redis_reconnects_total", "Times the pub/sub connection was re-established.")
HISTORY_READS = with_labels(
    Counter("chat_stream_history_reads_total", "History pages served, by source (redis, kafka).", ["source"]),
    "redis", "kafka",
)
SCROLLBACK_RECORDS = with_labels(
    Counter(
        "chat_stream_scrollback_records_read_total",
        "Kafka records read for history pages older than the Redis window, by way: index (the records the room's "
        "offset index names, and their close neighbours), scan (where the index does not reach yet), prefetch "
        "(the next older page read ahead after a page, into the worker's cache).",
        ["way"],
    ),
    "index", "scan", "prefetch",
)
SCROLLBACK_PREFETCH = with_labels(
    Counter(
        "chat_stream_scrollback_prefetch_total",
        "Reads ahead of a room's next older page after a history page, by how they ended: done (the page is in the "
        "worker's cache), busy (stopped: a page waited for a Kafka consumer, or none was free), client_limit (the "
        "client had read its share), failed.",
        ["outcome"],
    ),
    "done", "busy", "client_limit", "failed",
)
SCROLLBACK_CACHE = with_labels(
    Counter(
        "chat_stream_scrollback_cache_total",
        "Messages a history page older than the Redis window wanted, by where they came from: hit (the worker's "
        "cache of messages it read from Kafka), miss (read from Kafka for it).",
        ["result"],
    ),
    "hit", "miss",
)
SCROLLBACK_SECONDS = Histogram(
    "chat_stream_scrollback_seconds",
    "Time to read a history page's older messages from Kafka, waiting for a reader included.",
    buckets=LATENCY_BUCKETS,
)
SCROLLBACK_REFUSED = with_labels(
    Counter(
        "chat_stream_scrollback_refused_total",
        "History pages refused before reading Kafka, by reason: busy (no reader free in time), client_limit (429).",
        ["reason"],
    ),
    "busy", "client_limit",
)
FANOUT_SECONDS = Histogram(
    "chat_stream_fanout_seconds",
    "Time from receiving an event from Redis to writing it on a client socket.",
    buckets=LATENCY_BUCKETS,
)
DELIVERY_SECONDS = Histogram(
    "chat_delivery_latency_seconds",
    "End to end: from a message's ts (ingest's clock) to its write on a client socket.",
    buckets=LATENCY_BUCKETS,
)
