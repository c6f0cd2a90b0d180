"""The rooms' offset indexes: where each room's messages are in the log.

For every message it stores, the apply script (store.py) appends the message's offset to
its room's index (``offsets_key``): a string of fixed-width offsets, increasing by
construction. The stream service binary-searches it to read a page of a room's past
straight from Kafka, whatever other rooms share the partition.

``indexed:<partition>`` (in ``chat:state``) is the offset from which the indexes hold every
record of the partition. The live path indexes the records at and after it; it is set where
the bridge starts writing: at a rebuild's first offset (store.mark_rebuilding), or, for a
partition whose history was written before indexes existed, at the partition's end
(``adopt``). The ``Indexer`` thread then reads the log backwards from there, a chunk at a
time, prepends each room's older offsets and lowers ``indexed:<partition>``, until it reaches
the log's first offset. Readers treat what lies below it as not indexed yet (they scan it,
within a budget).
"""

import logging
import threading
import time
from collections import defaultdict
from collections.abc import Iterable, Mapping

from kafka import KafkaConsumer, TopicPartition
from kafka.errors import KafkaError
from redis import Redis
from redis.exceptions import RedisError

from bridge import metrics
from bridge.config import Config
from chat_common import keys
from chat_common.kafka_reader import log_reader
from chat_common.lua import lua_source
from chat_common.messages import edits_key, message_or_none, offsets_key, pack_offsets, reactions_key, room_partition

log = logging.getLogger(__name__)

IDLE_CHECK_S = 30.0  # between checks once every partition is indexed to its beginning
TRIM_INTERVAL_S = 600.0  # how often the indexes drop the offsets that retention removed from the log
BUSY_PAUSE_FACTOR = 1.0  # after a chunk, rest as long as it took: the live loop keeps its share of the CPU

# The indexer's scripts (lua/): a chunk of older offsets put before the rooms' indexes, and
# an index trimmed to what the log retains.
PREPEND_SCRIPT = lua_source("bridge/prepend.lua")
TRIM_SCRIPT = lua_source("chat_common/offsets.lua", "bridge/trim.lua")


def not_indexed(redis: Redis, partitions: Iterable[int]) -> list[int]:
    """The partitions without ``indexed:<partition>``: their history predates the indexes."""
    ordered = sorted(partitions)
    if not ordered:
        return []
    if not keys.cluster():
        flags = redis.hmget(keys.state_key(0), [f"indexed:{p}" for p in ordered])
        return [p for p, flag in zip(ordered, flags, strict=True) if flag is None]
    missing = []
    for p in ordered:  # one shard not answering leaves the others' partitions checked
        try:
            if redis.hget(keys.state_key(p), f"indexed:{p}") is None:
                missing.append(p)
        except RedisError:
            continue
    return missing


def adopt(redis: Redis, ends: Mapping[int, int]) -> None:
    """Start the indexes of such partitions at their end (``ends``: partition -> end
    offset): every record applied from then on is indexed by the live path (and any
    record before it, by the Indexer)."""
    for partition, end in sorted(ends.items()):
        if redis.hsetnx(keys.state_key(partition), f"indexed:{partition}", end):
            log.info("offset index starts", extra={"partition": partition, "from_offset": end})


