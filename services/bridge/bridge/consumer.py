"""The consume loop: Kafka -> Redis, at least once, with idempotent writes.

For each polled batch: apply every record (store.Store: one Lua call per batch); the offsets
are committed at most once per ``commit_interval_ms``. A crash anywhere replays from the
last commit and the replay changes nothing. If Redis lost a partition's history (it is a
cache), the partition is re-read from Kafka into Redis without publishing the old messages
live again.
"""

import logging
import threading
import time
from collections import Counter
from collections.abc import Mapping, Sequence

from kafka import ConsumerRebalanceListener, KafkaConsumer, TopicPartition
from kafka.consumer.fetcher import ConsumerRecord
from kafka.errors import KafkaError, UnknownTopicOrPartitionError
from kafka.structs import MemberState
from redis.exceptions import RedisError
from tenacity import retry, retry_if_exception_type, wait_exponential

from bridge import index, metrics
from bridge.config import Config
from bridge.store import DUPLICATE, NOT_READY, REPLAYED, UNAVAILABLE, WRITTEN, Item, Store
from chat_common import redis_client
from chat_common.messages import Edit, Reaction, Tombstone, parse_record

log = logging.getLogger(__name__)

OUTCOMES = {WRITTEN: "written", REPLAYED: "replayed", DUPLICATE: "duplicate"}
READY_CHECK_INTERVAL_S = 2.0
LAG_INTERVAL_S = 1.0  # how often the lag gauges are updated
# A partition whose Redis shard did not answer (cluster mode) is read again after this long:
# a failover takes seconds, and the other partitions go on meanwhile.
SHARD_RETRY_S = 0.2
REDIS_MEMORY_INTERVAL_S = 5.0  # how often Redis's memory is read (INFO memory) for its gauges
COMMITTED_TIMEOUT_MS = 5000  # asking the group for its commits after a failed batch


def _commit_failed(offsets: object, result: object) -> None:
    if isinstance(result, Exception):
        metrics.ERRORS.labels("commit").inc()
        log.warning("offset commit failed; the batch will be replayed if needed", extra={"error": str(result)})


class _Rebalance(ConsumerRebalanceListener):  # type: ignore[misc]  # kafka-python has no types
    def __init__(self, bridge: "Bridge") -> None:
        self.bridge = bridge

    def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        for tp in revoked:  # another bridge reports these now: no stale lag from this one
            metrics.LAG.labels(str(tp.partition)).set(0)
        log.info("partitions revoked", extra={"partitions": sorted(tp.partition for tp in revoked)})

    def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        metrics.REBALANCES.inc()
        metrics.ASSIGNED.set(len(assigned))
        self.bridge.next_ready_check = 0.0  # check the new partitions' history right away
        log.info("partitions assigned", extra={"partitions": sorted(tp.partition for tp in assigned)})


