# gunicorn settings for ingest: the same file runs locally and in the image.
# Each POST waits for Kafka's acknowledgement, so a worker serves many at once on threads.
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
# Two processes of 16 threads, each process one Kafka producer. One process of 64 threads
# (every POST of the instance feeding one producer, one request in flight) makes records
# share produce requests more, but costs more CPU per POST at load, in GIL contention:
# alternated on one stack, five rounds each (medians, on a shared, busy 2-core machine;
# bench/README.md, "Ingest: sharing produce requests"): records per batch in Kafka's log
# 2.16 against 1.63 with 64 closed-loop posters, but 2,311 against 1,877 µs of ingest CPU per
# POST; 4,025 against 4,150 at 50 msg/s, 2,844 against 2,994 at 200 (within the noise);
# 103 against 155 MB. Kept: the CPU is what a POST costs.
workers = env_int("INGEST_WORKERS", 2)
worker_class = "gthread"
threads = env_int("INGEST_THREADS", 16)
timeout = 30
graceful_timeout = 20
# Idle keep-alive connections from a proxy stay open longer than the proxy keeps them in its
# pool (the gateway's nginx: 60 s; ingress-nginx's upstream-keepalive-timeout: 60 s), so the
# proxy is the side that closes one: otherwise it can send a POST on a connection just as this
# side closes it, and nginx does not retry a POST (the sender gets a 502/503). gthread workers
# close idle connections at once when they stop, so this does not delay a shutdown.
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
