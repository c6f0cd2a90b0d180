"""Reading a room's past: the Redis window (resume and recent history) and, older than
that, the Kafka log itself."""

import logging
import time
from dataclasses import dataclass, field

import gevent

from chat_common.messages import STATE_KEY, history_key, meta_key, room_partition
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

    # -- the Redis window -------------------------------------------------------------

    def _state(self, room, pipe_extra):
        pipe = self.redis.pipeline(transaction=False)
        pipe.hmget(STATE_KEY, "partitions")
        pipe.hget(meta_key(room), "floor")
        pipe_extra(pipe)
        (partitions,), room_floor, *rest = pipe.execute()
        if partitions is None:
            raise NotReady(room)
        partition = room_partition(room, int(partitions))
        ready, partition_floor = self.redis.hmget(STATE_KEY, f"ready:{partition}", f"floor:{partition}")
        if ready is None:
            raise NotReady(room)
        floor = max(int(float(room_floor or -1)), int(partition_floor or -1))
        return partition, floor, rest

    def wait_ready(self, room):
        deadline = time.monotonic() + self.config.ready_wait_s
        while True:
            try:
                return self._state(room, lambda pipe: None)
            except NotReady:
                if time.monotonic() > deadline:
                    raise
                gevent.sleep(0.2)

    def window(self, room):
        """The whole Redis window of the room: (message json, id) oldest first."""
        return [(m.decode(), str(int(s))) for m, s in self.redis.zrange(history_key(room), 0, -1, withscores=True)]

    def latest(self, room, count):
        """The last ``count`` messages, oldest first."""
        if count <= 0:
            return []
        rows = self.redis.zrevrange(history_key(room), 0, count - 1, withscores=True)
        return [(m.decode(), str(int(s))) for m, s in reversed(rows)]

    def after(self, room, last_id):
        """Exactly the messages after ``last_id``, or None if some of them left the window."""
        _, floor, (rows,) = self._state(
            room, lambda pipe: pipe.zrangebyscore(history_key(room), f"({last_id}", "+inf", withscores=True)
        )
        if last_id < floor:
            return None
        return [(m.decode(), str(int(s))) for m, s in rows]

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
            older = self.scrollback.older(room, partition, below, limit + 1 - len(found), client)
            found += older.messages
            page.source = "kafka"
            if len(found) <= limit:
                page.next_before = older.cursor
                page.older_removed = older.older_removed and older.cursor is None
        page.more = len(found) > limit or page.next_before is not None
        page.messages = [m for m, _ in reversed(found[:limit])]
        return page
