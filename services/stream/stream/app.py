"""The stream app factory: SSE endpoints, history, presence and the room directory, plus /healthz,
/readyz, /metrics."""

import json
import logging

from flask import Flask, Response, g, jsonify, request
from kafka.errors import KafkaError
from redis import BlockingConnectionPool, Redis
from redis.backoff import NoBackoff
from redis.exceptions import RedisError
from redis.retry import Retry
from werkzeug.middleware.proxy_fix import ProxyFix

from chat_common.errors import ApiError
from chat_common.messages import is_valid_room, normalize_user, sse_comment, sse_frame
from chat_common.ops import init_app
from chat_common.sessions import init_sessions, session_id
from stream import metrics
from stream.directory import Directory
from stream.history import History, NotReady
from stream.hub import Client, Hub
from stream.presence import Presence
from stream.scrollback import Busy, ClientLimited

log = logging.getLogger(__name__)

SSE_HEADERS = {
    "Cache-Control": "no-cache",
    "X-Accel-Buffering": "no",  # nginx (and ingress-nginx): pass events through unbuffered
}
MAX_ID_DIGITS = 19  # a Kafka offset is a signed 64-bit number


def _room(room):
    if not is_valid_room(room):
        raise ApiError(400, "invalid_room", "Room names are 1 to 64 characters of a-z, 0-9, '-' and '_'.")
    return room


def _decimal(raw, most_digits):
    """``raw`` as a number if it is 1 to ``most_digits`` ASCII digits, else None.
    ``str.isdigit`` alone also accepts superscripts and circled digits, which int() refuses."""
    if not (0 < len(raw) <= most_digits and raw.isascii() and raw.isdigit()):
        return None
    return int(raw)


def _count(name, default, limit):
    raw = request.args.get(name)
    if raw is None:
        return default
    value = _decimal(raw, MAX_ID_DIGITS)
    if value is None or value > limit:
        raise ApiError(400, f"invalid_{name}", f"{name} is a whole number from 0 to {limit}.")
    return value


def _message_id(raw, name):
    if raw is None or raw == "":
        return None
    value = _decimal(raw, MAX_ID_DIGITS)
    if value is None:
        raise ApiError(400, "invalid_last_event_id", f"{name} is a message id (a decimal number).")
    return value


def _position(raw, name):
    """A resume position: a message id, or -1, the position before a partition's first
    record (what a connect hands a reader while nothing was ever written there)."""
    return -1 if raw == "-1" else _message_id(raw, name)


def _user():
    if g.get("user"):  # named by the sign-in proxy in front
        return g.user
    raw = request.args.get("user")
    if raw is None or raw.strip() == "":
        return None
    user = normalize_user(raw)
    if user is None:
        raise ApiError(400, "invalid_user", "A user name is 1 to 32 printable characters.")
    return user


