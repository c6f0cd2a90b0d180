"""The ingest app factory: the public routes (routes.py) plus /healthz, /readyz, /metrics."""

import logging
import threading
import time
from collections.abc import Sequence

from flask import Flask
from kafka.errors import KafkaError
from redis import Redis
from redis.exceptions import RedisError
from werkzeug.middleware.proxy_fix import ProxyFix

from chat_common import keys, redis_client
from chat_common.errors import ApiError
from chat_common.ops import init_app
from chat_common.private import PrivateRooms
from chat_common.sessions import init_sessions
from ingest import metrics, validation
from ingest.admission import ADMIT, Admission, Budgets
from ingest.config import Config
from ingest.deletes import Deleted, MessageLog
from ingest.edits import edits_api
from ingest.producer import Producer
from ingest.reactions import reactions_api
from ingest.rooms import EXTENSION as PRIVATE_ROOMS
from ingest.rooms import rooms_api
from ingest.routes import Ingest, api
from ingest.typing_signals import SIGNAL, Typing

log = logging.getLogger(__name__)


class WarmUp:
    """What a worker makes before it serves, so that its first requests wait for nothing a
    later one does not: its Kafka producer (connected, the topic's metadata fetched) and
    the Redis scripts (loaded: else the first call of each meets NOSCRIPT and sends the
    script). gunicorn runs ``start`` in each worker before the worker accepts a connection
    (gunicorn.conf.py: post_worker_init), so every worker that answers is warm; if Kafka or
    Redis is not there yet, a thread keeps trying, and /readyz answers 503 until it is done.
    Once warm, a worker stays ready while Kafka or Redis is away: requests then get a clear
    503 with Retry-After from the routes."""

    RETRY_S = 1.0

    def __init__(self, producer: Producer, redis: Redis, scripts: Sequence[str],
                 partitions: redis_client.TopicPartitions) -> None:
        self.producer = producer
        self.partitions = partitions  # cluster mode: the topic's count must be KAFKA_TOPIC_PARTITIONS
        self.redis = redis
        self.scripts = scripts
        self.kafka = self.scripts_loaded = False
        self._lock = threading.Lock()
        self._started = False

    def start(self) -> None:
        """Warm up now; if that fails, keep trying in a thread. Once per worker."""
        with self._lock:
            if self._started:
                return
            self._started = True
        if not self._try():
            threading.Thread(target=self._retry, name="warm-up", daemon=True).start()

    def _try(self) -> bool:
        started = time.perf_counter()
        self.kafka = self.kafka or self.producer.warm_up()
        if self.kafka and not self.partitions.agree:
            try:
                self.partitions.check(self.producer.partition_count())
            except KafkaError as error:
                log.warning("the topic's partitions are not known yet", extra={"error": str(error)})
        if not self.scripts_loaded:
            try:
                for script in self.scripts:
                    self.redis.script_load(script)
                self.scripts_loaded = True
            except RedisError as error:
                log.warning("redis scripts not loaded yet", extra={"error": str(error)})
        if self.kafka and self.scripts_loaded:
            log.info("worker warm", extra={"seconds": round(time.perf_counter() - started, 3)})
        return self.kafka and self.scripts_loaded and bool(self.partitions.agree)

    def _retry(self) -> None:
        while True:
            time.sleep(self.RETRY_S)
            if self._try():
                return

    def checks(self) -> dict[str, bool]:
        """/readyz's checks; outside gunicorn (no post_worker_init) the first one starts the warm-up."""
        self.start()
        checks = {"kafka": self.kafka, "redis": self.scripts_loaded}
        if keys.cluster():  # the reason an ingest with the wrong KAFKA_TOPIC_PARTITIONS does not start
            checks["kafka_topic_partitions"] = self.partitions.agree is not False
        return checks


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

    redis_client.configure(config)
    redis = redis_client.connect(config.redis_url, socket_timeout=1, socket_connect_timeout=1, decode_responses=True)
    producer = Producer(config)
    message_log = MessageLog(config)
    app.extensions["chat.producer"] = producer
    app.extensions["chat.message_log"] = message_log
    app.extensions["chat.ingest"] = Ingest(
        config=config, producer=producer, message_log=message_log,
        admission=Admission(redis, config.retry_after_s), budgets=Budgets(config),
        typing=Typing(redis, config.typing_interval_s), deleted=Deleted(redis, config.retry_after_s),
    )
    warm_up = WarmUp(producer, redis, (ADMIT, keys.script(SIGNAL)), redis_client.TopicPartitions(config))
    app.extensions["chat.warm_up"] = warm_up
    app.register_blueprint(api)
    app.register_blueprint(edits_api)
    app.register_blueprint(reactions_api)
    app.extensions[PRIVATE_ROOMS] = PrivateRooms(redis)
    app.register_blueprint(rooms_api)

    init_app(app, warm_up.checks, config.trusted_user_header,
             allowed_hosts=config.allowed_hosts, public_url=config.public_url,
             allowed_origins=config.allowed_origins, on_refused=count_refusal)
    init_sessions(app, config.session_secret, config.session_cookie_secure)
    return app
