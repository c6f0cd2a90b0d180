# gunicorn settings for stream: the same file runs locally and in the image.
# gevent workers: every SSE client is a long-lived connection served by a greenlet.
from typing import Any

from chat_common.config import env_int, env_str, log_level
from chat_common.gunicorn_common import (  # noqa: F401 (gunicorn reads these names)
    child_exit,
    control_socket_disable,
    limit_request_fields,
    limit_request_line,
    logger_class,
    on_starting,
    settle_heap,
    worker_tmp_dir,
)
from chat_common.logs import gunicorn_logconfig

bind = env_str("STREAM_BIND", "127.0.0.1:8002")
workers = env_int("STREAM_WORKERS", 2)
worker_class = "gevent"
worker_connections = env_int("STREAM_WORKER_CONNECTIONS", 10000)
timeout = 30
# Longer than the drain (STREAM_DRAIN_BATCH per STREAM_DRAIN_INTERVAL_S) of a full worker.
graceful_timeout = env_int("STREAM_GRACEFUL_TIMEOUT_S", 25)
# Short: a stopping gevent worker waits (up to graceful_timeout) for every connection's
# handler, an idle keep-alive one included. Only GETs come here, which nginx sends again on
# a fresh connection when a pooled one was just closed.
keepalive = 5
logconfig_dict = gunicorn_logconfig("stream", log_level(), access_log=env_str("ACCESS_LOG", "false") == "true")


def post_worker_init(worker: Any) -> None:
    """Check that gevent has what the stream's writes use, and make every write one system
    call where it fits (stream/transport.py); start the worker's Redis subscription, and
    drain its streams once it is told to stop."""
    import gevent

    from stream import transport

    transport.check()  # else the worker stops here, naming the versions (gunicorn halts on it)
    transport.install_sendall()
    # A connection's greenlet need not record who spawned it (a copy of the accepting
    # greenlet's stack, per connection): less memory and work per connect.
    gevent.config.track_greenlet_tree = False
    hub = worker.wsgi.extensions["chat.hub"]
    config = worker.wsgi.config["chat.config"]
    hub.start()

    def drain_on_exit() -> None:
        while worker.alive:
            gevent.sleep(0.2)
        hub.drain(config.drain_batch, config.drain_interval_s)

    gevent.spawn(drain_on_exit)
    settle_heap()
