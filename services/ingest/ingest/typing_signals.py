"""Typing signals: "alice is typing…", straight to the room's readers.

A signal is ephemeral: it never goes to Kafka and has no id, so it is never in history and
a reader that resumes does not get it again. It is published on the room's Redis channel
in flask-sse's format (``event: typing``, data {"user"}), and a name may send one every
``interval`` seconds per room: one Lua script keeps the interval and publishes, so two
signals at once cannot both pass.
"""

import json

from chat_common.messages import channel, live_payload, typing_key

# KEYS[1]: the name's last signal in the room. ARGV: interval in ms, channel, payload.
# Returns 0 once published, else the milliseconds until the next signal is allowed.
SIGNAL = """
if redis.call('SET', KEYS[1], '1', 'NX', 'PX', tonumber(ARGV[1])) then
    redis.call('PUBLISH', ARGV[2], ARGV[3])
    return 0
end
return math.max(1, redis.call('PTTL', KEYS[1]))
"""


class Typing:
    def __init__(self, redis, interval_s):
        self.interval_ms = int(interval_s * 1000)
        self._signal = redis.register_script(SIGNAL)

    def signal(self, room, user):
        """Tell the room's readers that ``user`` is typing; return 0, or the seconds to wait
        (rounded up) when this name signalled less than the interval ago. RedisError passes."""
        data = json.dumps({"user": user}, ensure_ascii=False, separators=(",", ":"))
        wait_ms = self._signal(keys=[typing_key(room, user)],
                               args=[self.interval_ms, channel(room), live_payload(data, "typing")])
        return -(-int(wait_ms) // 1000)
