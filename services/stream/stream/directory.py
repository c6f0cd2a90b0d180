"""The room directory (GET /stream/rooms): rooms with people in them or a recent message.

Ranked so that one client address cannot crowd it: first by the distinct addresses that
took part in the room in the last day (posted, or opened a stream to it:
chat_common/participants.py), or those of the people present now if more; then by its
people (the distinct names present, as in its presence list); then by its newest message.
So a room two addresses took part in is above every room one address made, whatever that
address sends, under however many names.

The candidates are never a scan of every room: the MAX_ROOMS most taken part in
(``ROOMS_BY_ADDRESSES_KEY``), the rooms with a live presence (``PRESENT_ROOMS_KEY``, refreshed
by every connection's heartbeat, stream/presence.py) and the MAX_ROOMS with the
newest message (``ACTIVE_ROOMS_KEY``, kept by the bridge with every batch, so a rebuild
from Kafka restores it). Their counts of addresses are pruned as they are read
(lua/directory.lua); a room whose count fell is ranked lower from then on, so a room it held
out of the top MAX_ROOMS comes in at the next read. Each worker computes the list at most
once per ``cache_s``, whoever asks.
"""

import time
from typing import TypedDict

from redis import Redis
from redis.client import Pipeline

from chat_common import keys, participants
from chat_common.messages import presence_key

RECENT_MS = 24 * 3600 * 1000  # a room is listed for a day after its last message
MAX_ROOMS = 100
IDLE_DROPPED_PER_READ = 1000  # rooms nobody took part in for a day, dropped from the ranking per read


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
        self._count = redis.register_script(participants.lua_with_participants("stream/directory.lua"))
        self._took_part = redis.register_script(participants.lua_with_participants("stream/took_part.lua"))

    def took_part(self, room: str, address: str) -> None:
        """A stream opened to ``room`` from ``address`` (its digest): the address takes part,
        if someone posted in the room during the last day. Raises RedisError."""
        self._took_part(keys=participants.keys_of(room),
                        args=[room, address, int(time.time()), participants.WINDOW_S])

    def rooms(self) -> list[Listed]:
        """[{"room", "people", "last_ts"}], at most MAX_ROOMS, in the order above; last_ts is
        None for a room with people but no message in the last day."""
        if self._cached is not None and time.monotonic() - self._cached_at < self.cache_s:
            return self._cached
        self._cached, self._cached_at = self._read(), time.monotonic()
        return self._cached

    def _read(self) -> list[Listed]:
        now = time.time()
        since_ms = int(now * 1000) - RECENT_MS
        # One set of each kind on one node; one per partition in cluster mode (chat_common/keys.py).
        partitions = keys.directory_partitions()
        pipe = self.redis.pipeline(transaction=False)
        for p in partitions:
            pipe.zremrangebyscore(keys.active_rooms_key(p), "-inf", f"({since_ms}")
            pipe.zremrangebyscore(keys.present_rooms_key(p), "-inf", now)
            pipe.zrange(keys.present_rooms_key(p), 0, -1)
            pipe.zrevrangebyscore(keys.active_rooms_key(p), "+inf", since_ms, start=0, num=MAX_ROOMS, withscores=True)
            pipe.zrevrange(keys.rooms_by_addresses_key(p), 0, MAX_ROOMS - 1)
        replies = pipe.execute()
        present_rooms: list[str] = []
        named: set[str] = set()
        for start in range(0, len(replies), 5):
            _, _, present, recent, most_taken_part = replies[start:start + 5]
            present_rooms += [room.decode() for room in present]
            named |= {room.decode() for room, _ in recent} | {room.decode() for room in most_taken_part}
        candidates = sorted(named | set(present_rooms))
        if not candidates:
            return []
        groups: dict[int, list[str]] = {}
        for room in candidates:
            groups.setdefault(keys.partition_of(room), []).append(room)

        pipe = self.redis.pipeline(transaction=False)
        for room in present_rooms:
            pipe.zrangebyscore(presence_key(room), now, "+inf")
        for p, rooms in groups.items():
            pipe.zmscore(keys.active_rooms_key(p), rooms)
        # A script in the pipeline on one node; in cluster mode, one call per partition (a
        # cluster pipeline would not load a script it lacks).
        counted = [self._count_call(p, rooms, now, pipe if not keys.cluster() else None)
                   for p, rooms in groups.items()]
        replies = pipe.execute()
        live = replies[:len(present_rooms)]
        newest = [ts for reply in replies[len(present_rooms):len(present_rooms) + len(groups)] for ts in reply]
        counts = [count for reply in (replies[len(present_rooms) + len(groups):] if not keys.cluster() else counted)
                  for count in reply]
        ordered = [room for rooms in groups.values() for room in rooms]
        seats = {room: [member.decode().split("\n") for member in members]
                 for room, members in zip(present_rooms, live, strict=True)}
        people = {room: len({seat[0] for seat in room_seats}) for room, room_seats in seats.items()}
        addresses = {room: max(int(count), len({_address(seat) for seat in seats.get(room, [])}))
                     for room, count in zip(ordered, counts, strict=True)}
        last_ts = {room: int(ts) for room, ts in zip(ordered, newest, strict=True)
                   if ts is not None and ts >= since_ms}

        listed: list[Listed] = [
            {"room": room, "people": people.get(room, 0), "last_ts": last_ts.get(room)}
            for room in candidates if people.get(room) or room in last_ts
        ]
        listed.sort(key=lambda r: (-addresses[r["room"]], -r["people"], -(r["last_ts"] or 0), r["room"]))
        return listed[:MAX_ROOMS]


    def _count_call(self, partition: int, rooms: list[str], now: float, pipe: Pipeline | None) -> list[int]:
        """Count ``rooms``' addresses (all of ``partition``, in cluster mode) with directory.lua:
        queued on ``pipe``, or called now (its counts returned)."""
        names = [keys.rooms_by_addresses_key(partition), keys.rooms_took_part_key(partition),
                 *map(participants.addresses_key, rooms)]
        args: list[str | int] = [int(now), participants.WINDOW_S, IDLE_DROPPED_PER_READ, *rooms]
        if pipe is not None:
            self._count(keys=names, args=args, client=pipe)
            return []
        return [int(count) for count in self._count(keys=names, args=args)]


def _address(seat: list[str]) -> str:
    """Who a presence member (name, connection, address digest) counts as: its address; a
    member without one (written before addresses were kept) counts as its connection."""
    return seat[2] if len(seat) > 2 and seat[2] else seat[1]
