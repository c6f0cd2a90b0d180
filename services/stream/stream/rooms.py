"""A room's past, its people and the room directory, as JSON."""

from flask import Blueprint, Response, jsonify, request
from redis.exceptions import RedisError

from chat_common.private import is_private
from stream import errors, metrics, params
from stream.history import READ_ERRORS
from stream.services import services
from stream.streams import history_error

rooms = Blueprint("rooms", __name__)


@rooms.get("/stream/rooms/<room>/history")
def room_history(room: str) -> Response:
    s = services()
    room = params.room(room)
    s.private.check(room)  # a private room: its members only
    limit = params.count("limit", s.config.history_default, s.config.history_limit)
    before = params.message_id(request.args.get("before"), "before")
    try:
        page = s.history.before(room, before, limit, client=request.remote_addr)
    except READ_ERRORS as error:
        raise history_error(error, room) from None
    metrics.HISTORY_READS.labels(page.source).inc()
    body = '{"messages":[' + ",".join(page.messages) + '],"more":' + ("true" if page.more else "false")
    if page.next_before is not None:
        body += f',"next_before":"{page.next_before:d}"'
    if page.older_removed:
        body += ',"older_removed":true'
    return Response(body + "}", content_type="application/json")


@rooms.get("/stream/rooms")
def room_directory() -> Response:
    try:
        # Private rooms are never listed (their members have the link).
        return jsonify({"rooms": [r for r in services().directory.rooms() if not is_private(r["room"])]})
    except RedisError:
        raise errors.redis_unavailable("The room list is") from None


@rooms.get("/stream/rooms/<room>/presence")
def room_presence(room: str) -> Response:
    room = params.room(room)
    services().private.check(room)
    try:
        return jsonify({"users": services().presence.users(room)})
    except RedisError:
        raise errors.redis_unavailable("Presence is") from None
