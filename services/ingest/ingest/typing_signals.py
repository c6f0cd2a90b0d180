"""Typing signals: "alice is typing…", straight to the room's readers.

A signal is ephemeral: it never goes to Kafka and has no id, so it is never in history and
a reader that resumes does not get it again. It is published on the room's Redis channel
in flask-sse's format (``event: typing``, data {"user"}), and a name may send one every
``interval`` seconds per room: one Lua script keeps the interval and publishes, so two
signals at once cannot both pass.
"""

import json

from redis import Redis

from chat_common import keys
from chat_common.lua import lua_source
from chat_common.messages import channel, live_payload, typing_key

SIGNAL = lua_source("ingest/typing.lua")


class Typing:
    def __init__(self, redis: Redis, interval_s: float) -> None:
        self.interval_ms = int(interval_s * 1000)
        self._signal = redis.register_script(keys.script(SIGNAL))

    def signal(self, room: str, user: str) -> int:
        """Tell the room's readers that ``user`` is typing; return 0, or the seconds to wait
        (rounded up) when this name signalled less than the interval ago. RedisError passes."""
        data = json.dumps({"user": user}, ensure_ascii=False, separators=(",", ":"))
        wait_ms = self._signal(keys=[typing_key(room, user)],
                               args=[self.interval_ms, channel(room), live_payload(data, "typing")])
        return -(-int(wait_ms) // 1000)
