"""bridge's Prometheus metrics."""

from prometheus_client import Counter, Gauge, Histogram

from chat_common.metrics import LATENCY_BUCKETS, with_labels

CONSUMED = Counter("chat_bridge_messages_consumed_total", "Kafka records read from the chat topic.")
APPLIED = with_labels(
    Counter(
        "chat_bridge_messages_applied_total",
        "Records applied to Redis, by outcome: written (history + live), rebuilt (history only), "
        "replayed (already applied, skipped), duplicate (client_id seen before, skipped), invalid.",
        ["outcome"],
    ),
    "written", "rebuilt", "replayed", "duplicate", "invalid",
)
ERRORS = with_labels(
    Counter(
        "chat_bridge_errors_total", "Failures in the consume loop, by kind (kafka, redis, commit, other), and of the "
        "indexer (index).", ["kind"],
    ),
    "kafka", "redis", "commit", "other", "index",
)
DELETES_APPLIED = with_labels(
    Counter(
        "chat_bridge_deletes_applied_total",
        "Tombstones applied to Redis, by outcome: written (out of history + live delete event), rebuilt, replayed, "
        "duplicate (the message was deleted before).",
        ["outcome"],
    ),
    "written", "rebuilt", "replayed", "duplicate",
)
CHANGE_KINDS = ("edit", "reaction")
CHANGE_OUTCOMES = ("written", "rebuilt", "replayed", "duplicate")
CHANGES_APPLIED = Counter(
    "chat_bridge_changes_applied_total",
    "Edit and reaction records applied to Redis, by kind and outcome: written (folded into the message + live "
    "event), rebuilt, replayed, duplicate (its message was deleted, or the reaction was there or gone already).",
    ["kind", "outcome"],
)
for _kind in CHANGE_KINDS:  # a zero series for each (as with_labels does for one label)
    for _outcome in CHANGE_OUTCOMES:
        CHANGES_APPLIED.labels(_kind, _outcome)
APPLY_LATENCY = Histogram(
    "chat_bridge_kafka_to_redis_seconds",
    "Time from a record's Kafka timestamp to its publication in Redis.",
    buckets=LATENCY_BUCKETS,
)
BATCH_SECONDS = Histogram(
    "chat_bridge_batch_duration_seconds", "Time to apply one polled batch to Redis and commit it.",
    buckets=LATENCY_BUCKETS,
)
LAG = Gauge(
    "chat_bridge_consumer_lag", "Records behind the partition's end, as of the last fetch (updated once a second).",
    ["partition"], multiprocess_mode="livemax",
)
ASSIGNED = Gauge("chat_bridge_assigned_partitions", "Partitions this bridge consumes.", multiprocess_mode="livesum")
REBALANCES = Counter("chat_bridge_rebalances_total", "Partition assignments received from the consumer group.")
REBUILDS = Counter("chat_bridge_history_rebuilds_total", "Partitions whose Redis history was rebuilt from Kafka.")
INDEX_FILLED = Counter(
    "chat_bridge_index_filled_records_total", "Older records read into the rooms' offset indexes by the indexer."
)
INDEX_PENDING = Gauge(
    "chat_bridge_index_pending_records",
    "Records of the partition below its indexed offset, not in the offset indexes yet (0: indexed to the beginning).",
    ["partition"], multiprocess_mode="livemax",
)
COMMITS_WITHHELD = with_labels(
    Counter(
        "chat_bridge_commits_withheld_total",
        "Cluster mode: partitions whose offsets were not committed, by reason: replica (no replica of the primary "
        "that took their applies confirmed them within BRIDGE_REPLICA_WAIT_MS), moved (that primary was replaced "
        "first: the partition is read again from its last commit).",
        ["reason"],
    ),
    "replica", "moved",
)
COMMITS_UNREPLICATED = Counter(
    "chat_bridge_commits_unreplicated_total",
    "Cluster mode: partitions committed without waiting, their primary having no replica at all.",
)
REPLICA_WAIT_SECONDS = Histogram(
    "chat_bridge_replica_wait_seconds",
    "Cluster mode: time to have each primary that took applies confirm a replica holds them (WAIT), per commit.",
    buckets=LATENCY_BUCKETS,
)
REDIS_USED_MEMORY = Gauge(
    "chat_redis_used_memory_bytes",
    "Memory Redis uses (INFO memory used_memory), as the bridge last read it (every 5 s).",
    multiprocess_mode="livemax",
)
REDIS_MAXMEMORY = Gauge(
    "chat_redis_maxmemory_bytes",
    "Redis's maxmemory (INFO memory; 0: no limit), past which it refuses writes under noeviction.",
    multiprocess_mode="livemax",
)
