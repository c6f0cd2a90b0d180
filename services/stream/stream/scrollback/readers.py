"""The worker's Kafka consumers for reading the log at given offsets: at most ``size`` of them,
each taken for one read at a time; a read waits ``wait_s`` at most for one (then Busy, 503)."""

import contextlib
import logging
import time
from collections.abc import Iterator
from typing import Any

from gevent.queue import Empty, Queue
from kafka import KafkaConsumer, TopicPartition
from kafka.errors import KafkaError

from chat_common.kafka_reader import log_reader
from stream import metrics

log = logging.getLogger(__name__)

BEGINNING_TTL_S = 10.0  # how long a partition's first offset (moved only by retention) is reused
POLL_TIMEOUT_MS = 1000


class Busy(Exception):
    """Every Kafka reader of this worker stayed busy for ``wait_s``."""


class ReaderPool:
    def __init__(self, bootstrap_servers: str, size: int, wait_s: float) -> None:
        self.bootstrap_servers = bootstrap_servers
        self.size = size
        self.wait_s = wait_s
        self._idle: Queue = Queue()  # Kafka consumers not in use
        self._created = 0
        self._waiting = 0  # reads waiting for a consumer
        self._beginnings: dict[int, tuple[int, float]] = {}  # partition -> (its first offset, monotonic time read)

    def busy(self) -> bool:
        """No consumer free now, or a read waits for one."""
        return self._waiting > 0 or (self._idle.empty() and self._created >= self.size)

    @contextlib.contextmanager
    def consumer(self, tp: TopicPartition) -> Iterator[KafkaConsumer]:
        """One of the consumers, assigned to ``tp`` and paused (no fetch ahead), for one read."""
        with self._reader() as consumer:
            if consumer.assignment() != {tp}:
                consumer.assign([tp])
                consumer.pause(tp)
            yield consumer

    def beginning(self, tp: TopicPartition) -> int:
        """The partition's first offset (retention moves it), read again every BEGINNING_TTL_S."""
        offset, read_at = self._beginnings.get(tp.partition, (None, 0.0))
        if offset is None or time.monotonic() - read_at > BEGINNING_TTL_S:
            with self.consumer(tp) as consumer:
                offset = int(consumer.beginning_offsets([tp])[tp])
            self._beginnings[tp.partition] = (offset, time.monotonic())
        return offset

    def known_beginning(self, partition: int) -> int:
        """The partition's first offset as last read (0 if never)."""
        return self._beginnings.get(partition, (0, 0.0))[0]

    def close(self) -> None:
        """Close the consumers not in use."""
        while not self._idle.empty():
            self._idle.get_nowait().close()
            self._created -= 1

    @contextlib.contextmanager
    def _reader(self) -> Iterator[KafkaConsumer]:
        try:
            consumer = self._idle.get_nowait()
        except Empty:
            if self._created < self.size:
                self._created += 1
                try:
                    consumer = self._new_consumer()
                except BaseException:
                    self._created -= 1
                    raise
            else:
                self._waiting += 1
                try:
                    consumer = self._idle.get(timeout=self.wait_s)
                except Empty:
                    metrics.SCROLLBACK_REFUSED.labels("busy").inc()
                    raise Busy() from None
                finally:
                    self._waiting -= 1
        try:
            yield consumer
        except KafkaError:
            self._created -= 1  # its state is unknown: a new one next time
            try:
                consumer.close()
            except Exception:
                log.exception("closing a scrollback consumer failed")
            raise
        except BaseException:
            self._idle.put(consumer)
            raise
        self._idle.put(consumer)

    def _new_consumer(self) -> KafkaConsumer:
        return log_reader(
            self.bootstrap_servers, "chat-stream-history",
            auto_offset_reset="earliest",  # a record retention removed meanwhile: read on from the beginning
            fetch_max_wait_ms=0,  # what the log holds now; never wait for more
            max_partition_fetch_bytes=8192,  # a few records past the one sought (a whole batch at least)
        )


def poll(consumer: KafkaConsumer, tp: TopicPartition, max_records: int) -> list[Any]:
    """The next records of ``tp`` from the consumer's position: polled once more if the first
    poll came back empty short of the partition's end (a fetch was still on its way)."""
    records: list[Any] = consumer.poll(timeout_ms=POLL_TIMEOUT_MS, max_records=max_records).get(tp, [])
    if not records and consumer.position(tp) < consumer.end_offsets([tp])[tp]:
        records = consumer.poll(timeout_ms=POLL_TIMEOUT_MS, max_records=max_records).get(tp, [])
    return records
