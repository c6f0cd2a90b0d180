"""Who is in a room, and the names their sessions hold.

Presence: one sorted-set member per open connection (its name, its id and the digest of
its client address, chat_common.participants), scored by its expiry. A connection
refreshes its member with every heartbeat, so members of a crashed process expire by
themselves; a connection that closes leaves at once (its close is seen: hangup.py). Joins
and leaves that change the list of names are published on the room's channel as flask-sse
``presence`` events: {"users": [...]}.

Holds: a connection from a browser session (chat_common.sessions) also holds its name in
the room, in the same way (member = session + connection, refreshed, expiring; lua/hold.lua).
A name held by one session is not taken by another while the first is present; ingest
refuses posts under it from anyone else (409). A connection whose name is held by another
session still reads the room.
"""

import json
import time
import uuid
from dataclasses import dataclass

from redis import Redis

from chat_common import keys
from chat_common.lua import lua_source
from chat_common.messages import channel, live_payload, name_hold_key, presence_key


@dataclass(frozen=True)
class Seat:
    """One connection's place in a room."""

    room: str
    user: str
    connection: str
    session: str | None  # the browser session, if it has one
    address: str = ""  # the client address's digest: the directory counts addresses present

    @property
    def member(self) -> str:
        return f"{self.user}\n{self.connection}\n{self.address}"

    @property
    def hold(self) -> str:
        return f"{self.session}\n{self.connection}"


class Presence:
    def __init__(self, redis: Redis, ttl_s: int) -> None:
        self.redis = redis
        self.ttl_s = ttl_s
        self._hold = redis.register_script(lua_source("stream/hold.lua"))

    def users(self, room: str) -> list[str]:
        key = presence_key(room)
        pipe = self.redis.pipeline(transaction=False)
        pipe.zremrangebyscore(key, "-inf", time.time())
        pipe.zrange(key, 0, -1)
        _, members = pipe.execute()
        return sorted({member.decode().split("\n", 1)[0] for member in members})

    def join(self, room: str, user: str, session: str | None = None, address: str = "") -> Seat:
        """Add a connection from ``address`` (a digest; and hold its name for its session);
        return its seat, to refresh and leave later."""
        seat = Seat(room, user, uuid.uuid4().hex, session, address)
        before = self.users(room)
        self.refresh(seat)
        if user not in before:
            self._publish(room)
        return seat

    def refresh(self, seat: Seat) -> None:
        now = time.time()
        pipe = self.redis.pipeline(transaction=False)
        pipe.zadd(presence_key(seat.room), {seat.member: now + self.ttl_s})
        pipe.expire(presence_key(seat.room), self.ttl_s * 2)
        pipe.zadd(keys.present_rooms_key(keys.partition_of(seat.room)), {seat.room: now + self.ttl_s},
                  gt=True)  # the room directory
        pipe.execute()
        if seat.session:
            self._hold(keys=[name_hold_key(seat.room, seat.user)],
                       args=[now, now + self.ttl_s, seat.session, seat.hold, self.ttl_s * 2])

    def leave(self, seat: Seat) -> None:
        pipe = self.redis.pipeline(transaction=False)
        pipe.zrem(presence_key(seat.room), seat.member)
        if seat.session:
            pipe.zrem(name_hold_key(seat.room, seat.user), seat.hold)
        pipe.execute()
        if seat.user not in self.users(seat.room):
            self._publish(seat.room)

    def _publish(self, room: str) -> None:
        data = json.dumps({"users": self.users(room)}, ensure_ascii=False, separators=(",", ":"))
        keys.publish(self.redis, channel(room), live_payload(data, "presence"))
