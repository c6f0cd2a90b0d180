"""Private rooms (chat_common/private.py): creating one, joining by invite, the owner's
rotation and removals, and the membership check every room route makes.

Each change is a record in the rooms topic; the answer comes once Kafka holds it, and the
record is then written to Redis at once (the bridge applies the same log later, and an older
record never undoes a newer one), so the next request already sees it.
"""

import logging

from flask import Blueprint, Response, current_app, g, jsonify, request
from redis.exceptions import RedisError

from chat_common import errors
from chat_common.errors import ApiError
from chat_common.private import (
    Access,
    Membership,
    PrivateRooms,
    RoomRecord,
    invite_hash,
    invite_url,
    is_private,
    member_id,
    new_invite,
    new_room_name,
)
from chat_common.sessions import session_id
from ingest import metrics, validation
from ingest.admission import Budget
from ingest.producer import KafkaUnavailable

log = logging.getLogger(__name__)

rooms_api = Blueprint("rooms", __name__)

MAX_INVITE_CHARS = 100
EXTENSION = "chat.private"


def not_found() -> ApiError:
    """The answer for a private room to anyone not in it, the same as for a room that does not exist."""
    return ApiError(404, "room_not_found", "There is no such room (or it is private and you were not invited).")


def _private() -> PrivateRooms:
    private: PrivateRooms = current_app.extensions[EXTENSION]
    return private


def _retry_after_s() -> int:
    retry: int = current_app.extensions["chat.ingest"].config.retry_after_s
    return retry


def _who() -> str | None:
    return member_id(g.get("user"), session_id())


def _access(room: str) -> Access:
    """The asker's access to the private room ``room``; 503 unless Redis holds the whole state."""
    try:
        access = _private().access(room, _who())
    except RedisError as error:
        raise errors.redis_unavailable(_retry_after_s()) from error
    if access is Access.NOT_READY:
        raise ApiError(503, "rooms_unavailable", "Private rooms are being restored; try again.",
                       retry_after=_retry_after_s())
    return access


def require_member(room: str) -> None:
    """For every route of a room: a private room's members (and owner) only; 404 for anyone
    else. Public rooms: nothing to check."""
    if is_private(room) and _access(room) is Access.NONE:
        raise not_found()


def _require_owner(room: str) -> str:
    access = _access(room)
    if access is Access.NONE:
        raise not_found()
    if access is not Access.OWNER:
        raise ApiError(403, "forbidden", "Only the room's owner can do this.")
    owner = _who()
    assert owner is not None
    return owner


def _identified() -> str:
    who = _who()
    if who is None:
        raise ApiError(401, "no_session", "Start a session first (POST /api/session), or sign in.")
    return who


def _write(record: RoomRecord | Membership, value: bytes | None) -> None:
    """Produce the record (acks=all), then apply it to Redis."""
    ingest = current_app.extensions["chat.ingest"]
    try:
        offset = ingest.producer.send_to(ingest.config.kafka_rooms_topic, record.key(), value)
    except KafkaUnavailable as error:
        log.warning("kafka unavailable", extra={"room": record.room, "error": str(error)})
        raise errors.kafka_unavailable(_retry_after_s(), "saved") from error
    try:
        _private().apply(record, offset)
    except RedisError as error:  # Kafka holds it: the bridge applies it
        log.warning("private room change not applied to redis", extra={"room": record.room, "error": str(error)})


def _admit(room: str, budgets: list[Budget]) -> None:
    """Spend the address's budgets (one Redis call; 503 if Redis does not answer)."""
    verdict = current_app.extensions["chat.ingest"].admission.check(room, budgets)
    if verdict.limited:
        scope, wait_s = verdict.limited
        metrics.RATE_LIMITED.labels(scope).inc()
        what = "new rooms" if scope == "ip_rooms" else "requests"
        raise errors.rate_limited(f"Too many {what} from your address; wait {wait_s} s.", wait_s)


def _address() -> str:
    return request.remote_addr or "unknown"


def _new_invite(room: str, owner: str, status: int, logged: str) -> Response:
    """Write the room's record with a new invite token (older links stop working); answer
    ``status`` with its invite link."""
    token = new_invite()
    record = RoomRecord(room, owner, invite_hash(token))
    _write(record, record.value())
    log.info(logged, extra={"room": room})
    response = jsonify({"room": room, "private": True, "invite_url": invite_url(room, token)})
    response.status_code = status
    return response


