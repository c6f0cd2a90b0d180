"""A room's past, its people and the room directory, as JSON."""

from flask import Blueprint, Response, jsonify, request
from redis.exceptions import RedisError

from stream import errors, metrics, params
from stream.history import READ_ERRORS
from stream.services import services
from stream.streams import history_error

rooms = Blueprint("rooms", __name__)


@rooms.get("/stream/rooms/<room>/history")
def room_history(room: str) -> Response:
    s = services()
    room = params.room(room)
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
        return jsonify({"rooms": services().directory.rooms()})
    except RedisError:
        raise errors.redis_unavailable("The room list is") from None


@rooms.get("/stream/rooms/<room>/presence")
def room_presence(room: str) -> Response:
    try:
        return jsonify({"users": services().presence.users(params.room(room))})
    except RedisError:
        raise errors.redis_unavailable("Presence is") from None