class Indexer:
    """Fills in each assigned partition's offset indexes below ``indexed:<partition>``."""

    def __init__(self, config: Config, redis: Redis, stopping: threading.Event) -> None:
        self.config = config
        self.redis = redis
        self.stopping = stopping
        self.partitions: frozenset[int] = frozenset()  # the bridge's assignment, replaced by its consume loop
        self._prepend = redis.register_script(PREPEND_SCRIPT)
        self._trim = redis.register_script(TRIM_SCRIPT)
        self._trimmed: dict[int, int] = {}  # partition -> the first offset the indexes were last trimmed to
        self._next_trim = time.monotonic() + TRIM_INTERVAL_S
        self._consumer: KafkaConsumer | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self.run, name="bridge-indexer", daemon=True)
        self._thread.start()

    def run(self) -> None:
        pause = 1.0
        while not self.stopping.wait(pause):
            try:
                started = time.monotonic()
                worked = False
                for partition in sorted(self.partitions):
                    worked = self.step(partition) or worked
                if time.monotonic() >= self._next_trim:
                    self._next_trim = time.monotonic() + TRIM_INTERVAL_S
                    self.trim(self.partitions)
                if worked:
                    pause = (time.monotonic() - started) * BUSY_PAUSE_FACTOR + 0.1
                else:  # all indexed, or no partitions yet
                    pause = IDLE_CHECK_S if self.partitions else 1.0
            except (KafkaError, RedisError) as error:
                metrics.ERRORS.labels("index").inc()
                log.warning("indexing older records failed; retrying", extra={"error": str(error)})
                pause = 5.0
            except Exception:
                metrics.ERRORS.labels("index").inc()
                log.exception("indexing older records failed; retrying")
                self._close()
                pause = 5.0
        self._close()

    def step(self, partition: int) -> bool:
        """Index one chunk of the partition below ``indexed:<partition>``; return whether
        there was one."""
        indexed = self.redis.hget(keys.state_key(partition), f"indexed:{partition}")
        if indexed is None:
            return False
        high = int(indexed)
        tp = TopicPartition(self.config.kafka_topic, partition)
        consumer = self._reader()
        beginning = consumer.beginning_offsets([tp])[tp]
        metrics.INDEX_PENDING.labels(str(partition)).set(max(0, high - beginning))
        if high <= beginning:
            return False
        low = max(beginning, high - self.config.index_chunk)
        entries = self._read(consumer, tp, low, high)
        rooms = sorted(entries)
        done = self._prepend(
            keys=[keys.state_key(partition), *(offsets_key(room) for room in rooms)],
            args=[partition, high, low, *(pack_offsets(entries[room]) for room in rooms)],
        )
        if done:
            metrics.INDEX_FILLED.inc(high - low)
            metrics.INDEX_PENDING.labels(str(partition)).set(max(0, low - beginning))
            log.info("older records indexed", extra={"partition": partition, "from_offset": low, "to_offset": high,
                                                      "rooms": len(rooms)})
        return True

    def trim(self, partitions: frozenset[int]) -> None:
        """Drop from the indexes of the rooms in ``partitions`` the offsets that retention
        removed from the log since the last trim, and the edits and reactions of those messages."""
        count = self.redis.hget(keys.state_key(min(partitions, default=0)), "partitions")
        if count is None or not partitions:
            return
        consumer = self._reader()
        tps = [TopicPartition(self.config.kafka_topic, p) for p in partitions]
        beginnings = {tp.partition: offset for tp, offset in consumer.beginning_offsets(tps).items()}
        moved = {p for p, offset in beginnings.items() if offset > self._trimmed.get(p, 0)}
        if not moved:
            return
        dropped = 0
        for key in self.redis.scan_iter(match=keys.room_key_pattern("offsets"), count=1000):
            room = keys.room_of_key(key.decode())
            partition = room_partition(room, int(count))
            if partition in moved:
                dropped += self._trim(keys=[key, edits_key(room), reactions_key(room)], args=[beginnings[partition]])
        for partition in moved:
            self._trimmed[partition] = beginnings[partition]
        log.info("offset indexes trimmed to the log's beginning", extra={"partitions": sorted(moved),
                                                                           "entries": dropped})

    def _read(self, consumer: KafkaConsumer, tp: TopicPartition, low: int, high: int) -> dict[str, list[int]]:
        """room -> offsets of its messages in [low, high), the way the apply script keeps
        them: chat messages only, a client_id's repeats (within the chunk) dropped."""
        consumer.assign([tp])
        consumer.seek(tp, low)
        entries: defaultdict[str, list[int]] = defaultdict(list)
        seen: set[tuple[str, str]] = set()
        while consumer.position(tp) < high and not self.stopping.is_set():
            batches = consumer.poll(timeout_ms=1000, max_records=2000)
            if not batches and consumer.position(tp) >= consumer.end_offsets([tp])[tp]:
                break
            for record in batches.get(tp, []):
                if record.offset >= high:
                    break
                message = message_or_none(record.value, record.offset)  # edits, reactions: no message
                if message is None:
                    continue
                if message.client_id is not None:
                    if (message.room, message.client_id) in seen:
                        continue
                    seen.add((message.room, message.client_id))
                entries[message.room].append(record.offset)
        return entries

    def _reader(self) -> KafkaConsumer:
        if self._consumer is None:
            self._consumer = log_reader(
                self.config.kafka_bootstrap_servers, "chat-bridge-indexer",
                auto_offset_reset="earliest",  # a chunk that retention removed meanwhile: read what is left
            )
        return self._consumer

    def _close(self) -> None:
        if self._consumer is not None:
            try:
                self._consumer.close()
            except Exception:
                log.exception("closing the indexer's kafka consumer failed")
            self._consumer = None