@rooms_api.post("/api/rooms")
def create_room() -> Response:
    """A private room, owned by the asker: 201 with its generated name and invite link."""
    body = validation.parse_body(request)
    if body.get("private") is not True:
        raise ApiError(422, "invalid_body", 'Send {"private": true}: public rooms are made by posting in them.')
    owner = _identified()
    config = current_app.extensions["chat.ingest"].config
    room = new_room_name()
    _admit(room, [Budget("ip", _address(), 1, config.rate_limit_ip, config.rate_limit_window_s),
                  Budget("ip_rooms", _address(), 1, config.rate_limit_ip_rooms, config.rate_limit_rooms_window_s)])
    return _new_invite(room, owner, 201, "private room created")


@rooms_api.post("/api/rooms/<room>/members")
def join_room(room: str) -> Response:
    """Join with the room's current invite token: 204; a wrong or rotated one, 404."""
    validation.check_room(room)
    body = validation.parse_body(request)
    token = body.get("invite")
    if not isinstance(token, str) or not 1 <= len(token) <= MAX_INVITE_CHARS:
        raise ApiError(422, "invalid_invite", "invite is the token of the room's invite link.")
    member = _identified()
    config = current_app.extensions["chat.ingest"].config
    _admit(room, [Budget("ip", _address(), 1, config.rate_limit_ip, config.rate_limit_window_s)])
    if not is_private(room):
        raise not_found()
    if _access(room) is not Access.NONE:
        return Response(status=204)  # a member already
    try:
        matches = _private().invite_matches(room, token)
    except RedisError as error:
        raise errors.redis_unavailable(_retry_after_s()) from error
    if not matches:
        raise not_found()
    try:  # bounds what one room keeps in Redis (96-138 bytes per member, measured); joins at once may pass it by a few
        full = len(_private().members(room)) >= config.private_room_max_members
    except RedisError as error:
        raise errors.redis_unavailable(_retry_after_s()) from error
    if full:
        raise ApiError(409, "room_full", f"This room has its {config.private_room_max_members} members; "
                       "ask its owner to remove someone.")
    record = Membership(room, member, joined=True)
    _write(record, record.value())
    log.info("private room joined", extra={"room": room})
    return Response(status=204)


@rooms_api.get("/api/rooms/<room>/members")
def list_members(room: str) -> Response:
    """The room's owner and members, to its members: {"owner", "members", "you"}."""
    validation.check_room(room)
    if not is_private(room):
        raise not_found()
    require_member(room)
    try:
        owner, members = _private().owner(room), _private().members(room)
    except RedisError as error:
        raise errors.redis_unavailable(_retry_after_s()) from error
    return jsonify({"owner": owner, "members": members, "you": _who()})


@rooms_api.post("/api/rooms/<room>/invite")
def rotate_invite(room: str) -> Response:
    """The owner's new invite link: the old one stops working."""
    validation.check_room(room)
    if not is_private(room):
        raise not_found()
    return _new_invite(room, _require_owner(room), 200, "private room invite rotated")


@rooms_api.delete("/api/rooms/<room>/members/<path:member>")
def remove_member(room: str, member: str) -> Response:
    """The owner removes a member: 204; their open streams end at once, before any message
    published after the removal reaches them (stream/hub.py), or within a second if the
    announcement was lost (stream/private.py)."""
    validation.check_room(room)
    if not is_private(room):
        raise not_found()
    owner = _require_owner(room)
    if member == owner:
        raise ApiError(422, "invalid_member", "The owner cannot leave their own room.")
    try:
        known = member in _private().members(room)
    except RedisError as error:
        raise errors.redis_unavailable(_retry_after_s()) from error
    if not known:
        raise ApiError(404, "member_not_found", "This room has no such member.")
    record = Membership(room, member, joined=False)
    _write(record, record.value())
    try:  # their open streams end now, before anything newer reaches them
        _private().announce_removal(room, member)
    except RedisError as error:  # the stream's own check ends them within a second
        log.warning("private room removal not announced", extra={"room": room, "error": str(error)})
    log.info("private room member removed", extra={"room": room})
    return Response(status=204)
