"""The fan-out stage alone (``ours-fanout``): the load generator publishes each message into
Redis as the bridge does, with the bridge's own script for one message (bridge/lua/apply.lua
and message.lua: history, de-duplication and the live publish in one call; its keys and
arguments: bench/loadgen-go/redis.go), the room keys chat_common names and the bridge's own
settings (its config.py, read from the same environment the stack's bridge gets: the history
bounds in messages and bytes, the client_id TTL, the idle room TTL). This is the benchmark's
one contact with the bridge."""

from typing import Any

from bridge.config import Config as BridgeConfig
from bridge.store import APPLY_SCRIPT
from chat_common.messages import client_id_key, deleted_key, deletes_key, history_key, meta_key, offsets_key
from local.stack import Settings

ROOM_MARK = "\x00room\x00"  # where the load generator puts a room's name in a key


def bridge_script() -> str:
    """The bridge's script for one message, as Redis runs it."""
    return APPLY_SCRIPT


def bridge_publisher(settings: Settings) -> dict[str, Any]:
    """What the load generator needs to publish into the stack's Redis as its bridge does
    (``loadgen.Target(..., kind="ours-redis", redis=...)``)."""
    bridge = BridgeConfig.from_env()
    host_port = settings.redis_url.split("://", 1)[1].split("/", 1)[0]
    room_keys = [history_key(ROOM_MARK), meta_key(ROOM_MARK), client_id_key(ROOM_MARK, "-"), offsets_key(ROOM_MARK),
                 deletes_key(ROOM_MARK), deleted_key(ROOM_MARK)]
    return {"addr": host_port, "script": bridge_script(), "history_max": bridge.history_max,
            "history_max_bytes": bridge.history_max_bytes, "client_id_ttl_s": bridge.client_id_ttl_s,
            "room_idle_ttl_s": bridge.room_idle_ttl_s, "partitions": settings.partitions,
            "room_keys": room_keys, "room_mark": ROOM_MARK}
