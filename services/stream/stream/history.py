"""Reading a room's past: the Redis window (resume and recent history) and, older than
that, the Kafka log itself."""

import logging
import time

import gevent
from gevent.lock import Semaphore
from kafka import KafkaConsumer, TopicPartition

from chat_common.messages import (
    STATE_KEY, Message, client_id_key, deleted_key, deletes_key, history_key, message_or_none, meta_key, room_partition,
)

log = logging.getLogger(__name__)

KAFKA_SCAN_CHUNK = 500  # offsets read per step when walking a partition backwards


class NotReady(Exception):
    """Redis does not hold this room's history yet (it restarted; the bridge rebuilds)."""


class History:
    def __init__(self, redis, config):
        self.redis = redis
        self.config = config
        self._kafka = None
        self._kafka_lock = Semaphore()

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

    # -- paging back, into Kafka -------------------------------------------------------------

    def before(self, room, before_id, limit):
        """Up to ``limit`` messages older than ``before_id`` (None: the newest), oldest
        first, and whether older ones exist. Beyond the Redis window, read Kafka."""
        upper = "+inf" if before_id is None else f"({before_id}"
        partition, floor, (rows,) = self._state(
            room, lambda pipe: pipe.zrevrangebyscore(history_key(room), upper, "-inf", start=0, num=limit + 1,
                                                     withscores=True)
        )
        found = [(m.decode(), int(s)) for m, s in rows if int(s) > floor]
        source = "redis"
        if len(found) <= limit and floor >= 0:
            # Older than the window: the log is the database.
            below = min([floor + 1] + [i for _, i in found] + ([before_id] if before_id is not None else []))
            found += self._from_kafka(room, partition, below, limit + 1 - len(found))
            source = "kafka"
        more = len(found) > limit
        page = list(reversed(found[:limit]))
        return [m for m, _ in page], more, source

    def _from_kafka(self, room, partition, below, count):
        """Walk the room's partition backwards from ``below``: up to ``count`` of the
        room's messages, newest first, without client_id duplicates."""
        key = room.encode()
        tp = TopicPartition(self.config.kafka_topic, partition)
        found = []
        with self._kafka_lock:
            consumer = self._consumer()
            consumer.assign([tp])
            beginning = consumer.beginning_offsets([tp])[tp]
            high = min(below, consumer.end_offsets([tp])[tp])
            while high > beginning and len(found) < count:
                low = max(beginning, high - KAFKA_SCAN_CHUNK)
                chunk = self._read_range(consumer, tp, low, high, key)
                found.extend(reversed(self._without_deleted(room, self._without_duplicates(room, chunk))))
                high = low
        return [(m.to_json(), int(m.id)) for m in found[:count]]

    def _read_range(self, consumer, tp, low, high, key):
        consumer.seek(tp, low)
        messages = []
        while consumer.position(tp) < high:
            batches = consumer.poll(timeout_ms=1000, max_records=KAFKA_SCAN_CHUNK)
            if not batches:
                if consumer.position(tp) >= consumer.end_offsets([tp])[tp]:
                    break
                continue
            for record in batches.get(tp, []):
                if record.offset < high and record.key == key:
                    message = message_or_none(record.value, record.offset)  # None: a tombstone
                    if message is not None:
                        messages.append(message)
        return messages

    def _without_duplicates(self, room, messages):
        """Drop retried copies: a client_id whose first message has another id."""
        with_cid = [m for m in messages if m.client_id]
        if not with_cid:
            return messages
        firsts = self.redis.mget([client_id_key(room, m.client_id) for m in with_cid])
        duplicate = set()
        for message, first in zip(with_cid, firsts):
            if first is not None and Message.from_stored(first).id != message.id:
                duplicate.add(message.id)
        return [m for m in messages if m.id not in duplicate]

    # -- deleted messages ------------------------------------------------------------------
    # The bridge takes a deleted message out of the window and keeps, per room, the deleted
    # ids (all of them) and the tombstones above the floor (id -> deleted id).

    def _without_deleted(self, room, messages):
        """Drop the messages taken back (the log still holds them; their tombstones follow)."""
        if not messages:
            return messages
        gone = self.redis.smismember(deleted_key(room), [m.id for m in messages])
        return [m for m, deleted in zip(messages, gone) if not deleted]

    def deletes_after(self, room, last_id):
        """The room's tombstones after ``last_id`` as (event data, tombstone id), oldest first:
        what a reader resuming from ``last_id`` must still be told was deleted."""
        rows = self.redis.zrangebyscore(deletes_key(room), f"({last_id}", "+inf", withscores=True)
        return [('{"id":"%s"}' % int(target), str(int(score))) for target, score in rows]

    def _consumer(self):
        if self._kafka is None:
            self._kafka = KafkaConsumer(
                bootstrap_servers=self.config.kafka_bootstrap_servers.split(","),
                client_id="chat-stream-history",
                group_id=None,
                enable_auto_commit=False,
                reconnect_backoff_max_ms=1000,  # back soon after a broker restart
                metrics_enabled=False,  # never read; recording costs CPU per fetch
            )
        return self._kafka
