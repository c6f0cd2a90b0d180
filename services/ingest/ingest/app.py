"""The ingest app factory: the public routes (routes.py) plus /healthz, /readyz, /metrics."""

from flask import Flask
from redis import Redis
from werkzeug.middleware.proxy_fix import ProxyFix

from chat_common.errors import ApiError
from chat_common.ops import init_app
from chat_common.private import PrivateRooms
from chat_common.sessions import init_sessions
from ingest import metrics, validation
from ingest.admission import Admission, Budgets
from ingest.config import Config
from ingest.deletes import Deleted, MessageLog
from ingest.producer import Producer
from ingest.rooms import EXTENSION as PRIVATE_ROOMS
from ingest.rooms import rooms_api
from ingest.routes import Ingest, api
from ingest.typing_signals import Typing


def count_refusal(error: ApiError) -> None:
    metrics.REJECTED.labels(error.code).inc()


def create_app(config: Config | None = None) -> Flask:
    config = config or Config.from_env()
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = validation.MAX_BODY_BYTES
    if config.trusted_proxies:
        # The proxies in front name the client's address and the scheme it used (the Origin check compares it).
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=config.trusted_proxies,  # type: ignore[method-assign]
                                x_proto=config.trusted_proxies)

    redis = Redis.from_url(config.redis_url, socket_timeout=1, socket_connect_timeout=1, decode_responses=True)
    producer = Producer(config)
    message_log = MessageLog(config)
    app.extensions["chat.producer"] = producer
    app.extensions["chat.message_log"] = message_log
    app.extensions["chat.ingest"] = Ingest(
        config=config, producer=producer, message_log=message_log,
        admission=Admission(redis, config.retry_after_s), budgets=Budgets(config),
        typing=Typing(redis, config.typing_interval_s), deleted=Deleted(redis, config.retry_after_s),
    )
    app.register_blueprint(api)
    app.extensions[PRIVATE_ROOMS] = PrivateRooms(redis)
    app.register_blueprint(rooms_api)

    # Ready once connected to Kafka. Redis is left out: while Redis or Kafka is away, requests
    # get a clear 503 with Retry-After from the routes.
    init_app(app, lambda: {"kafka": producer.ready()}, config.trusted_user_header,
             allowed_hosts=config.allowed_hosts, public_url=config.public_url,
             allowed_origins=config.allowed_origins, on_refused=count_refusal)
    init_sessions(app, config.session_secret, config.session_cookie_secure)
    return app
