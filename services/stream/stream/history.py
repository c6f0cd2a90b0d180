"""Reading a room's past: the Redis window (resume and recent history) and, older than
that, the Kafka log itself."""

import logging
import time

import gevent
from gevent.lock import Semaphore
from kafka import KafkaConsumer, TopicPartition

from chat_common.messages import (
    STATE_KEY, Message, client_id_key, history_key, meta_key, room_partition,
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
        partition, floor, _, rest = self._snapshot(room, pipe_extra)
        return partition, floor, rest

    def _snapshot(self, room, pipe_extra):
        """Read the room's window at one instant: ``pipe_extra`` adds its reads to one
        MULTI/EXEC with the partition's state. Returns (partition, floor, head, their
        results): ids at or below ``floor`` may have left the window; ``head`` is the
        room's position, the newest offset of its partition the bridge had applied (or
        the floor), so that every message of the room applied later has a greater id."""
        (partitions,) = self.redis.hmget(STATE_KEY, "partitions")
        if partitions is None:
            raise NotReady(room)
        partition = room_partition(room, int(partitions))
        pipe = self.redis.pipeline(transaction=True)
        pipe.hmget(STATE_KEY, f"ready:{partition}", f"floor:{partition}", f"last:{partition}")
        pipe.hget(meta_key(room), "floor")
        pipe_extra(pipe)
        (ready, partition_floor, partition_last), room_floor, *rest = pipe.execute()
        if ready is None:
            raise NotReady(room)
        floor = max(int(float(room_floor or -1)), int(partition_floor or -1))
        head = max(floor, int(partition_last or -1))
        return partition, floor, head, rest

    def opening(self, room, last_id, count):
        """What a stream connect starts with, read at one instant, waiting (up to
        ``ready_wait_s``) while the bridge rebuilds the room's history:
        (messages, head, reset). With ``last_id``: exactly the messages after it, or, if
        some of those left the window, ``reset`` and the last ``count``; without: the last
        ``count``. Messages are (json, id) oldest first; ``head`` as in ``_snapshot``."""
        deadline = time.monotonic() + self.config.ready_wait_s

        def reads(pipe):
            if last_id is not None:
                pipe.zrangebyscore(history_key(room), f"({last_id}", "+inf", withscores=True)
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
            return _decoded(rows[0]), head, False
        return _decoded(latest), head, last_id is not None

    def head(self, room):
        """The room's position now (see ``_snapshot``); -1 while Redis holds no history for it."""
        try:
            return self._snapshot(room, lambda pipe: None)[2]
        except NotReady:
            return -1

    def window(self, room):
        """The whole Redis window of the room: (message json, id) oldest first."""
        return _decoded(self.redis.zrange(history_key(room), 0, -1, withscores=True))

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
                found.extend(reversed(self._without_duplicates(room, chunk)))
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
                    messages.append(Message.from_kafka(record.value, record.offset))
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


def _decoded(rows):
    return [(m.decode(), str(int(s))) for m, s in rows]
