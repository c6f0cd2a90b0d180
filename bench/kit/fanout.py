"""The fan-out stage alone (``ours-fanout``): the load generator publishes each message into
Redis as the bridge does, with the bridge's own script for one message (bridge/lua/apply.lua
and message.lua: history, de-duplication and the live publish in one call; its keys and
arguments: bench/loadgen-go/redis.go), and the bridge's settings (the defaults of
services/bridge/bridge/config.py). This is the benchmark's one contact with the bridge."""

from typing import Any

from chat_common.lua import lua_source
from local.stack import Settings

HISTORY_MAX = 1000  # the bridge's HISTORY_MAX
CLIENT_ID_TTL_S = 86400  # the bridge's CLIENT_ID_TTL_S


def bridge_script() -> str:
    """The bridge's script for one message, as Redis runs it."""
    return lua_source("bridge/apply.lua", "bridge/message.lua")


def bridge_publisher(settings: Settings) -> dict[str, Any]:
    """What the load generator needs to publish into the stack's Redis as its bridge does
    (``loadgen.Target(..., kind="ours-redis", redis=...)``)."""
    host_port = settings.redis_url.split("://", 1)[1].split("/", 1)[0]
    return {"addr": host_port, "script": bridge_script(), "history_max": HISTORY_MAX,
            "client_id_ttl_s": CLIENT_ID_TTL_S, "partitions": settings.partitions}
