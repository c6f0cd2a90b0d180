"""bridge's settings, read once from environment variables (defaults: the local stack)."""

from dataclasses import dataclass
from typing import Self

from chat_common import config as env
from chat_common.messages import REACTIONS_PER_MESSAGE_MAX


@dataclass(frozen=True)
class Config(env.CommonConfig):
    group_id: str
    instance_id: str | None  # Kafka static membership: a restarted bridge takes its partitions back at once
    history_max: int  # messages kept per room in Redis (the resume window)
    history_max_bytes: int  # and at most this many bytes of message JSON per room
    room_idle_ttl_s: int  # a room's window (history, meta, deletes) expires this long after its last record
    client_id_ttl_s: int  # how long a client_id is remembered for de-duplication
    reactions_per_message_max: int  # (user, emoji) reactions a message holds at most
    rebuild_depth: int  # when Redis comes back empty, re-read at most this many records per partition
    index_chunk: int  # records per step when the indexer fills in a partition's older offsets
    poll_timeout_ms: int
    max_poll_records: int
    # The broker answers a fetch once it holds fetch_min_bytes, or fetch_max_wait_ms passed.
    # Kept at Kafka's 1 byte / 500 ms: a fetch returns what arrived, and records pile up into
    # big batches on their own when they come fast (measured: 1.1-5.7 records a poll at
    # 200 msg/s, 53-320 at 2,000 msg/s). Waiting 5 ms for 64 KiB cannot batch 200 msg/s
    # (one record per 5 ms) and costs an idle bridge 19% of a core in empty fetches (0.75%
    # with the defaults), so it buys nothing below capacity.
    fetch_min_bytes: int
    fetch_max_wait_ms: int
    commit_interval_ms: int  # offsets are committed at most this often (a crash replays what came since)
    # Cluster mode: a commit waits at most this long for a replica of each primary that took
    # applies to hold them (bridge/replicas.py); the consume loop waits with it, so it is kept
    # short: a replica confirms a 500-record batch in 1.4 ms at p50, 24 ms at p99 (measured
    # on the local cluster:3, consumer.py), and one that does not answer costs this much per
    # commit interval (10% of the loop at 1 s).
    replica_wait_ms: int

    @classmethod
    def from_env(cls) -> Self:
        return cls(
            **cls.common_from_env(),
            group_id=env.env_str("BRIDGE_GROUP_ID", "chat-bridge"),
            instance_id=env.env_str("BRIDGE_INSTANCE_ID", None) or None,
            history_max=env.env_int("HISTORY_MAX", 1000),
            history_max_bytes=env.env_int("HISTORY_MAX_BYTES", 262_144),
            room_idle_ttl_s=env.env_int("ROOM_IDLE_TTL_S", 21_600),
            client_id_ttl_s=env.env_int("CLIENT_ID_TTL_S", 86400),
            reactions_per_message_max=env.env_int("REACTIONS_PER_MESSAGE_MAX", REACTIONS_PER_MESSAGE_MAX),
            rebuild_depth=env.env_int("BRIDGE_REBUILD_DEPTH", 100_000),
            index_chunk=env.env_int("BRIDGE_INDEX_CHUNK", 100_000),
            poll_timeout_ms=env.env_int("BRIDGE_POLL_TIMEOUT_MS", 500),
            max_poll_records=env.env_int("BRIDGE_MAX_POLL_RECORDS", 500),
            fetch_min_bytes=env.env_int("BRIDGE_FETCH_MIN_BYTES", 1),
            fetch_max_wait_ms=env.env_int("BRIDGE_FETCH_MAX_WAIT_MS", 500),
            commit_interval_ms=env.env_int("BRIDGE_COMMIT_INTERVAL_MS", 1000),
            replica_wait_ms=replica_wait_ms(),
        )


REPLICA_WAIT_MAX_MS = 4000  # below the bridge's Redis socket timeout (5 s), which would cut the WAIT


def replica_wait_ms() -> int:
    value = env.env_int("BRIDGE_REPLICA_WAIT_MS", 100)
    if not 1 <= value <= REPLICA_WAIT_MAX_MS:
        raise env.ConfigError(f"BRIDGE_REPLICA_WAIT_MS must be between 1 and {REPLICA_WAIT_MAX_MS}, got {value}")
    return value
