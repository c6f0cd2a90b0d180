"""The room directory (GET /stream/rooms): rooms with people in them or a recent message.

Two sorted sets feed it: ``ACTIVE_ROOMS_KEY`` (room -> newest message ts, kept by the
bridge with every batch it applies, so a rebuild from Kafka restores it) and
``PRESENT_ROOMS_KEY`` (room -> presence expiry, refreshed by every connection's heartbeat,
stream/presence.py). A room's people are the distinct names present, as in its presence
list. Busiest first: most people, then the most recent message. Each worker computes it
at most once per ``cache_s``, whoever asks.
"""

import time
from typing import TypedDict

from redis import Redis

from chat_common.messages import ACTIVE_ROOMS_KEY, PRESENT_ROOMS_KEY, presence_key

RECENT_MS = 24 * 3600 * 1000  # a room is listed for a day after its last message
MAX_ROOMS = 100


class Listed(TypedDict):
    room: str
    people: int
    last_ts: int | None


class Directory:
    def __init__(self, redis: Redis, cache_s: float = 2.0) -> None:
        self.redis = redis
        self.cache_s = cache_s
        self._cached: list[Listed] | None = None
        self._cached_at = 0.0

    def rooms(self) -> list[Listed]:
        """[{"room", "people", "last_ts"}], busiest first, at most MAX_ROOMS; last_ts is
        None for a room with people but no message in the last day."""
        if self._cached is not None and time.monotonic() - self._cached_at < self.cache_s:
            return self._cached
        self._cached, self._cached_at = self._read(), time.monotonic()
        return self._cached

    def _read(self) -> list[Listed]:
        now = time.time()
        since_ms = int(now * 1000) - RECENT_MS
        pipe = self.redis.pipeline(transaction=False)
        pipe.zremrangebyscore(ACTIVE_ROOMS_KEY, "-inf", f"({since_ms}")
        pipe.zremrangebyscore(PRESENT_ROOMS_KEY, "-inf", now)
        pipe.zrange(PRESENT_ROOMS_KEY, 0, -1)
        pipe.zrevrangebyscore(ACTIVE_ROOMS_KEY, "+inf", since_ms, start=0, num=MAX_ROOMS, withscores=True)
        _, _, present, recent = pipe.execute()
        present_rooms: list[str] = [room.decode() for room in present]
        last_ts = {room.decode(): int(ts) for room, ts in recent}

        pipe = self.redis.pipeline(transaction=False)
        for room in present_rooms:
            pipe.zrangebyscore(presence_key(room), now, "+inf")
        if present_rooms:
            pipe.zmscore(ACTIVE_ROOMS_KEY, present_rooms)
        answers = pipe.execute()
        people = {room: len({m.decode().split("\n", 1)[0] for m in members})
                  for room, members in zip(present_rooms, answers[:len(present_rooms)], strict=True)}
        if present_rooms:
            last_ts.update({room: int(ts) for room, ts in zip(present_rooms, answers[-1], strict=True)
                            if ts is not None and ts >= since_ms})

        listed: list[Listed] = [
            {"room": room, "people": people.get(room, 0), "last_ts": last_ts.get(room)}
            for room in set(last_ts) | {room for room, count in people.items() if count}
        ]
        listed.sort(key=lambda r: (-r["people"], -(r["last_ts"] or 0), r["room"]))
        return listed[:MAX_ROOMS]
