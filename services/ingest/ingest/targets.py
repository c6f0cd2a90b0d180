"""What edits, reactions and replies share: the message they name, read back from Kafka
(deletes.py) and not deleted, and its latest state as the bridge keeps it in Redis (the
room's edits and reactions hashes); and, for their routes, the request's checks and the
produce, as routes.py makes them for posts."""

import json
import logging
from typing import TYPE_CHECKING

from flask import current_app, g, request
from redis.exceptions import RedisError

from chat_common import errors
from chat_common.errors import ApiError
from chat_common.messages import Message, edits_key, quote_of, reactions_key
from chat_common.sessions import session_id
from ingest import metrics
from ingest.admission import Budget, Verdict
from ingest.producer import KafkaUnavailable

if TYPE_CHECKING:
    from ingest.routes import Ingest

log = logging.getLogger(__name__)

LIMIT_MESSAGES = {  # budget scope -> what a 429 tells the sender
    "user": "Too many messages and edits; wait {} s before sending again.",
    "ip": "Too many requests from your address; wait {} s.",
    "ip_bytes": "Too much sent from your address; wait {} s.",
    "ip_day": "Your address has sent its messages for today; wait {} s.",
    "ip_bytes_day": "Your address has sent its share of text for today; wait {} s.",
    "user_reactions": "Too many reactions; wait {} s.",
}


def current() -> "Ingest":
    ingest: Ingest = current_app.extensions["chat.ingest"]
    return ingest


def address() -> str:
    return request.remote_addr or "unknown"


def admit(ingest: "Ingest", room: str, budgets: list[Budget], user: str | None = None) -> None:
    """One Redis round trip (admission.py): 409 if a session present in the room holds
    ``user`` and this request is not from it (a signed-in name needs no hold), else 429 if a
    budget is spent."""
    verdict = ingest.admission.check(room, budgets, session=session_id(),
                                     name=None if user is None or g.get("user") else user)
    refuse(verdict, user, LIMIT_MESSAGES)


def refuse(verdict: Verdict, user: str | None, limit_messages: dict[str, str]) -> None:
    """The answer to an admission the room refused: 409 for a name held by another session,
    else 429 with the spent budget's message (``limit_messages``: scope -> text)."""
    if verdict.name_taken:
        raise ApiError(409, "name_taken", f'Someone else in this room is using the name "{user}"; pick another name.')
    if verdict.limited:
        scope, wait_s = verdict.limited
        metrics.RATE_LIMITED.labels(scope).inc()
        raise errors.rate_limited(limit_messages[scope].format(wait_s), wait_s)


def produce(ingest: "Ingest", room: str, value: bytes, doing: str) -> int:
    try:
        return ingest.producer.send(room, value)
    except KafkaUnavailable as error:
        log.warning("kafka unavailable", extra={"room": room, "error": str(error)})
        raise errors.kafka_unavailable(ingest.config.retry_after_s, doing) from error


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
