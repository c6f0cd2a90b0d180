"""Private rooms: the rooms topic applied to Redis (chat_common/private.py has the records
and the keys).

Its own consumer, outside the group: the topic is compacted and small (a few hundred bytes
per room and member), so every bridge reads all of it from the beginning at start, then
follows it. Once it has read to the end it saw at start, it marks Redis ``ready``; readers
refuse every private room until then. If Redis loses its data (``ready`` gone), it reads the
topic again from the beginning: a private room is never readable from a partial state, and
its name alone keeps it private meanwhile (it answers 503, never as a public room).
"""

import logging
import secrets
import threading

from kafka import KafkaConsumer, TopicPartition
from kafka.errors import KafkaError, UnknownTopicOrPartitionError
from redis.exceptions import RedisError, WatchError

from bridge.config import Config
from chat_common import redis_client
from chat_common.kafka_reader import log_reader
from chat_common.private import STATE_KEY, PrivateRooms, parse_record

log = logging.getLogger(__name__)

POLL_TIMEOUT_MS = 500  # also how soon a Redis that lost its data is noticed
RETRY_S = 1.0


class RoomsApplier:
    def __init__(self, config: Config, stopping: threading.Event) -> None:
        self.config = config
        redis_client.configure(config)
        self.redis = redis_client.connect(config.redis_url, socket_timeout=5, socket_connect_timeout=2)
        self.rooms = PrivateRooms(self.redis)
        self.stopping = stopping
        self.consumer: KafkaConsumer | None = None
        self.epoch = ""  # this read of the topic, written to Redis when it starts
        self.target: dict[TopicPartition, int] = {}  # the ends to reach before Redis is marked ready
        self.ready = False  # Redis was marked ready by this read
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self.run, name="bridge-rooms", daemon=True)
        self._thread.start()

    def run(self) -> None:
        while not self.stopping.is_set():
            try:
                if self.consumer is None:
                    self.consumer = self._connect()
                    self._read_from_start()
                self.poll_once()
            except (KafkaError, RedisError) as error:
                log.warning("private rooms: retrying", extra={"error": str(error)})
                self._close()
                self.stopping.wait(RETRY_S)
            except Exception:
                log.exception("private rooms: apply loop failed; starting again")
                self._close()
                self.stopping.wait(RETRY_S)
        self._close()

    def _connect(self) -> KafkaConsumer:
        consumer = log_reader(self.config.kafka_bootstrap_servers, "chat-bridge-rooms")  # the whole topic, in no group
        partitions = consumer.partitions_for_topic(self.config.kafka_rooms_topic)
        if not partitions:
            consumer.close()
            raise UnknownTopicOrPartitionError(self.config.kafka_rooms_topic)
        consumer.assign([TopicPartition(self.config.kafka_rooms_topic, p) for p in sorted(partitions)])
        return consumer

    def _close(self) -> None:
        if self.consumer is not None:
            try:
                self.consumer.close()
            except Exception:
                log.exception("closing the rooms consumer failed")
            self.consumer = None
        self.ready = False

    def _read_from_start(self) -> None:
        """Read the whole topic again into Redis; it is marked ready once this read reaches
        the ends the topic has now (and only if Redis kept this read's epoch meanwhile)."""
        assert self.consumer is not None
        self.epoch = secrets.token_hex(8)
        self.redis.hset(STATE_KEY, "epoch", self.epoch)
        assignment = list(self.consumer.assignment())
        self.consumer.seek_to_beginning(*assignment)
        self.target = self.consumer.end_offsets(assignment)
        self.ready = False
        log.info("private rooms: reading the topic from its beginning", extra={"epoch": self.epoch})

    def poll_once(self) -> None:
        assert self.consumer is not None
        if self.ready and not self.redis.hexists(STATE_KEY, "ready"):
            log.warning("private rooms: redis lost them; reading the topic again")
            self._read_from_start()
        for tp, records in self.consumer.poll(timeout_ms=POLL_TIMEOUT_MS).items():
            for record in records:
                try:
                    parsed = parse_record(record.key, record.value)
                except (ValueError, KeyError, TypeError):
                    log.error("skipping a record that is not a private room's",
                              extra={"partition": tp.partition, "offset": record.offset})
                    continue
                self.rooms.apply(parsed, record.offset)
        if not self.ready and all(self.consumer.position(tp) >= end for tp, end in self.target.items()):
            self._mark_ready()

    def _mark_ready(self) -> None:
        with self.redis.pipeline(transaction=True) as pipe:  # the cluster client's default is False
            try:
                pipe.watch(STATE_KEY)
                if pipe.hget(STATE_KEY, "epoch") != self.epoch.encode():
                    raise WatchError("redis lost this read")
                pipe.multi()
                pipe.hset(STATE_KEY, "ready", "1")
                pipe.execute()
            except WatchError:
                log.warning("private rooms: redis lost its data while the topic was read; reading again")
                self._read_from_start()
                return
        self.ready = True
        log.info("private rooms: redis holds them all", extra={"epoch": self.epoch})
