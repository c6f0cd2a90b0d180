"""ingest's public routes: POST /api/rooms/<room>/messages, DELETE .../messages/<id>,
POST /api/rooms/<room>/typing and POST /api/session.

Before any of them (chat_common.ops): the Host is allowed and an unsafe request comes from
the site's own pages. Every refusal is an ApiError, counted by the error handler (app.py).
"""

import functools
import logging
import time
from dataclasses import dataclass, replace

from flask import Blueprint, Response, current_app, g, request
from redis.exceptions import RedisError

from chat_common import errors
from chat_common.errors import ApiError
from chat_common.messages import Message, Tombstone, session_tag
from chat_common.participants import address_tag
from chat_common.sessions import session_id, start_session
from ingest import metrics, validation
from ingest.admission import Admission, Budget, Budgets
from ingest.config import Config
from ingest.deletes import Deleted, MessageLog, may_delete
from ingest.producer import KafkaUnavailable, Producer
from ingest.rooms import require_member
from ingest.targets import quote, refuse
from ingest.typing_signals import Typing

log = logging.getLogger(__name__)

api = Blueprint("api", __name__)

LIMIT_MESSAGES = {  # budget scope -> what a 429 tells the sender
    "user": "Too many messages; wait {} s before sending again.",
    "ip": "Too many requests from your address; wait {} s.",
    "ip_bytes": "Too much sent from your address; wait {} s.",
    "ip_rooms": "Too many new rooms from your address; wait {} s, or post in an existing room.",
    "ip_typing": "Too many typing signals from your address; wait {} s.",
    "ip_deletes": "Too many deletes from your address; wait {} s.",
    "ip_day": "Your address has sent its messages for today; wait {} s.",
    "ip_bytes_day": "Your address has sent its share of text for today; wait {} s.",
}


@dataclass(frozen=True)
class Ingest:
    """What the routes use, made once per app (app.py)."""

    config: Config
    producer: Producer
    message_log: MessageLog
    admission: Admission
    budgets: Budgets
    typing: Typing
    deleted: Deleted


# The digest of a client address (chat_common.participants), kept per process: a POST would
# otherwise parse its address and compute an HMAC each time (7 µs in process, more under
# load). Bounded: many addresses cost at most this many entries (about 200 bytes each).
_address_tag = functools.lru_cache(maxsize=4096)(address_tag)


def _ingest() -> Ingest:
    ingest: Ingest = current_app.extensions["chat.ingest"]
    return ingest


def _address() -> str:
    return request.remote_addr or "unknown"


def _admit(room: str, budgets: list[Budget], user: str | None = None, client_id: str | None = None,
           takes_part: bool = False) -> str | None:
    """One Redis round trip before producing (admission.py): the stored message (JSON) for a
    retried ``client_id``, else 409 if a session present in the room holds ``user`` and this
    request is not from it (a signed-in name needs no hold), else 429 if a budget is spent;
    admitted and ``takes_part``: the address takes part in the room (the directory ranks by it)."""
    ingest = _ingest()
    took_part = _address_tag(ingest.config.session_secret, _address()) if takes_part else ""
    verdict = ingest.admission.check(room, budgets, client_id=client_id, session=session_id(),
                                     name=None if user is None or g.get("user") else user, took_part=took_part)
    refuse(verdict, user, LIMIT_MESSAGES)
    if verdict.replay_id is None:
        return None
    if verdict.replay_json:
        return verdict.replay_json
    return _read_back(room, int(verdict.replay_id))


def _read_back(room: str, id: int) -> str | None:
    """A replayed message that left the room's window, read back from Kafka (None if it is
    gone from the log too: the retry is then stored as a new message)."""
    try:
        message = _ingest().message_log.message(room, id)
    except KafkaUnavailable as error:
        log.warning("kafka unavailable", extra={"room": room, "error": str(error)})
        raise errors.kafka_unavailable(_ingest().config.retry_after_s) from error
    return None if message is None else replace(message, session=None).to_json()


def _produce(room: str, value: bytes, doing: str) -> int:
    try:
        return _ingest().producer.send(room, value)
    except KafkaUnavailable as error:
        log.warning("kafka unavailable", extra={"room": room, "error": str(error)})
        raise errors.kafka_unavailable(_ingest().config.retry_after_s, doing) from error


