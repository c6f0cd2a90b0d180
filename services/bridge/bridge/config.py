"""bridge's settings, read once from environment variables (defaults: the local stack)."""

from dataclasses import dataclass
from typing import Self

from chat_common import config as env


@dataclass(frozen=True)
class Config(env.CommonConfig):
    group_id: str
    instance_id: str | None  # Kafka static membership: a restarted bridge takes its partitions back at once
    history_max: int  # messages kept per room in Redis (the resume window)
    history_max_bytes: int  # and at most this many bytes of message JSON per room
    room_idle_ttl_s: int  # a room's window (history, meta, deletes) expires this long after its last record
    client_id_ttl_s: int  # how long a client_id is remembered for de-duplication
    rebuild_depth: int  # when Redis comes back empty, re-read at most this many records per partition
    index_chunk: int  # records per step when the indexer fills in a partition's older offsets
    poll_timeout_ms: int
    max_poll_records: int
    commit_interval_ms: int  # offsets are committed at most this often (a crash replays what came since)

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
            rebuild_depth=env.env_int("BRIDGE_REBUILD_DEPTH", 100_000),
            index_chunk=env.env_int("BRIDGE_INDEX_CHUNK", 100_000),
            poll_timeout_ms=env.env_int("BRIDGE_POLL_TIMEOUT_MS", 500),
            max_poll_records=env.env_int("BRIDGE_MAX_POLL_RECORDS", 500),
            commit_interval_ms=env.env_int("BRIDGE_COMMIT_INTERVAL_MS", 1000),
        )