class Bridge:
    def __init__(self, config: Config) -> None:
        self.config = config
        redis_client.configure(config)
        self.redis = redis_client.connect(config.redis_url, fail_fast=True, socket_timeout=5, socket_connect_timeout=2)
        self.store = Store(self.redis, config.history_max, config.history_max_bytes, config.client_id_ttl_s,
                           config.room_idle_ttl_s, config.reactions_per_message_max)
        self.consumer: KafkaConsumer | None = None
        self.stopping = threading.Event()
        self.last_loop = 0.0  # monotonic time of the last completed poll, for readiness
        self.next_ready_check = 0.0
        self.next_commit = 0.0
        self.uncommitted = False  # records applied since the last commit was sent
        self.next_lag_update = 0.0
        self.next_memory_update = 0.0
        self.history_ready = False  # in the group, and Redis holds its partitions' history
        self.held: dict[TopicPartition, float] = {}  # paused until (monotonic): their Redis shard did not answer
        self.publish_from: dict[int, int] = {}  # partition -> first offset to publish live after a rebuild
        self.indexer = index.Indexer(config, self.redis, self.stopping)
        self._thread: threading.Thread | None = None

    # -- lifecycle -----------------------------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(target=self.run, name="bridge-consumer", daemon=True)
        self._thread.start()
        self.indexer.start()

    def stop(self, timeout: float = 10) -> None:
        self.stopping.set()
        if self._thread:
            self._thread.join(timeout)

    def ready(self) -> dict[str, bool]:
        return {
            "consumer": time.monotonic() - self.last_loop < 30,
            "redis": self._redis_ok(),
            "history": self.history_ready,
        }

    def _redis_ok(self) -> bool:
        try:
            return bool(self.redis.ping())
        except RedisError:
            return False

    @retry(wait=wait_exponential(multiplier=0.2, max=5), retry=retry_if_exception_type(KafkaError))
    def _connect(self) -> KafkaConsumer | None:
        if self.stopping.is_set():
            return None
        consumer = KafkaConsumer(
            bootstrap_servers=self.config.kafka_bootstrap_servers.split(","),
            client_id="chat-bridge",
            group_id=self.config.group_id,
            group_instance_id=self.config.instance_id,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            max_poll_records=self.config.max_poll_records,
            fetch_min_bytes=self.config.fetch_min_bytes,
            fetch_max_wait_ms=self.config.fetch_max_wait_ms,
            session_timeout_ms=10_000,
            heartbeat_interval_ms=2_000,
            # Back within a second of the broker's return (the default backs off to 30 s,
            # long enough for the group to expire this member and rebalance again).
            reconnect_backoff_max_ms=1000,
            # Partitions added to the topic are taken up within seconds (the default: 5 min).
            metadata_max_age_ms=10_000,
            metrics_enabled=False,  # never read (ours are in bridge.metrics); recording costs CPU per fetch
        )
        if self.config.kafka_topic not in consumer.topics():  # fresh metadata from the cluster
            # Joining the group before the topic exists leaves this bridge with nothing to
            # consume until the next metadata refresh; wait (unready) for the topic instead.
            consumer.close()
            log.warning("waiting for the topic to exist", extra={"topic": self.config.kafka_topic})
            raise UnknownTopicOrPartitionError(self.config.kafka_topic)
        consumer.subscribe([self.config.kafka_topic], listener=_Rebalance(self))
        log.info("kafka consumer connected", extra={"group": self.config.group_id})
        return consumer

    def run(self) -> None:
        while not self.stopping.is_set():
            self._update_redis_memory()  # first: also while applying fails (Redis full refuses writes)
            try:
                self.consumer = self.consumer or self._connect()
                if self.consumer is None:
                    break
                self.poll_once()
            except RedisError as error:
                metrics.ERRORS.labels("redis").inc()
                log.warning("redis unavailable; retrying", extra={"error": str(error)})
                self._rewind_to_committed()
                self.stopping.wait(1.0)
            except KafkaError as error:
                metrics.ERRORS.labels("kafka").inc()
                log.warning("kafka error; retrying", extra={"error": str(error)})
                self.stopping.wait(1.0)
            except Exception:
                metrics.ERRORS.labels("other").inc()
                log.exception("consume loop failed; reconnecting")
                self._close_consumer()
                self.stopping.wait(1.0)
        self._close_consumer(commit=True)

    def _close_consumer(self, commit: bool = False) -> None:
        """Leave Kafka. ``commit``: on an orderly stop, between batches, the positions are
        exactly what was applied; after a failure they may be past a batch that was not,
        so nothing is committed then (the restart replays from the last commit)."""
        if self.consumer is not None:
            if commit:
                try:
                    self.consumer.commit(timeout_ms=3000)
                except KafkaError as error:
                    log.warning("final commit failed; a restart replays from the last one", extra={"error": str(error)})
            try:
                self.consumer.close()
            except Exception:
                log.exception("closing the kafka consumer failed")
            self.consumer = None

    def _rewind_to_committed(self) -> None:
        """After a failed batch, read it again from the last commit (nothing is skipped).
        The committed offsets are asked for with a bound: during a rebalance the group
        coordinator answers only once this member polls again, so an unbounded wait here
        left a bridge outside its group for good. If they do not come, the consumer is
        closed; the next one starts from the same commits (static membership: no rebalance)."""
        if self.consumer is None:
            return
        try:
            for tp in self.consumer.assignment():
                committed = self.consumer.committed(tp, timeout_ms=COMMITTED_TIMEOUT_MS)
                if committed is not None:
                    self.consumer.seek(tp, committed)
                else:
                    self.consumer.seek_to_beginning(tp)
        except KafkaError as error:
            log.warning("committed offsets not available; reconnecting", extra={"error": str(error)})
            self._close_consumer()

    # -- one iteration -----------------------------------------------------------------

    @property
    def _kafka(self) -> KafkaConsumer:
        """The connected consumer: the consume loop's steps run only while there is one."""
        if self.consumer is None:
            raise RuntimeError("not connected to kafka")
        return self.consumer

    def poll_once(self) -> None:
        if time.monotonic() >= self.next_ready_check:
            self.next_ready_check = time.monotonic() + READY_CHECK_INTERVAL_S
            stable = self._kafka.group_metadata().state == MemberState.STABLE
            positions = {tp.partition: self._kafka.position(tp) for tp in self._kafka.assignment()}
            for partition in self.store.unready_partitions(positions):
                self.rebuild(partition, positions[partition])
            older = index.not_indexed(self.redis, positions)  # history written before offset indexes existed
            if older:
                ends = self._kafka.end_offsets([TopicPartition(self.config.kafka_topic, p) for p in older])
                index.adopt(self.redis, {tp.partition: end for tp, end in ends.items()})
            self.indexer.partitions = frozenset(positions)
            if stable and not self.history_ready:
                self.store.warm()  # ready means ready to apply at full speed
            self.history_ready = stable

        self._resume_held()
        batches = self._kafka.poll(timeout_ms=self.config.poll_timeout_ms)
        self.last_loop = time.monotonic()
        if batches:
            started = time.perf_counter()
            self.apply(batches)
            self.uncommitted = True
            self._maybe_commit()
            metrics.BATCH_SECONDS.observe(time.perf_counter() - started)
        else:
            self._maybe_commit()
        if time.monotonic() >= self.next_lag_update:
            self.next_lag_update = time.monotonic() + LAG_INTERVAL_S
            self._update_lag()

    def _maybe_commit(self) -> None:
        """Commit what was applied, at most once per ``commit_interval_ms`` (each commit is a
        request to the broker and a write to its offsets log). Asynchronous: the next batch
        is applied while the commit travels. A commit that fails, is overtaken or is not sent
        yet only means a replay, and replays change nothing."""
        if self.uncommitted and time.monotonic() >= self.next_commit:
            self.next_commit = time.monotonic() + self.config.commit_interval_ms / 1000
            self.uncommitted = False
            self._kafka.commit_async(callback=_commit_failed)

    def apply(self, batches: Mapping[TopicPartition, Sequence[ConsumerRecord]]) -> None:
        items: list[Item] = []
        records: list[ConsumerRecord] = []
        metrics.CONSUMED.inc(sum(len(batch) for batch in batches.values()))
        for tp, batch in batches.items():
            for record in batch:
                try:
                    message = parse_record(record.value, record.offset)  # a Message, Tombstone, Edit or Reaction
                except (ValueError, KeyError, TypeError):
                    metrics.APPLIED.labels("invalid").inc()
                    log.error("skipping a record that is not a chat message",
                              extra={"partition": tp.partition, "offset": record.offset})
                    continue
                publish = record.offset >= self.publish_from.get(tp.partition, -1)
                items.append((tp.partition, message, publish))
                records.append(record)
        if not items:
            return
        outcomes = self.store.apply(items)
        now_ms = time.time() * 1000
        lost: dict[int, int] = {}
        unavailable: dict[int, int] = {}  # partition -> its first record not applied
        applied: Counter[str] = Counter()  # counted once per batch: a label lookup costs 2 µs
        deleted: Counter[str] = Counter()
        changed: Counter[tuple[str, str]] = Counter()
        for (partition, message, publish), record, outcome in zip(items, records, outcomes, strict=True):
            if outcome == NOT_READY:
                lost.setdefault(partition, record.offset)
                continue
            if outcome == UNAVAILABLE:
                unavailable.setdefault(partition, record.offset)
                continue
            label = OUTCOMES[outcome] if publish or outcome != WRITTEN else "rebuilt"
            applied[label] += 1
            if isinstance(message, Tombstone):
                deleted[label] += 1  # duplicate: the message was deleted before
            elif isinstance(message, Edit | Reaction):
                changed[("edit" if isinstance(message, Edit) else "reaction", label)] += 1
            if outcome != WRITTEN or not publish:
                continue
            metrics.APPLY_LATENCY.observe(max(0.0, now_ms - record.timestamp) / 1000)
            if isinstance(message, Tombstone):
                log.info("delete published", extra={"msg_id": message.target, "tombstone_id": message.id,
                                                    "room": message.room})
            elif isinstance(message, Edit | Reaction):
                log.info("change published", extra={"msg_id": message.target, "change_id": message.id,
                                                    "room": message.room})
            else:
                log.info("message published", extra={"msg_id": message.id, "room": message.room})
        for label, count in applied.items():
            metrics.APPLIED.labels(label).inc(count)
        for label, count in deleted.items():
            metrics.DELETES_APPLIED.labels(label).inc(count)
        for (kind, label), count in changed.items():
            metrics.CHANGES_APPLIED.labels(kind, label).inc(count)
        for partition, offset in lost.items():
            self.rebuild(partition, offset)
        for partition, offset in unavailable.items():
            self._hold(partition, offset)

    def _hold(self, partition: int, offset: int) -> None:
        """Read the partition again from ``offset`` in a moment: its Redis shard did not
        answer (cluster mode), the other partitions' records were applied."""
        metrics.ERRORS.labels("redis").inc()
        log.warning("redis shard unavailable; partition retried", extra={"partition": partition, "offset": offset})
        tp = TopicPartition(self.config.kafka_topic, partition)
        self._kafka.seek(tp, offset)
        self._kafka.pause(tp)
        self.held[tp] = time.monotonic() + SHARD_RETRY_S

    def _resume_held(self) -> None:
        if not self.held:
            return
        now, assigned = time.monotonic(), self._kafka.assignment()
        due = [tp for tp, until in self.held.items() if until <= now or tp not in assigned]
        for tp in due:
            del self.held[tp]
        resume = [tp for tp in due if tp in assigned]
        if resume:
            self._kafka.resume(*resume)

    def rebuild(self, partition: int, resume_offset: int) -> None:
        """Redis holds nothing for this partition: re-read its recent past into history
        (publishing only from ``resume_offset`` on, what clients have not seen yet)."""
        tp = TopicPartition(self.config.kafka_topic, partition)
        beginning = self._kafka.beginning_offsets([tp])[tp]
        start = max(beginning, resume_offset - self.config.rebuild_depth)
        partitions = len(self._kafka.partitions_for_topic(self.config.kafka_topic))
        self.store.mark_rebuilding(partition, start - 1, partitions)
        self.publish_from[partition] = resume_offset
        self._kafka.seek(tp, start)
        metrics.REBUILDS.inc()
        log.warning("rebuilding history from kafka",
                    extra={"partition": partition, "from_offset": start, "resume_offset": resume_offset})

    def _update_redis_memory(self) -> None:
        """Redis's memory and its limit, for ChatRedisMemoryHigh. A failure here changes
        nothing else: the gauges keep their last values (the batch's own writes report Redis
        errors)."""
        if time.monotonic() < self.next_memory_update:
            return
        self.next_memory_update = time.monotonic() + REDIS_MEMORY_INTERVAL_S
        try:
            memory = redis_client.fullest_memory(self.redis)
        except RedisError as error:
            log.warning("reading redis memory failed", extra={"error": str(error)})
            return
        metrics.REDIS_USED_MEMORY.set(int(memory["used_memory"]))
        metrics.REDIS_MAXMEMORY.set(int(memory["maxmemory"]))

    def _update_lag(self) -> None:
        for tp in self._kafka.assignment():
            highwater = self._kafka.highwater(tp)
            if highwater is not None:
                metrics.LAG.labels(str(tp.partition)).set(max(0, highwater - self._kafka.position(tp)))
