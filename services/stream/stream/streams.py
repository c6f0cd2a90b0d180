"""The event streams: a room's (/stream/rooms/<room>: its recent past, then live events,
presence and typing) and flask-sse's own (/stream?channel=: live events only)."""

import json
import logging
from collections.abc import Iterator
from typing import TypedDict

from flask import Blueprint, Request, Response, g, request
from kafka.errors import KafkaError
from redis.exceptions import RedisError

from chat_common.errors import ApiError
from chat_common.messages import sse_comment, sse_frame
from chat_common.participants import address_tag
from chat_common.sessions import session_id
from stream import errors, metrics, params
from stream.hangup import HasFileno, watch_hangup
from stream.history import READ_ERRORS, Event, NotReady
from stream.hub import Client
from stream.presence import Seat
from stream.scrollback import Busy, ClientLimited
from stream.services import Services, services

log = logging.getLogger(__name__)

SSE_HEADERS = {
    "Cache-Control": "no-cache",
    "X-Accel-Buffering": "no",  # nginx (and ingress-nginx): pass events through unbuffered
}

Frame = tuple[bytes, str]  # an SSE frame and its event kind (for metrics)

streams = Blueprint("streams", __name__)


@streams.get("/stream/rooms/<room>")
def room_stream(room: str) -> Response:
    s = services()
    room = params.room(room)
    member = s.private.check(room)  # a private room: its members only (private.py)
    count = params.count("history", s.config.history_default, s.config.history_limit)
    last_id = params.resume_position()
    user = params.user()
    if request.method == "HEAD":
        return _head()
    # Subscribed first, then history read: live events and history overlap, no gap.
    client, place = _open_stream(s, room, "resume" if last_id is not None else "fresh")
    seat = None
    try:
        events, head, reset = s.history.opening(room, last_id, count, client=request.remote_addr)
        address = address_tag(s.config.session_secret, request.remote_addr)
        s.directory.took_part(room, address)  # the directory ranks rooms by the addresses in them
        # A browser session holds the name while connected (a signed-in name needs no hold).
        session = None if g.get("user") else session_id()
        seat = s.presence.join(room, user, session, address) if user else None
        users = s.presence.users(room)
    except READ_ERRORS as error:
        s.hub.leave(client)
        _give_back(s, place)
        if seat:
            try:
                s.presence.leave(seat)
            except RedisError:
                pass  # the seat expires with its TTL
        raise (errors.redis_unavailable() if isinstance(error, RedisError) else history_error(error, room)) from None
    if last_id is not None:
        metrics.RESUMES.labels("reset" if reset else "exact").inc()
    prelude, frames, position = opening(events, head, reset, last_id, s.config.retry_ms, _users_json(users))
    return _stream_response(s, client, place, prelude, frames, position, seat, member)


@streams.get("/stream")
def flask_sse_stream() -> Response:
    """flask-sse's own endpoint: live events of ?channel= (default "sse"), nothing else."""
    s = services()
    room = params.room(request.args.get("channel", "sse"))
    member = s.private.check(room)
    if request.method == "HEAD":
        return _head()
    client, place = _open_stream(s, room, "flask_sse")
    try:
        position = s.history.head(room)  # nothing older than the connect, also from a gap fill
    except RedisError:
        s.hub.leave(client)
        _give_back(s, place)
        raise errors.redis_unavailable() from None
    prelude = sse_comment("connected") + b"retry: %d\n\n" % s.config.retry_ms
    return _stream_response(s, client, place, prelude, [], position, member=member)


def history_error(error: Exception, room: str) -> ApiError:
    """The answer to a read of a room's past that failed with ``error`` (one of READ_ERRORS)."""
    if isinstance(error, NotReady):
        return errors.history_rebuilding()
    if isinstance(error, ClientLimited):
        return errors.history_rate_limited(error.retry_after)
    if isinstance(error, Busy):
        return errors.history_busy()
    log.warning("history read failed", extra={"room": room, "error": str(error)})
    if isinstance(error, RedisError | KafkaError):
        return errors.history_unreadable()
    raise error


def _open_stream(s: Services, room: str, kind: str) -> tuple[Client, str]:
    """Count the stream against its address (opened this window, and open now), then join
    the room's live events. The place is given back when the stream ends."""
    if s.hub.draining:
        raise errors.draining()
    address = request.remote_addr
    try:
        wait_s = s.opens.admit(address)
        token = s.open_streams.take(address) if wait_s is None else ""
    except RedisError:
        raise errors.redis_unavailable() from None  # fail closed: no count, no stream
    if wait_s is not None:
        metrics.STREAMS_REFUSED.inc()
        raise errors.too_many_streams(wait_s)
    if token is None:
        metrics.OPEN_STREAMS_REFUSED.inc()
        raise errors.too_many_open_streams()
    place = token  # the stream's place among its address's open ones ("": no cap)
    client = Client(room, s.config.client_queue, **_socket_of(request))
    try:
        s.hub.join(client)
    except RedisError:
        _give_back(s, place)
        raise errors.redis_unavailable() from None
    metrics.CONNECTS.labels(kind).inc()
    return client, place


