# gunicorn settings for ingest: the same file runs locally and in the image.
# Each POST waits for Kafka's acknowledgement, so a worker serves many at once on greenlets.
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

bind = env_str("INGEST_BIND", "127.0.0.1:8001")
# One gevent process per instance (scale out by instances: the chart gives a pod one core),
# every POST a greenlet, all of them feeding the process's one Kafka producer; the worker
# closes idle keep-alive connections when it stops (ingest/worker.py), as a thread worker does.
# Measured against 2 gthread processes x 16 threads (bench/profiles/ingest_floor.py, 64
# closed-loop posters through the gateway, alternated with each other and other models on a
# shared, busy 2-core machine; bench/README.md, "Ingest: the packages' floor"), µs of ingest
# CPU per acknowledged POST, median (range): 1,186 (1,135-1,279) against 1,491 (1,393-1,546),
# three rounds each (2 gevent processes: 1,470; 1 gthread process of 32 threads: 1,553); with
# this worker, four rounds: 1,273 (1,169-1,362) against 1,927 (1,513-1,956), lower in every
# round, records per produce request 27 to 30 against 1.2 to 3.6, a stop 0.5-1.2 s against
# 2.3-2.5. One process serves at most a core's worth of POSTs: more means more instances.
workers = env_int("INGEST_WORKERS", 1)
worker_class = "ingest.worker.IdleClosingGeventWorker"
worker_connections = env_int("INGEST_CONNECTIONS", 1000)
timeout = 30
graceful_timeout = 20
# Idle keep-alive connections from a proxy stay open longer than the proxy keeps them in its
# pool (the gateway's nginx: 60 s; ingress-nginx's upstream-keepalive-timeout: 60 s), so the
# proxy is the side that closes one: otherwise it can send a POST on a connection just as this
# side closes it, and nginx does not retry a POST (the sender gets a 502/503). The worker
# closes idle connections at once when it stops (ingest/worker.py), so this does not delay a shutdown.
keepalive = 75
logconfig_dict = gunicorn_logconfig("ingest", log_level(), access_log=env_str("ACCESS_LOG", "false") == "true")


def post_worker_init(worker):
    # Before the worker accepts a connection: its producer connected, Redis's scripts loaded
    # (ingest.app.WarmUp), so that no request waits for them.
    worker.wsgi.extensions["chat.warm_up"].start()
    settle_heap()


def worker_exit(server, worker):
    producer = getattr(worker.wsgi, "extensions", {}).get("chat.producer") if worker.wsgi else None
    if producer is not None:
        producer.close()
    message_log = getattr(worker.wsgi, "extensions", {}).get("chat.message_log") if worker.wsgi else None
    if message_log is not None:
        message_log.close()
