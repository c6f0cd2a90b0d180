"""What edits, reactions and replies share: the message they name, read back from Kafka
(deletes.py) and not deleted, and its latest state as the bridge keeps it in Redis (the
room's edits and reactions hashes)."""

import json
import logging
from typing import TYPE_CHECKING

from redis.exceptions import RedisError

from chat_common import errors
from chat_common.errors import ApiError
from chat_common.messages import Message, edits_key, quote_of, reactions_key
from ingest.producer import KafkaUnavailable

if TYPE_CHECKING:
    from ingest.routes import Ingest

log = logging.getLogger(__name__)


def find(ingest: "Ingest", room: str, id: int, doing: str) -> Message | None:
    """The message ``id`` of ``room`` read back from Kafka, or None; 503 if Kafka does not answer."""
    try:
        return ingest.message_log.message(room, id)
    except KafkaUnavailable as error:
        log.warning("kafka unavailable", extra={"room": room, "error": str(error)})
        raise errors.kafka_unavailable(ingest.config.retry_after_s, doing) from error


def target(ingest: "Ingest", room: str, id: int, doing: str) -> Message:
    """The message ``id`` of ``room``: 404 if there is none, 409 if it was deleted."""
    message = find(ingest, room, id, doing)
    if message is None:
        raise ApiError(404, "message_not_found", "This room has no message with that id.")
    if ingest.deleted.contains(room, id):
        raise ApiError(409, "message_deleted", "That message was deleted.")
    return message


def latest(ingest: "Ingest", room: str, message: Message) -> tuple[str, float | None]:
    """The message's text now and when it was edited: its latest edit the bridge applied,
    else as posted (None)."""
    assert message.id is not None
    stored = _hget(ingest, edits_key(room), message.id)
    if stored is None:
        return message.text, None
    fields = json.loads(stored)
    return str(fields["text"]), float(fields["edited_ts"])


def reactions_of(ingest: "Ingest", room: str, id: str) -> dict[str, list[str]]:
    """The message's reactions the bridge applied: {emoji: [users]}."""
    stored = _hget(ingest, reactions_key(room), id)
    found = json.loads(stored) if stored else {}
    return found if isinstance(found, dict) else {}


def quote(ingest: "Ingest", room: str, reply_to: object) -> dict[str, str] | None:
    """A post's ``reply_to`` as stored: the quoted message's id, author and first line now;
    422 unless it names a message of this room that is not deleted."""
    if reply_to is None:
        return None
    refused = ApiError(422, "invalid_reply_to", "reply_to names a message of this room that is not deleted.")
    if not isinstance(reply_to, str) or not reply_to.isascii() or not reply_to.isdigit() or len(reply_to) > 19:
        raise refused
    message = find(ingest, room, int(reply_to), "stored")
    if message is None or ingest.deleted.contains(room, int(reply_to)):
        raise refused
    return quote_of(message, latest(ingest, room, message)[0])


def _hget(ingest: "Ingest", key: str, field: str) -> str | None:
    try:
        value = ingest.deleted.redis.hget(key, field)
    except RedisError as error:
        log.warning("change refused: redis unavailable", extra={"error": str(error)})
        raise errors.redis_unavailable(ingest.config.retry_after_s) from error
    return None if value is None else str(value)
