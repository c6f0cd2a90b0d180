"""The consume loop: Kafka -> Redis, at least once, with idempotent writes.

For each polled batch: apply every record (store.Store: one Lua call per batch); the offsets
are committed at most once per ``commit_interval_ms`` (in cluster mode, a partition's once a
replica holds its applies: replicas.py). A crash anywhere replays from the
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
from kafka.structs import MemberState, OffsetAndMetadata
from redis.exceptions import RedisError
from tenacity import retry, retry_if_exception_type, wait_exponential

from bridge import index, metrics
from bridge.config import Config
from bridge.replicas import Replicas
from bridge.store import DUPLICATE, NOT_READY, REPLAYED, UNAVAILABLE, WRITTEN, Item, Store
from chat_common import keys, redis_client
from chat_common.kafka_clients import build
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


class PartitionCountMismatch(KafkaError):  # type: ignore[misc]  # kafka-python has no types
    """The topic's partition count is not KAFKA_TOPIC_PARTITIONS (cluster mode): tried again
    with the connection's backoff, in case the topic or the setting is changed."""


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
        # Cluster mode: what a commit waits for (replicas.py). ``applied_on``: partition -> the
        # primary that took its applies since its last commit; ``committed_at``: the offset
        # last committed per partition, from which it is read again if that primary is replaced.
        self.replicas = Replicas(self.redis, config.replica_wait_ms) if keys.cluster() else None
        self.applied_on: dict[int, str] = {}
        self.committed_at: dict[TopicPartition, int] = {}
        self.topic_partitions = redis_client.TopicPartitions(config)
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
        checks = {
            "consumer": time.monotonic() - self.last_loop < 30,
            "redis": self._redis_ok(),
            "history": self.history_ready,
        }
        if keys.cluster():  # the reason a bridge with the wrong KAFKA_TOPIC_PARTITIONS does not start
            checks["kafka_topic_partitions"] = self.topic_partitions.agree is not False
        return checks

    def _redis_ok(self) -> bool:
        try:
            return bool(self.redis.ping())
        except RedisError:
            return False

    @retry(wait=wait_exponential(multiplier=0.2, max=5), retry=retry_if_exception_type(KafkaError))
    def _connect(self) -> KafkaConsumer | None:
        if self.stopping.is_set():
            return None
        consumer = build(
            KafkaConsumer,
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
        if not self.topic_partitions.check(len(consumer.partitions_for_topic(self.config.kafka_topic) or ())):
            consumer.close()  # not joining the group: its applies would be refused (CROSSSLOT)
            raise PartitionCountMismatch(self.config.kafka_topic)
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
                    offsets = self._committable()
                    if offsets is None or offsets:
                        self.consumer.commit(offsets, timeout_ms=3000)
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
            offsets = self._committable()
            if offsets is None or offsets:
                self._kafka.commit_async(offsets, callback=_commit_failed)

    def _committable(self) -> dict[TopicPartition, OffsetAndMetadata] | None:
        """The offsets to commit: on one node every position (None); in cluster mode those of
        the partitions whose applies since their last commit a replica holds (replicas.py).
        A partition withheld is tried again at the next commit; one whose primary was
        replaced meanwhile is read again from its last commit (what that primary took may
        be lost: the replica that took over is written again, idempotently).

        Measured on the local cluster:3 Redis (local/redis_cluster.py: three primaries with a
        replica each, loopback, a two-core machine at load 15), right after each 500-record
        batch of all six partitions (itself 45 ms at p50): confirming the six partitions
        took 1.4 ms at p50, 24 ms at p99 (a replica still receiving the batch), and 0.55 ms
        of the bridge's CPU (CLUSTER NODES 0.24 ms, the three WAITs 0.31 ms). On the whole
        local cluster:3 stack (one bridge, 3,000 posts to six rooms, one to a few records a
        batch): 1.0 ms on average per commit (chat_bridge_replica_wait_seconds, 281 commits,
        83% under 1 ms), against 1.7 ms for a batch (apply and commit). A commit runs
        at most once per BRIDGE_COMMIT_INTERVAL_MS, so a batch pays that at most, and
        nothing when it shares a commit with others. A replica that does not answer costs
        BRIDGE_REPLICA_WAIT_MS per commit (0.1 s of each second, by default)."""
        if self.replicas is None:
            return None
        assigned = self._kafka.assignment()
        for partition in [p for p in self.applied_on if TopicPartition(self.config.kafka_topic, p) not in assigned]:
            del self.applied_on[partition]  # revoked: its next owner reads it from the last commit
        held = self.replicas.held(self.applied_on)
        if len(held) < len(self.applied_on):
            self.replicas.refresh()  # a primary that did not answer may have been replaced
        # What commit_async() commits by itself: every assigned partition with a position.
        consumed: dict[TopicPartition, OffsetAndMetadata] = self._kafka._subscription.all_consumed_offsets()
        offsets: dict[TopicPartition, OffsetAndMetadata] = {}
        for tp, offset in consumed.items():
            if tp.partition in self.applied_on and tp.partition not in held:
                self.uncommitted = True  # committed at the next round, if a replica holds it by then
                if not self._reread_if_moved(tp):
                    metrics.COMMITS_WITHHELD.labels("replica").inc()
                continue
            self.applied_on.pop(tp.partition, None)
            self.committed_at[tp] = offset.offset
            offsets[tp] = offset
        return offsets

    def _reread_if_moved(self, tp: TopicPartition) -> bool:
        """If the partition's primary is no longer the one that took its applies since its
        last commit (a failover), read it again from that commit, before anything is applied
        on the new primary (a room's newer record there would make its lost ones look
        applied). Whether it was."""
        if self.replicas is None or tp.partition not in self.applied_on:
            return False
        if self.applied_on[tp.partition] == self.replicas.primary_of(tp.partition):
            return False
        del self.applied_on[tp.partition]
        offset = self.committed_at.get(tp)
        if offset is None:
            offset = self._kafka.committed(tp, timeout_ms=COMMITTED_TIMEOUT_MS)
        if offset is not None:
            self._kafka.seek(tp, offset)
        else:
            self._kafka.seek_to_beginning(tp)
        metrics.COMMITS_WITHHELD.labels("moved").inc()
        log.warning("redis primary replaced before a replica confirmed the partition's applies; read again from "
                    "its last commit", extra={"partition": tp.partition, "offset": offset})
        return True

    def apply(self, batches: Mapping[TopicPartition, Sequence[ConsumerRecord]]) -> None:
        if self.replicas is not None:
            batches = {tp: batch for tp, batch in batches.items() if not self._reread_if_moved(tp)}
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
        if self.replicas is not None:
            for partition in {partition for partition, _, _ in items} - unavailable.keys():
                self.applied_on.setdefault(partition, self.replicas.primary_of(partition))
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
