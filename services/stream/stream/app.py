"""The stream app factory: the event streams (streams.py), history, presence and the room
directory (rooms.py), plus /healthz, /readyz, /metrics."""

from flask import Flask
from redis import BlockingConnectionPool, Redis, RedisCluster
from redis.backoff import NoBackoff
from redis.retry import Retry
from werkzeug.middleware.proxy_fix import ProxyFix

from chat_common import keys, redis_client
from chat_common.ops import init_app
from chat_common.sessions import init_sessions
from stream.config import Config
from stream.directory import Directory
from stream.history import History
from stream.hub import Hub
from stream.limits import OpenStreams, StreamOpens
from stream.presence import Presence
from stream.private import Guard
from stream.rooms import rooms
from stream.services import EXTENSION, Services
from stream.shards import ClusterHub
from stream.streams import opening, streams

__all__ = ["create_app", "opening"]

# A worker's Redis connections, per Redis node (the one node, or each cluster node): thousands
# of greenlets share them. A command finding them all busy waits this long for one, then fails
# (the stream answers 503 with Retry-After), rather than opening more.
REDIS_POOL_CONNECTIONS = 64
REDIS_POOL_WAIT_S = 5.0


def redis_pool(config: Config, connections: int = REDIS_POOL_CONNECTIONS, wait_s: float = REDIS_POOL_WAIT_S) -> Redis:
    """The worker's Redis client for its commands, with a bounded pool in either mode. In
    cluster mode one pool per node (redis-py's cluster client), each bounded alike; a pool
    found full fails as MaxConnectionsError, which the cluster client passes on as it is,
    not as a node that did not answer (it would drop the node's idle connections and read
    the slots again)."""
    if keys.cluster():
        return redis_client.connect(config.redis_url, connection_pool_class=redis_client.BoundedPool,
                                    max_connections=connections, timeout=wait_s, socket_timeout=5,
                                    socket_connect_timeout=2, health_check_interval=30)
    return Redis(connection_pool=BlockingConnectionPool.from_url(
        config.redis_url, max_connections=connections, timeout=wait_s, socket_timeout=5, socket_connect_timeout=2,
        health_check_interval=30,
    ))


def create_app(config: Config) -> Flask:
    app = Flask(__name__)
    if config.trusted_proxies:  # the client's address: for the limits per address
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=config.trusted_proxies)  # type: ignore[method-assign]

    redis_client.configure(config)
    hub: Hub
    if keys.cluster():
        # One pool per node (redis-py's cluster client); the hub reads the slots with its own
        # client and keeps a pub/sub connection per primary (stream/shards.py).
        redis = redis_pool(config)
        history = History(redis, config)
        hub = ClusterHub(RedisCluster.from_url(config.redis_url, socket_connect_timeout=2), history,
                         config.heartbeat_s)
    else:
        redis = redis_pool(config)
        history = History(redis, config)
        # The hub's pub/sub connection: its own, and without client-side retries (see hub.py).
        pubsub_redis = Redis.from_url(
            config.redis_url, retry=Retry(NoBackoff(), 0), socket_connect_timeout=2, socket_keepalive=True,
        )
        hub = Hub(pubsub_redis, history, config.heartbeat_s)
    app.extensions[EXTENSION] = Services(
        config=config,
        hub=hub,
        history=history,
        presence=Presence(redis, config.presence_ttl_s),
        directory=Directory(redis),
        opens=StreamOpens(redis, config.stream_opens_per_ip, config.stream_opens_window_s),
        # Refreshed with each heartbeat: a place outlives its stream by 3 heartbeats at most.
        open_streams=OpenStreams(redis, config.stream_connections_per_ip, config.presence_ttl_s),
        private=Guard(redis),
    )
    app.extensions["chat.hub"] = hub  # gunicorn.conf.py starts and drains it
    app.config["chat.config"] = config
    app.register_blueprint(streams)
    app.register_blueprint(rooms)

    def readiness() -> dict[str, bool]:
        return {"redis": hub.ready()}

    # Public routes answer only for the site's own Host values (a DNS-rebinding page is refused).
    init_app(app, readiness, config.trusted_user_header, allowed_hosts=config.allowed_hosts,
             public_url=config.public_url)
    init_sessions(app, config.session_secret, config.session_cookie_secure)
    return app
