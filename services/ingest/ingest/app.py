"""The ingest app factory: POST /api/rooms/<room>/messages and /typing, POST /api/session, plus /healthz,
/readyz, /metrics."""

import logging
import time
from dataclasses import replace

from flask import Flask, Response, g, request
from redis import Redis
from redis.exceptions import RedisError
from werkzeug.middleware.proxy_fix import ProxyFix

from chat_common.errors import ApiError
from chat_common.messages import Message, Tombstone, session_tag
from chat_common.ops import init_app
from chat_common.sessions import init_sessions, session_id, start_session
from ingest import metrics, validation
from ingest.admission import Admission
from ingest.config import Config
from ingest.deletes import Deleted, MessageLog, may_delete
from ingest.producer import KafkaUnavailable, Producer
from ingest.typing_signals import Typing

log = logging.getLogger(__name__)


def create_app(config=None):
    config = config or Config.from_env()
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = validation.MAX_BODY_BYTES
    if config.trusted_proxies:
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=config.trusted_proxies)

    producer = Producer(config)
    redis = Redis.from_url(config.redis_url, socket_timeout=1, socket_connect_timeout=1, decode_responses=True)
    admission = Admission(
        redis, config.rate_limit_window_s, {"user": config.rate_limit_user, "ip": config.rate_limit_ip}
    )
    typing = Typing(redis, config.typing_interval_s)
    message_log = MessageLog(config)
    deleted = Deleted(redis)
    app.extensions["chat.producer"] = producer
    app.extensions["chat.message_log"] = message_log

    def admit(room, user=None, client_id=None, counted=None):
        """One Redis round trip before producing (admission.py): the message already stored
        for a retried ``client_id`` (returned), else 409 if a session present in the room
        holds ``user`` and this request is not from it (a signed-in name needs no hold), else
        429 if ``counted`` (scope -> who) is over a rate limit."""
        verdict = admission.check(room, limits=counted, client_id=client_id, session=session_id(),
                                  name=None if user is None or g.get("user") else user)
        if verdict.name_taken:
            raise ApiError(409, "name_taken", f'Someone else in this room is using the name "{user}"; '
                           "pick another name.")
        if verdict.limited:
            scope, wait_s = verdict.limited
            metrics.RATE_LIMITED.labels(scope).inc()
            text = f"Too many messages; wait {wait_s} s before sending again." if user else \
                f"Too many requests; wait {wait_s} s."
            raise ApiError(429, "rate_limited", text, retry_after=wait_s)
        return verdict.stored

    @app.post("/api/rooms/<room>/messages")
    def post_message(room):
        try:
            validation.check_origin(request.headers, request.host, config.allowed_origins)
            validation.check_room(room)
            body = validation.parse_body(request)
            user = g.get("user") or validation.clean_user(body.get("user"))  # the sign-in proxy's name wins
            text = validation.clean_text(body.get("text"))
            client_id = validation.clean_client_id(body.get("client_id"))
            stored = admit(room, user, client_id, {"user": user, "ip": request.remote_addr or "unknown"})
            if stored:
                metrics.REPLAYED.inc()
                return Response(stored, status=201, content_type="application/json")
        except ApiError as error:
            metrics.REJECTED.labels(error.code).inc()
            raise

        sid = session_id()
        message = Message(room=room, user=user, text=text, ts=int(time.time() * 1000), client_id=client_id,
                          session=session_tag(sid) if sid else None)  # who may delete it later
        try:
            offset = producer.send(room, message.kafka_value())
        except KafkaUnavailable as error:
            log.warning("kafka unavailable", extra={"room": room, "error": str(error)})
            raise ApiError(
                503, "kafka_unavailable", "Messages cannot be stored right now; try again shortly.",
                retry_after=config.retry_after_s,
            ) from error
        stored = replace(message, id=str(offset))
        metrics.MESSAGES_ACCEPTED.inc()
        log.info("message produced", extra={"msg_id": stored.id, "room": room, "client_id": client_id})
        return Response(stored.to_json(), status=201, content_type="application/json")

    @app.delete("/api/rooms/<room>/messages/<id>")
    def delete_message(room, id):
        """Take a message back: 204 once Kafka holds a tombstone for it, after it in the
        room's log. A repeat answers 204 and writes nothing."""
        try:
            validation.check_origin(request.headers, request.host, config.allowed_origins)
            validation.check_room(room)
            id = validation.clean_message_id(id)
            try:
                message = message_log.message(room, id)
            except KafkaUnavailable as error:
                log.warning("kafka unavailable", extra={"room": room, "error": str(error)})
                raise ApiError(503, "kafka_unavailable", "Messages cannot be deleted right now; try again shortly.",
                               retry_after=config.retry_after_s) from error
            if message is None:
                raise ApiError(404, "message_not_found", "This room has no message with that id.")
            if not may_delete(message, g.get("user"), session_id(), config.moderators):
                raise ApiError(403, "forbidden", "Only the person who sent a message can delete it.")
            if deleted.contains(room, id):
                metrics.DELETE_REPEATS.inc()
                return Response(status=204)
            admit(room, counted={"user": message.user, "ip": request.remote_addr or "unknown"})
        except ApiError as error:
            metrics.REJECTED.labels(error.code).inc()
            raise

        tombstone = Tombstone(room=room, target=str(id), ts=int(time.time() * 1000), by=g.get("user") or message.user)
        try:
            offset = producer.send(room, tombstone.kafka_value())
        except KafkaUnavailable as error:
            log.warning("kafka unavailable", extra={"room": room, "error": str(error)})
            raise ApiError(
                503, "kafka_unavailable", "Messages cannot be deleted right now; try again shortly.",
                retry_after=config.retry_after_s,
            ) from error
        deleted.add(room, id)
        metrics.DELETES.inc()
        log.info("delete produced", extra={"msg_id": str(id), "tombstone_id": str(offset), "room": room})
        return Response(status=204)

    @app.post("/api/rooms/<room>/typing")
    def typing_signal(room):
        """Tell the room's readers that this name is typing: never stored, no id."""
        try:
            validation.check_origin(request.headers, request.host, config.allowed_origins)
            validation.check_room(room)
            body = validation.parse_body(request)
            user = g.get("user") or validation.clean_user(body.get("user"))
            admit(room, user)
            try:
                wait_s = typing.signal(room, user)
            except RedisError as error:
                log.warning("typing signal dropped: redis unavailable", extra={"room": room, "error": str(error)})
                raise ApiError(503, "redis_unavailable", "Typing signals are unavailable right now.",
                               retry_after=config.retry_after_s) from error
            if wait_s:
                raise ApiError(429, "rate_limited", f"One typing signal every {config.typing_interval_s:g} s; "
                               f"wait {wait_s} s.", retry_after=wait_s)
        except ApiError as error:
            metrics.REJECTED.labels(error.code).inc()
            raise
        metrics.TYPING.inc()
        return Response(status=204)

    @app.post("/api/session")
    def new_session():
        """Give the browser its session cookie (if it has none), before it joins a room:
        while connected, its session holds its name there."""
        try:
            validation.check_origin(request.headers, request.host, config.allowed_origins)
        except ApiError as error:
            metrics.REJECTED.labels(error.code).inc()
            raise
        start_session()
        return Response(status=204)

    # Ready once connected to Kafka. Redis is left out: without it, rate limits are skipped
    # and posting still works; while Kafka is down, posts get a clear 503 from here.
    init_app(app, lambda: {"kafka": producer.ready()}, config.trusted_user_header)
    init_sessions(app, config.session_secret, config.session_cookie_secure)
    return app
