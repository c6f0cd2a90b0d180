"""Reading a room's past: the Redis window (resume and recent history) and, older than
that, the Kafka log itself."""

import logging
import time
from dataclasses import dataclass, field

import gevent

from chat_common.messages import STATE_KEY, deletes_key, history_key, meta_key, room_partition
from stream.scrollback import Scrollback

log = logging.getLogger(__name__)


class NotReady(Exception):
    """Redis does not hold this room's history yet (it restarted; the bridge rebuilds)."""


@dataclass
class Page:
    """A history page: ``messages`` (JSON, oldest first), ``more`` (older ones exist),
    ``next_before`` (continue below this offset rather than below the oldest message: the
    scan stopped short), ``older_removed`` (the start of what the log keeps of the room)."""

    messages: list = field(default_factory=list)
    more: bool = False
    source: str = "redis"
    next_before: int | None = None
    older_removed: bool = False


class History:
    def __init__(self, redis, config):
        self.redis = redis
        self.config = config
        self.scrollback = Scrollback(redis, config)
        self._partitions = None  # the topic's partition count, as last read from the state

    # -- the Redis window -------------------------------------------------------------

    def _state(self, room, pipe_extra):
        partition, floor, _, rest = self._snapshot(room, pipe_extra)
        return partition, floor, rest

    def _snapshot(self, room, pipe_extra):
        """Read the room's window at one instant: ``pipe_extra`` adds its reads to one
        MULTI/EXEC with the partition's state. Returns (partition, floor, head, their
        results): ids at or below ``floor`` may have left the window; ``head`` is the
        room's position, the newest offset of its partition the bridge had applied (or
        the floor), so that every message of the room applied later has a greater id.

        The room's partition follows from the topic's partition count, which the worker
        keeps once read: the MULTI/EXEC reads the count again and, should it differ (a
        rebuilt Redis), the snapshot is read once more with the new one. So a snapshot is
        one round trip."""
        for _ in range(2):
            partitions = self._partitions
            if partitions is None:
                (count,) = self.redis.hmget(STATE_KEY, "partitions")
                if count is None:
                    raise NotReady(room)
                partitions = int(count)
            partition = room_partition(room, partitions)
            pipe = self.redis.pipeline(transaction=True)
            pipe.hmget(STATE_KEY, "partitions", f"ready:{partition}", f"floor:{partition}", f"last:{partition}")
            pipe.hget(meta_key(room), "floor")
            pipe_extra(pipe)
            (count, ready, partition_floor, partition_last), room_floor, *rest = pipe.execute()
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
        return partition, floor, head, rest

    def opening(self, room, last_id, count):
        """What a stream connect starts with, read at one instant, waiting (up to
        ``ready_wait_s``) while the bridge rebuilds the room's history:
        (events, head, reset). With ``last_id``: exactly the messages after it and the
        deletes of the room since (its tombstones), or, if some of those left the window,
        ``reset`` and the last ``count`` messages; without: the last ``count`` messages
        (a deleted message has left the window). Events are (event, json, id) in id order;
        ``head`` as in ``_snapshot``."""
        deadline = time.monotonic() + self.config.ready_wait_s

        def reads(pipe):
            if last_id is not None:
                pipe.zrangebyscore(history_key(room), f"({last_id}", "+inf", withscores=True)
                pipe.zrangebyscore(deletes_key(room), f"({last_id}", "+inf", withscores=True)
            if count > 0:
                pipe.zrevrange(history_key(room), 0, count - 1, withscores=True)

        while True:
            try:
                _, floor, head, rows = self._snapshot(room, reads)
                break
            except NotReady:
                if time.monotonic() > deadline:
                    raise
                gevent.sleep(0.2)
        latest = list(reversed(rows.pop())) if count > 0 else []
        if last_id is not None and last_id >= floor:
            messages, deletes = rows
            events = [("message", data, id) for data, id in _decoded(messages)]
            events += [("delete", data, id) for data, id in _deletes(deletes)]
            return sorted(events, key=lambda event: int(event[2])), head, False
        return [("message", data, id) for data, id in _decoded(latest)], head, last_id is not None

    def head(self, room):
        """The room's position now (see ``_snapshot``); -1 while Redis holds no history for it."""
        try:
            return self._snapshot(room, lambda pipe: None)[2]
        except NotReady:
            return -1

    def window(self, room):
        """The whole Redis window of the room: (message json, id) oldest first."""
        return _decoded(self.redis.zrange(history_key(room), 0, -1, withscores=True))

    def deletes_after(self, room, last_id):
        """The room's tombstones above ``last_id`` (and above its floor: the bridge keeps
        no older ones) as (event data, tombstone id), oldest first."""
        rows = self.redis.zrangebyscore(deletes_key(room), f"({last_id}", "+inf", withscores=True)
        return _deletes(rows)

    # -- paging back, into Kafka (scrollback.py) --------------------------------------------

    def before(self, room, before_id, limit, client=None):
        """Up to ``limit`` messages older than ``before_id`` (None: the newest), oldest
        first, and whether older ones exist. Beyond the Redis window, read Kafka."""
        upper = "+inf" if before_id is None else f"({before_id}"
        partition, floor, (rows,) = self._state(
            room, lambda pipe: pipe.zrevrangebyscore(history_key(room), upper, "-inf", start=0, num=limit + 1,
                                                     withscores=True)
        )
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
        page.messages = [m for m, _ in reversed(found[:limit])]
        return page


def _decoded(rows):
    return [(m.decode(), str(int(s))) for m, s in rows]


def _deletes(rows):
    """A room's deletes (member = the deleted id, score = the tombstone's id) as the data
    and id of their ``delete`` events."""
    return [(f'{{"id":"{int(target):d}"}}', str(int(score))) for target, score in rows]
