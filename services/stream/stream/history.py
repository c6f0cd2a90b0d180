"""Reading a room's past: the Redis window (resume and recent history) and, older than
that, the Kafka log itself."""

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import gevent
from kafka.errors import KafkaError
from redis import Redis
from redis.client import Pipeline
from redis.exceptions import RedisError

from chat_common import keys
from chat_common.messages import (
    changes_key,
    deletes_key,
    history_key,
    meta_key,
    offsets_key,
    parse_live,
    room_partition,
)
from stream.changes import changed_keys, fold
from stream.config import Config
from stream.scrollback import Busy, ClientLimited, Scrollback

log = logging.getLogger(__name__)

LOG_PAGES = 4  # history pages a connect to a room without a window reads from the log, at most


class NotReady(Exception):
    """Redis does not hold this room's history yet (it restarted; the bridge rebuilds)."""


# What a read of a room's past may raise, besides bad input.
READ_ERRORS = (NotReady, RedisError, KafkaError, Busy, ClientLimited)

Event = tuple[str, str, str]  # (event type, data JSON, id)
Row = tuple[str, str]  # (message JSON, id)
Reads = Callable[[Pipeline], object]  # adds reads to a snapshot's MULTI/EXEC


@dataclass
class Page:
    """A history page: ``messages`` (JSON, oldest first), ``more`` (older ones exist),
    ``next_before`` (continue below this offset rather than below the oldest message: the
    scan stopped short), ``older_removed`` (the start of what the log keeps of the room)."""

    messages: list[str] = field(default_factory=list)
    more: bool = False
    source: str = "redis"
    next_before: int | None = None
    older_removed: bool = False


@dataclass
class Snapshot:
    """A room's window at one instant (``History._snapshot``); ``windowed``: the room has
    a meta hash (its Redis window exists); ``rest``: the caller's own reads."""

    partition: int
    floor: int
    head: int
    windowed: bool
    rest: list[Any]  # what Redis answered: the shape each caller's reads give


