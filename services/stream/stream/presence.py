"""Who is in a room: one sorted-set member per open connection, scored by its expiry.

A connection refreshes its member with every heartbeat, so members of a crashed process
expire by themselves. Joins and leaves that change the list of names are published on the
room's channel as flask-sse ``presence`` events: {"users": [...]}.
"""

import json
import time
import uuid

from chat_common.messages import channel, live_payload, presence_key


class Presence:
    def __init__(self, redis, ttl_s):
        self.redis = redis
        self.ttl_s = ttl_s

    def users(self, room):
        key = presence_key(room)
        pipe = self.redis.pipeline(transaction=False)
        pipe.zremrangebyscore(key, "-inf", time.time())
        pipe.zrange(key, 0, -1)
        _, members = pipe.execute()
        return sorted({member.decode().split("\n", 1)[0] for member in members})

    def join(self, room, user):
        """Add a connection; return its member, to refresh and remove it later."""
        member = f"{user}\n{uuid.uuid4().hex}"
        before = self.users(room)
        self.refresh(room, member)
        if user not in before:
            self._publish(room)
        return member

    def refresh(self, room, member):
        pipe = self.redis.pipeline(transaction=False)
        pipe.zadd(presence_key(room), {member: time.time() + self.ttl_s})
        pipe.expire(presence_key(room), self.ttl_s * 2)
        pipe.execute()

    def leave(self, room, member):
        user = member.split("\n", 1)[0]
        self.redis.zrem(presence_key(room), member)
        if user not in self.users(room):
            self._publish(room)

    def _publish(self, room):
        data = json.dumps({"users": self.users(room)}, ensure_ascii=False, separators=(",", ":"))
        self.redis.publish(channel(room), live_payload(data, "presence"))