def create_app(config):
    app = Flask(__name__)
    if config.trusted_proxies:  # the client's address, for the limit on the history it makes us read
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=config.trusted_proxies)

    # A bounded pool: thousands of greenlets share a few dozen Redis connections.
    redis = Redis(connection_pool=BlockingConnectionPool.from_url(
        config.redis_url, max_connections=64, timeout=5, socket_timeout=5, socket_connect_timeout=2,
        health_check_interval=30,
    ))
    history = History(redis, config)
    presence = Presence(redis, config.presence_ttl_s)
    directory = Directory(redis)
    # The hub's pub/sub connection: its own, and without client-side retries (see hub.py).
    pubsub_redis = Redis.from_url(
        config.redis_url, retry=Retry(NoBackoff(), 0), socket_connect_timeout=2, socket_keepalive=True,
    )
    hub = Hub(pubsub_redis, history, config.heartbeat_s)
    app.extensions["chat.hub"] = hub
    app.config["chat.config"] = config

    def open_stream(room, kind):
        if hub.draining:
            raise ApiError(503, "draining", "This server is restarting; reconnect.", retry_after=1)
        client = Client(room, config.client_queue, **_socket_of(request))
        try:
            hub.join(client)
        except RedisError:
            raise ApiError(503, "redis_unavailable", "Live updates are unavailable right now.", retry_after=2) from None
        metrics.CONNECTS.labels(kind).inc()
        return client

    def stream_response(client, prelude, events, position, seat=None):
        """The SSE body: ``prelude`` (a comment, the retry hint, the reader's position),
        ``events`` ((frame, event kind) pairs: what the connect asked for), then
        the client's live events and heartbeats until it leaves, falls behind or the
        worker drains. ``position``: every message of the room at or below it was in
        ``events`` or was not asked for."""

        def body(opening, kinds):
            metrics.CONNECTIONS.inc()
            try:
                for kind in kinds:
                    metrics.EVENTS_SENT.labels(metrics.event_kind(kind)).inc()
                yield opening  # gunicorn writes the headers, then this
                del opening, kinds  # a stream lives long: it keeps nothing of its opening
                # From here on the client writes its own events to the socket (hub.py).
                on_beat = (lambda: presence.refresh(seat)) if seat else None  # presence stays alive, busy room or not
                client.run(position, on_beat)
            except (RedisError, OSError) as error:
                client.closed = client.closed or "error"
                log.warning("stream ended by an error", extra={"room": client.room, "error": str(error)})
            finally:
                metrics.CONNECTIONS.dec()
                metrics.DISCONNECTS.labels(client.closed or "client").inc()
                hub.leave(client)
                if client.closed == "drain":
                    client.disconnect()
                if seat:
                    try:
                        presence.leave(seat)
                    except RedisError:
                        pass

        opening = prelude + b"".join(frame for frame, _ in events)
        # direct_passthrough: gunicorn iterates body() itself, with no wrappers around it.
        return Response(body(opening, [kind for _, kind in events]), mimetype="text/event-stream",
                        headers=SSE_HEADERS, direct_passthrough=True)

    @app.get("/stream/rooms/<room>")
    def room_stream(room):
        room = _room(room)
        count = _count("history", config.history_default, config.history_limit)
        last_id = _position(request.headers.get("Last-Event-ID"), "Last-Event-ID")
        if last_id is None:
            last_id = _position(request.args.get("last_event_id"), "last_event_id")
        user = _user()
        if request.method == "HEAD":
            return _head()
        # Subscribed first, then history read: live events and history overlap, no gap.
        client = open_stream(room, "resume" if last_id is not None else "fresh")
        seat = None
        try:
            events, head, reset = history.opening(room, last_id, count, client=request.remote_addr)
            # A browser session holds the name while connected (a signed-in name needs no hold).
            session = None if g.get("user") else session_id()
            seat = presence.join(room, user, session) if user else None
            users = presence.users(room)
        except (NotReady, RedisError, KafkaError, Busy, ClientLimited) as error:
            hub.leave(client)
            if seat:
                try:
                    presence.leave(seat)
                except RedisError:
                    pass  # the seat expires with its TTL
            if isinstance(error, RedisError):
                raise ApiError(503, "redis_unavailable", "Live updates are unavailable right now.",
                               retry_after=2) from None
            raise _history_error(error, room) from None
        if last_id is not None:
            metrics.RESUMES.labels("reset" if reset else "exact").inc()
        prelude, events, position = opening(events, head, reset, last_id, config.retry_ms, _users_json(users))
        return stream_response(client, prelude, events, position, seat)

    @app.get("/stream")
    def flask_sse_stream():
        """flask-sse's own endpoint: live events of ?channel= (default "sse"), nothing else."""
        room = _room(request.args.get("channel", "sse"))
        if request.method == "HEAD":
            return _head()
        client = open_stream(room, "flask_sse")
        try:
            position = history.head(room)  # nothing older than the connect, also from a gap fill
        except RedisError:
            hub.leave(client)
            raise ApiError(503, "redis_unavailable", "Live updates are unavailable right now.", retry_after=2) from None
        return stream_response(client, sse_comment("connected") + b"retry: %d\n\n" % config.retry_ms, [], position)

    @app.get("/stream/rooms/<room>/history")
    def room_history(room):
        room = _room(room)
        limit = _count("limit", config.history_default, config.history_limit)
        before = _message_id(request.args.get("before"), "before")
        try:
            page = history.before(room, before, limit, client=request.remote_addr)
        except (NotReady, RedisError, KafkaError, Busy, ClientLimited) as error:
            raise _history_error(error, room) from None
        metrics.HISTORY_READS.labels(page.source).inc()
        body = '{"messages":[' + ",".join(page.messages) + '],"more":' + ("true" if page.more else "false")
        if page.next_before is not None:
            body += f',"next_before":"{page.next_before:d}"'
        if page.older_removed:
            body += ',"older_removed":true'
        return Response(body + "}", content_type="application/json")

    @app.get("/stream/rooms")
    def room_directory():
        try:
            return jsonify({"rooms": directory.rooms()})
        except RedisError:
            raise ApiError(503, "redis_unavailable", "The room list is unavailable right now.", retry_after=2) from None

    @app.get("/stream/rooms/<room>/presence")
    def room_presence(room):
        try:
            return jsonify({"users": presence.users(_room(room))})
        except RedisError:
            raise ApiError(503, "redis_unavailable", "Presence is unavailable right now.", retry_after=2) from None

    def readiness():
        return {"redis": hub.ready()}

    init_app(app, readiness, config.trusted_user_header)
    init_sessions(app, config.session_secret, config.session_cookie_secure)
    return app


def opening(events, head, reset, last_id, retry_ms, users_json):
    """How a room stream starts: (prelude, events, position). The prelude is a comment and
    the retry hint; the events, what the connect asked for; the position, where its live
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


def _history_error(error, room):
    """The answer to a read of a room's past that failed: ``error`` from History."""
    if isinstance(error, NotReady):
        return ApiError(503, "history_unavailable", "The room's history is being rebuilt; try again.", retry_after=2)
    if isinstance(error, ClientLimited):
        return ApiError(429, "history_rate_limited", "Too much history read from this address; wait a little.",
                        retry_after=error.retry_after)
    if isinstance(error, Busy):
        return ApiError(503, "history_busy", "Older history is busy being read; try again.", retry_after=1)
    log.warning("history read failed", extra={"room": room, "error": str(error)})
    return ApiError(503, "history_unavailable", "History cannot be read right now; try again.", retry_after=2)


def _head():
    """A stream's headers alone: a HEAD opens no stream (its body would never be read)."""
    return Response(mimetype="text/event-stream", headers=SSE_HEADERS)


def _socket_of(request):
    """Where a stream's events go after its opening: gunicorn's socket, framed as gunicorn
    frames the response (HTTP/1.1: chunked, as no Content-Length is set; HTTP/1.0: the bare
    bytes, then the connection closes). Any other protocol gets the opening only."""
    protocol = request.environ.get("SERVER_PROTOCOL")
    if protocol not in ("HTTP/1.0", "HTTP/1.1"):
        return {"sock": None}
    return {"sock": request.environ.get("gunicorn.socket"), "chunked": protocol == "HTTP/1.1"}


def _users_json(users):
    return json.dumps({"users": users}, ensure_ascii=False, separators=(",", ":"))
