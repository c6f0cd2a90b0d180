"""Taking a message back: who may, and whether it is already gone.

The message itself is read back from Kafka, the database, by its id (its offset in the
room's partition): however old, it says who sent it (the name, and a digest of the
browser session it came from). Allowed to delete it: that same session; behind a sign-in
proxy, the same signed-in name or one of ``MODERATORS``. The ids already deleted are a
Redis set that ingest adds to as soon as Kafka holds the tombstone (so a repeat writes
nothing) and that the bridge keeps from the tombstones in the log (so it is rebuilt after
Redis restarts).
"""

import logging
import threading
import time
from collections.abc import Collection

from kafka import KafkaConsumer, TopicPartition
from kafka.errors import KafkaError
from redis import Redis
from redis.exceptions import RedisError

from chat_common import errors
from chat_common.kafka_reader import log_reader
from chat_common.messages import Message, deleted_key, message_or_none, room_partition, session_tag
from ingest.config import Config
from ingest.producer import KafkaUnavailable

log = logging.getLogger(__name__)

READ_TIMEOUT_S = 5.0


class MessageLog:
    """Reads single messages back from the topic: one consumer per worker process,
    outside any group, used by one thread at a time (deletes are rare)."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self._consumer: KafkaConsumer | None = None
        self._lock = threading.Lock()

    def message(self, room: str, id: int) -> Message | None:
        """The Message with this id in this room (with its ``session``), or None if there is
        none: past the end, before retention's start, another room's record, a tombstone.
        KafkaUnavailable if Kafka does not answer."""
        with self._lock:
            try:
                return self._read(room, id)
            except KafkaError as error:
                self._close()
                raise KafkaUnavailable(str(error)) from error

    def _read(self, room: str, id: int) -> Message | None:
        consumer = self._get()
        partitions = consumer.partitions_for_topic(self.config.kafka_topic)
        if not partitions:
            raise KafkaUnavailable(f"no partitions known for {self.config.kafka_topic}")
        tp = TopicPartition(self.config.kafka_topic, room_partition(room, len(partitions)))
        consumer.assign([tp])
        timeout_ms = int(READ_TIMEOUT_S * 1000)
        beginning = consumer.beginning_offsets([tp], timeout_ms)[tp]
        end = consumer.end_offsets([tp], timeout_ms)[tp]
        if not beginning <= id < end:
            return None
        consumer.seek(tp, id)
        deadline = time.monotonic() + READ_TIMEOUT_S
        while time.monotonic() < deadline:
            for record in consumer.poll(timeout_ms=500, max_records=1).get(tp, []):
                if record.offset != id or record.key != room.encode():
                    return None
                return message_or_none(record.value, record.offset)
        raise KafkaUnavailable(f"no record read at offset {id} within {READ_TIMEOUT_S} s")

    def _get(self) -> KafkaConsumer:
        if self._consumer is None:
            self._consumer = log_reader(self.config.kafka_bootstrap_servers, "chat-ingest-deletes",
                                        request_timeout_ms=int(READ_TIMEOUT_S * 1000))
        return self._consumer

    def _close(self) -> None:
        if self._consumer is not None:
            try:
                self._consumer.close()
            except Exception:
                log.exception("closing the message-log consumer")
            self._consumer = None

    def close(self) -> None:
        with self._lock:
            self._close()


def may_delete(message: Message, signed_in_user: str | None, session_id: str | None,
               moderators: Collection[str]) -> bool:
    """Whether the requester may delete ``message``: behind a sign-in proxy, its author's
    signed-in name or a moderator; otherwise the browser session it was sent from."""
    if signed_in_user:
        return message.user == signed_in_user or signed_in_user in moderators
    return session_id is not None and message.session is not None and message.session == session_tag(session_id)


class Deleted:
    """The room's deleted ids in Redis. If Redis does not answer, a delete is refused (503
    with Retry-After), as every request whose checks cannot be made."""

    def __init__(self, redis: Redis, retry_after_s: float) -> None:
        self.redis = redis
        self.retry_after_s = retry_after_s

    def contains(self, room: str, id: int) -> bool:
        try:
            return bool(self.redis.sismember(deleted_key(room), str(id)))
        except RedisError as error:
            log.warning("delete refused: redis unavailable", extra={"error": str(error)})
            raise errors.redis_unavailable(self.retry_after_s) from error

    def add(self, room: str, id: int) -> None:
        try:
            self.redis.sadd(deleted_key(room), str(id))
        except RedisError as error:
            log.warning("deleted id not recorded: redis unavailable (the bridge records it)",
                        extra={"error": str(error)})