class History:
    def __init__(self, redis: Redis, config: Config) -> None:
        self.redis = redis
        self.config = config
        self.scrollback = Scrollback(redis, config)
        self._partitions: int | None = None  # the topic's partition count, as last read from the state

    # -- the Redis window -------------------------------------------------------------

    def _state(self, room: str, pipe_extra: Reads) -> tuple[int, int, list[Any]]:
        snapshot = self._snapshot(room, pipe_extra)
        return snapshot.partition, snapshot.floor, snapshot.rest

    def _snapshot(self, room: str, pipe_extra: Reads) -> Snapshot:
        """Read the room's window at one instant: ``pipe_extra`` adds its reads to one
        MULTI/EXEC with the partition's state. Returns a Snapshot: ids at or below ``floor``
        may have left the window; ``head`` is the room's position, the newest offset of its
        partition the bridge had applied (or the floor), so that every message of the room
        applied later has a greater id.

        A room whose meta hash is missing (never written, or expired with the rest of an
        idle room's window) has its floor at the head: its window holds nothing, and its
        past is in the log (read through the room's offset index).

        The room's partition follows from the topic's partition count, which the worker
        keeps once read: the MULTI/EXEC reads the count again and, should it differ (a
        rebuilt Redis), the snapshot is read once more with the new one. So a snapshot is
        one round trip."""
        for _ in range(2):
            # In cluster mode every service is given the count (the keys are placed by it).
            partitions = self._partitions or (keys.layout().partitions if keys.cluster() else None)
            if partitions is None:
                pipe = self.redis.pipeline(transaction=False)
                pipe.hmget(keys.state_key(0), "partitions")
                ((count,),) = pipe.execute()
                if count is None:
                    raise NotReady(room)
                partitions = int(count)
            partition = room_partition(room, partitions)
            pipe = self.redis.pipeline(transaction=True)
            pipe.hmget(keys.state_key(partition), "partitions", f"ready:{partition}", f"floor:{partition}",
                       f"last:{partition}")
            pipe.hmget(meta_key(room), "floor", "last")  # the bridge sets "last" with every apply
            pipe_extra(pipe)
            (count, ready, partition_floor, partition_last), (room_floor, room_last), *rest = pipe.execute()
            if count is None:
                raise NotReady(room)
            self._partitions = int(count)
            if self._partitions != partitions:
                continue  # the partition read was another's
            if ready is None:
                raise NotReady(room)
            break
        else:
            raise NotReady(room)  # the count changed twice in a moment: the bridge is rebuilding
        floor = max(int(float(room_floor or -1)), int(partition_floor or -1))
        head = max(floor, int(partition_last or -1))
        if room_last is None:
            floor = head  # no window: the room is new, or idle long enough to have expired
        return Snapshot(partition, floor, head, room_last is not None, rest)

    def opening(self, room: str, last_id: int | None, count: int,
                client: str | None = None) -> tuple[list[Event], int, bool]:
        """What a stream connect starts with, read at one instant, waiting (up to
        ``ready_wait_s``) while the bridge rebuilds the room's history:
        (events, head, reset). With ``last_id``: exactly the messages after it and the
        deletes of the room since (its tombstones), or, if some of those left the window
        or ``last_id`` is past the head (a topic recreated, a made-up id), ``reset`` and the
        last ``count`` messages; without: the last ``count`` messages (a deleted message
        has left the window). On a resume, the room's edits and reactions since come too
        (each once); every message has its latest text and reactions (changes.fold).
        A room without a window (its Redis state expired) gets its
        last ``count`` messages from the log, read as a history page is (a ``client``'s
        share of Kafka reads applies). Events are (event, json, id) in id order; ``head``
        as in ``_snapshot``."""
        deadline = time.monotonic() + self.config.ready_wait_s

        def reads(pipe: Pipeline) -> None:
            pipe.exists(offsets_key(room))
            pipe.exists(*changed_keys(room))
            if last_id is not None:
                pipe.zrangebyscore(history_key(room), f"({last_id}", "+inf", withscores=True)
                pipe.zrangebyscore(deletes_key(room), f"({last_id}", "+inf", withscores=True)
                pipe.zrangebyscore(changes_key(room), f"({last_id}", "+inf")
            if count > 0:
                pipe.zrevrange(history_key(room), 0, count - 1, withscores=True)

        while True:
            try:
                snapshot = self._snapshot(room, reads)
                break
            except NotReady:
                if time.monotonic() > deadline:
                    raise
                gevent.sleep(0.2)
        head, rows = snapshot.head, snapshot.rest
        logged = rows.pop(0)
        changed = bool(rows.pop(0))
        latest = list(reversed(rows.pop())) if count > 0 else []
        if last_id is not None and snapshot.floor <= last_id <= head:
            messages, deletes, changes = rows
            events: list[Event] = [("message", data, id)
                                   for data, id in fold(self.redis, room, _decoded(messages), changed)]
            events += [("delete", data, id) for data, id in _deletes(deletes)]
            events += _changes(changes)
            return sorted(events, key=lambda event: int(event[2])), head, False
        if snapshot.windowed or not logged or count <= 0:
            recent = _decoded(latest)
        else:
            recent = self._from_log(room, snapshot.partition, head + 1, count, client)
        shown = fold(self.redis, room, recent, changed)
        return [("message", data, id) for data, id in shown], head, last_id is not None

    def _from_log(self, room: str, partition: int, below: int, count: int, client: str | None) -> list[Row]:
        """The room's last ``count`` messages below ``below`` read from Kafka (scrollback.py),
        oldest first, as (json, id); a page that stops short (its time or record budget)
        is continued from its cursor, at most ``LOG_PAGES`` times."""
        found: list[tuple[str, int]] = []
        for _ in range(LOG_PAGES):
            older = self.scrollback.older(room, partition, below, count - len(found), client)
            found += older.messages
            if older.cursor is None or len(found) >= count:
                break
            below = older.cursor
        return [(data, str(id)) for data, id in reversed(found[:count])]

    def head(self, room: str) -> int:
        """The room's position now (see ``_snapshot``); -1 while Redis holds no history for it."""
        try:
            return self._snapshot(room, lambda pipe: None).head
        except NotReady:
            return -1

    def window(self, room: str) -> list[Row]:
        """The whole Redis window of the room: (message json, id) oldest first, each with its
        latest text and reactions."""
        pipe = self.redis.pipeline(transaction=False)
        pipe.zrange(history_key(room), 0, -1, withscores=True)
        return fold(self.redis, room, _decoded(pipe.execute()[0]))

    def deletes_after(self, room: str, last_id: int) -> list[Row]:
        """The room's tombstones above ``last_id`` (and above its floor: the bridge keeps
        no older ones) as (event data, tombstone id), oldest first."""
        pipe = self.redis.pipeline(transaction=False)
        pipe.zrangebyscore(deletes_key(room), f"({last_id}", "+inf", withscores=True)
        return _deletes(pipe.execute()[0])

    def changes_after(self, room: str, last_id: int) -> list[Event]:
        """The room's edits and reactions above ``last_id`` (and above its floor) as
        (event, data, id), oldest first."""
        pipe = self.redis.pipeline(transaction=False)
        pipe.zrangebyscore(changes_key(room), f"({last_id}", "+inf")
        return _changes(pipe.execute()[0])

    # -- paging back, into Kafka (scrollback.py) --------------------------------------------

    def before(self, room: str, before_id: int | None, limit: int, client: str | None = None) -> Page:
        """Up to ``limit`` messages older than ``before_id`` (None: the newest), oldest
        first, and whether older ones exist. Beyond the Redis window, read Kafka."""
        upper = "+inf" if before_id is None else f"({before_id}"

        def reads(pipe: Pipeline) -> None:
            pipe.zrevrangebyscore(history_key(room), upper, "-inf", start=0, num=limit + 1, withscores=True)
            pipe.exists(*changed_keys(room))

        partition, floor, (rows, changed) = self._state(room, reads)
        found = [(m.decode(), int(s)) for m, s in rows if int(s) > floor]
        page = Page(source="redis")
        if len(found) <= limit and floor >= 0:
            # Older than the window: the log is the database.
            below = min([floor + 1] + [i for _, i in found] + ([before_id] if before_id is not None else []))
            older = self.scrollback.older(room, partition, below, limit + 1 - len(found), client, ahead=limit + 1)
            found += older.messages
            page.source = "kafka"
            if len(found) <= limit:
                page.next_before = older.cursor
                page.older_removed = older.older_removed and older.cursor is None
        page.more = len(found) > limit or page.next_before is not None
        shown = fold(self.redis, room, [(m, str(i)) for m, i in reversed(found[:limit])], bool(changed))
        page.messages = [m for m, _ in shown]
        return page


def _decoded(rows: list[tuple[bytes, float]]) -> list[Row]:
    return [(m.decode(), str(int(s))) for m, s in rows]


def _deletes(rows: list[tuple[bytes, float]]) -> list[Row]:
    """A room's deletes (member = the deleted id, score = the tombstone's id) as the data
    and id of their ``delete`` events."""
    return [(f'{{"id":"{int(target):d}"}}', str(int(score))) for target, score in rows]


def _changes(members: list[bytes]) -> list[Event]:
    """A room's changes (members: the bridge's live payloads of its edits and reactions) as
    their events."""
    events: list[Event] = []
    for member in members:
        event, data, id = parse_live(member)
        if event is not None and id is not None:
            events.append((event, data, id))
    return events