def _give_back(s: Services, place: str) -> None:
    try:
        s.open_streams.give_back(place)
    except RedisError:
        pass  # the place expires with its TTL


def _stream_response(s: Services, client: Client, place: str, prelude: bytes, frames: list[Frame],
                     position: int, seat: Seat | None = None, member: str | None = None) -> Response:
    """The SSE body: ``prelude`` (a comment, the retry hint, the reader's position),
    ``frames`` (what the connect asked for), then the client's live events and heartbeats
    until it leaves (its close is seen at once: hangup.py), falls behind or the worker
    drains. ``position``: every message of the room at or below it was in ``frames`` or
    was not asked for. ``member``: in a private room, the reader, whose stream ends if
    they are removed."""
    presence, open_streams = s.presence, s.open_streams
    sock = _socket_of(request).get("sock")

    def on_beat() -> None:  # the worker's places and the stream's presence stay alive, busy room or not
        open_streams.refresh()
        if seat:
            presence.refresh(seat)

    def body(opening: bytes, kinds: list[str]) -> Iterator[bytes]:
        metrics.CONNECTIONS.inc()
        stop_watch = stop_member = None
        try:
            for kind in kinds:
                metrics.EVENTS_SENT.labels(metrics.event_kind(kind)).inc()
            yield opening  # gunicorn writes the headers, then this
            del opening, kinds  # a stream lives long: it keeps nothing of its opening
            # From here on the client writes its own events to the socket (hub.py).
            stop_watch = watch_hangup(sock, lambda: client.close("client"))  # leave at once when the reader goes
            if member is not None:
                stop_member = s.private.watch(client, member)  # removed: the stream ends
            client.run(position, on_beat)
        except (RedisError, OSError) as error:
            client.closed = client.closed or "error"
            log.warning("stream ended by an error", extra={"room": client.room, "error": str(error)})
        finally:
            if stop_watch is not None:
                stop_watch()
            if stop_member is not None:
                stop_member()
            metrics.CONNECTIONS.dec()
            metrics.DISCONNECTS.labels(client.closed or "client").inc()
            s.hub.leave(client)
            _give_back(s, place)
            if client.closed == "drain":
                client.disconnect()
            if seat:
                try:
                    presence.leave(seat)
                except RedisError:
                    pass

    opening_bytes = prelude + b"".join(frame for frame, _ in frames)
    # direct_passthrough: gunicorn iterates body() itself, with no wrappers around it.
    return Response(body(opening_bytes, [kind for _, kind in frames]), mimetype="text/event-stream",
                    headers=SSE_HEADERS, direct_passthrough=True)


def opening(events: list[Event], head: int, reset: bool, last_id: int | None, retry_ms: int,
            users_json: str) -> tuple[bytes, list[Frame], int]:
    """How a room stream starts: (prelude, frames, position). The prelude is a comment and
    the retry hint; the frames, what the connect asked for; the position, where its live
    part starts from.

    ``events`` ((event, data, id): messages, and on a resume the deletes since), ``head``
    and ``reset`` are what ``History.opening`` read. The reader gets
    its position as an SSE ``id:`` before any event: where these frames start (the resume
    point; else just before the first message sent; else the room's head), so that a
    reconnect at any point, even before the first message, resumes exactly. After a reset
    the position rides on the reset event itself: a reader never takes the new position
    without being told to drop its old window. Live events then pass from ``head`` (or the
    resume point, if that is newer) on: every message at or below it is either in these
    frames or older than what the connect asked for."""
    if last_id is not None and not reset:
        start = last_id
    else:
        start = int(events[0][2]) - 1 if events else head
    prelude, frames = sse_comment("connected") + b"retry: %d\n" % retry_ms, []
    if reset:
        prelude += b"\n"
        frames.append((sse_frame("{}", event="reset", id=start), "other"))
    else:
        prelude += b"id: %d\n\n" % start  # a block without data: it sets the id and dispatches nothing
    frames += [(sse_frame(data, event=event, id=id), event) for event, data, id in events]
    frames.append((sse_frame(users_json, event="presence"), "presence"))
    return prelude, frames, max(start, head)


def _head() -> Response:
    """A stream's headers alone: a HEAD opens no stream (its body would never be read)."""
    return Response(mimetype="text/event-stream", headers=SSE_HEADERS)


class SocketOf(TypedDict, total=False):
    sock: HasFileno | None
    chunked: bool


def _socket_of(req: Request) -> SocketOf:
    """Where a stream's events go after its opening: gunicorn's socket, framed as gunicorn
    frames the response (HTTP/1.1: chunked, as no Content-Length is set; HTTP/1.0: the bare
    bytes, then the connection closes). Any other protocol gets the opening only."""
    protocol = req.environ.get("SERVER_PROTOCOL")
    if protocol not in ("HTTP/1.0", "HTTP/1.1"):
        return {"sock": None}
    return {"sock": req.environ.get("gunicorn.socket"), "chunked": protocol == "HTTP/1.1"}


def _users_json(users: list[str]) -> str:
    return json.dumps({"users": users}, ensure_ascii=False, separators=(",", ":"))