@api.post("/api/rooms/<room>/messages")
def post_message(room: str) -> Response:
    validation.check_room(room)
    require_member(room)  # a private room: its members only (ingest/rooms.py)
    body_bytes = len(request.get_data())
    body = validation.parse_body(request)
    user = g.get("user") or validation.clean_user(body.get("user"))  # the sign-in proxy's name wins
    text = validation.clean_text(body.get("text"))
    client_id = validation.clean_client_id(body.get("client_id"))
    stored = _admit(room, _ingest().budgets.post(user, _address(), body_bytes), user, client_id, takes_part=True)
    if stored:
        metrics.REPLAYED.inc()
        return Response(stored, status=201, content_type="application/json")

    reply_to = quote(_ingest(), room, body.get("reply_to"))  # read back from Kafka only for a reply
    sid = session_id()
    message = Message(room=room, user=user, text=text, ts=int(time.time() * 1000), client_id=client_id,
                      session=session_tag(sid) if sid else None,  # who may delete it later
                      reply_to=reply_to)
    stored_message = replace(message, id=str(_produce(room, message.kafka_value(), "stored")))
    metrics.MESSAGES_ACCEPTED.inc()
    if reply_to is not None:
        metrics.CHANGES.labels("reply").inc()
    log.info("message produced", extra={"msg_id": stored_message.id, "room": room, "client_id": client_id})
    return Response(stored_message.to_json(), status=201, content_type="application/json")


@api.delete("/api/rooms/<room>/messages/<id>")
def delete_message(room: str, id: str) -> Response:
    """Take a message back: 204 once Kafka holds a tombstone for it, after it in the room's
    log. A repeat answers 204 and writes nothing. The address's delete budget is spent
    before the message is read back from Kafka, so refused deletes cost it too."""
    ingest = _ingest()
    validation.check_room(room)
    offset = validation.clean_message_id(id)
    require_member(room)  # a private room: its members only (ingest/rooms.py)
    _admit(room, ingest.budgets.delete(_address()))
    try:
        message = ingest.message_log.message(room, offset)
    except KafkaUnavailable as error:
        log.warning("kafka unavailable", extra={"room": room, "error": str(error)})
        raise errors.kafka_unavailable(ingest.config.retry_after_s, "deleted") from error
    if message is None:
        raise ApiError(404, "message_not_found", "This room has no message with that id.")
    if not may_delete(message, g.get("user"), session_id(), ingest.config.moderators):
        raise ApiError(403, "forbidden", "Only the person who sent a message can delete it.")
    if ingest.deleted.contains(room, offset):
        metrics.DELETE_REPEATS.inc()
        return Response(status=204)
    _admit(room, ingest.budgets.delete_by(message.user))

    tombstone = Tombstone(room=room, target=str(offset), ts=int(time.time() * 1000), by=g.get("user") or message.user)
    tombstone_id = _produce(room, tombstone.kafka_value(), "deleted")
    ingest.deleted.add(room, offset)
    metrics.DELETES.inc()
    log.info("delete produced", extra={"msg_id": str(offset), "tombstone_id": str(tombstone_id), "room": room})
    return Response(status=204)


@api.post("/api/rooms/<room>/typing")
def typing_signal(room: str) -> Response:
    """Tell the room's readers that this name is typing: never stored, no id."""
    ingest = _ingest()
    validation.check_room(room)
    require_member(room)  # a private room: its members only (ingest/rooms.py)
    body_bytes = len(request.get_data())
    body = validation.parse_body(request)
    user = g.get("user") or validation.clean_user(body.get("user"))
    _admit(room, ingest.budgets.typing(_address(), body_bytes), user)
    try:
        wait_s = ingest.typing.signal(room, user)
    except RedisError as error:
        log.warning("typing signal refused: redis unavailable", extra={"room": room, "error": str(error)})
        raise errors.redis_unavailable(ingest.config.retry_after_s) from error
    if wait_s:
        raise errors.rate_limited(f"One typing signal every {ingest.config.typing_interval_s:g} s; wait {wait_s} s.",
                                  wait_s)
    metrics.TYPING.inc()
    return Response(status=204)


@api.post("/api/session")
def new_session() -> Response:
    """Give the browser its session cookie (if it has none), before it joins a room: while
    connected, its session holds its name there."""
    start_session()
    return Response(status=204)
