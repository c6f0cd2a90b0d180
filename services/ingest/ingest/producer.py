"""The Kafka producer of an ingest worker process: idempotent, acks=all, bounded waits."""

import logging
import threading
import time

from kafka import KafkaProducer
from kafka.errors import KafkaError

from chat_common.kafka_clients import build
from ingest import metrics
from ingest.config import Config

log = logging.getLogger(__name__)


class KafkaUnavailable(Exception):
    """Kafka did not acknowledge in time; nothing is promised about the record."""


def settings(config: Config) -> dict[str, object]:
    """The producer's settings (bench/profiles/floor_app.py makes one the same way)."""
    timeout_ms = int(config.produce_timeout_s * 1000)
    return dict(
        bootstrap_servers=config.kafka_bootstrap_servers.split(","),
        client_id="chat-ingest",
        acks="all",
        enable_idempotence=True,
        linger_ms=config.kafka_linger_ms,
        max_in_flight_requests_per_connection=config.kafka_max_in_flight,
        # Bounded waits: connecting, metadata, then the whole delivery (after which the
        # record is expired, never sent later), so that a POST answers within
        # produce_timeout_s even while Kafka is away.
        bootstrap_timeout_ms=min(2000, timeout_ms),
        max_block_ms=min(2000, timeout_ms),
        request_timeout_ms=max(1000, timeout_ms - config.kafka_linger_ms - 500),
        delivery_timeout_ms=timeout_ms,
        reconnect_backoff_max_ms=1000,
        # The client's own metrics cost CPU on every record and request: recorded only when
        # asked for (Producer.report_client_metrics exports them).
        metrics_enabled=config.kafka_client_metrics,
    )


class Producer:
    """The worker's one producer, shared by its threads. Made before the worker serves
    (``warm_up``, from app.WarmUp); made again by the next request after a failure."""

    RECONNECT_COOLDOWN_S = 1.0
    KAFKA_CLIENT_EVERY_S = 10.0

    def __init__(self, config: Config) -> None:
        self.config = config
        self._producer: KafkaProducer | None = None
        self._lock = threading.Lock()
        self._failed_at = 0.0
        if config.kafka_client_metrics:
            threading.Thread(target=self.report_client_metrics, name="kafka-client-metrics", daemon=True).start()

    def _create(self) -> KafkaProducer:
        producer = build(KafkaProducer, **settings(self.config))
        try:
            # The topic's partitions and their leaders, now: else the first send waits for them.
            producer.partitions_for(self.config.kafka_topic)
        except KafkaError:
            producer.close(timeout=0)
            raise
        return producer

    def _get(self, made_by: str = "request") -> KafkaProducer:
        if self._producer is not None:
            return self._producer
        with self._lock:
            if self._producer is None:
                if time.monotonic() - self._failed_at < self.RECONNECT_COOLDOWN_S:
                    raise KafkaUnavailable("kafka unreachable (cooling down)")
                try:
                    self._producer = self._create()
                    metrics.PRODUCER_CONNECTS.labels(made_by).inc()
                    log.info("kafka producer connected", extra={"bootstrap": self.config.kafka_bootstrap_servers})
                except KafkaError as error:
                    self._failed_at = time.monotonic()
                    raise KafkaUnavailable(str(error)) from error
        return self._producer

    def send(self, room: str, value: bytes) -> int:
        """Produce and wait for the acknowledgement; return the record's offset."""
        try:
            producer = self._get()
        except KafkaUnavailable:
            metrics.PRODUCE_ERRORS.labels("unreachable").inc()  # refused without trying: no producer
            raise
        started = time.perf_counter()
        try:
            future = producer.send(self.config.kafka_topic, key=room.encode(), value=value)
            record = future.get(timeout=self.config.produce_timeout_s + 1)
        except KafkaError as error:
            metrics.PRODUCE_ERRORS.labels(type(error).__name__).inc()
            self._discard(producer)
            raise KafkaUnavailable(str(error)) from error
        metrics.PRODUCE_SECONDS.observe(time.perf_counter() - started)
        offset: int = record.offset
        return offset

    def send_to(self, topic: str, key: bytes, value: bytes | None) -> int:
        """``send`` to another topic, with any key (``value`` None: a Kafka tombstone)."""
        producer = self._get()
        try:
            record = producer.send(topic, key=key, value=value).get(timeout=self.config.produce_timeout_s + 1)
        except KafkaError as error:
            metrics.PRODUCE_ERRORS.labels(type(error).__name__).inc()
            self._discard(producer)
            raise KafkaUnavailable(str(error)) from error
        offset: int = record.offset
        return offset

    def _discard(self, producer: KafkaProducer) -> None:
        """Start afresh after a failed send: a producer can stay stuck on stale connections
        or idempotence state after a broker restart, while a new one bootstraps cleanly.
        Requests meanwhile get 503 at once (the cooldown) instead of waiting."""
        with self._lock:
            if self._producer is producer:
                self._producer = None
                self._failed_at = time.monotonic()
        try:
            producer.close(timeout=0)
        except Exception:
            log.exception("closing a failed kafka producer")

    def warm_up(self) -> bool:
        """Connect now if not connected (bootstrap, the topic's metadata); whether connected."""
        try:
            self._get("warm_up")
        except KafkaUnavailable as error:
            log.warning("kafka producer not connected yet", extra={"error": str(error)})
            return False
        return True

    def report_client_metrics(self) -> None:
        """Every KAFKA_CLIENT_EVERY_S, for good: ``copy_client_metrics``."""
        while True:
            time.sleep(self.KAFKA_CLIENT_EVERY_S)
            self.copy_client_metrics()

    def copy_client_metrics(self) -> None:
        """kafka-python's producer metrics (when recorded) into ours."""
        producer = self._producer
        values = (producer.metrics() or {}).get("producer-metrics", {}) if producer is not None else {}
        for name in metrics.KAFKA_CLIENT_METRICS:
            value = values.get(name)
            if isinstance(value, (int, float)) and value == value:  # not NaN: the client has a sample
                metrics.KAFKA_CLIENT.labels(name).set(value)

    def partition_count(self) -> int:
        """The topic's partition count, as the connected producer knows it (0: not connected)."""
        if self._producer is None:
            return 0
        return len(self._producer.partitions_for(self.config.kafka_topic) or ())

    def close(self) -> None:
        if self._producer is not None:
            self._producer.close(timeout=5)
