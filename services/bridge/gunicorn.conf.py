# gunicorn settings for bridge: the same file runs locally and in the image.
# One worker: it runs the Kafka consume loop in a thread and answers /healthz, /readyz and
# /metrics. Scale the bridge with replicas (the consumer group shares the partitions).
from gunicorn.arbiter import Arbiter
from gunicorn.workers.base import Worker

from chat_common.config import env_str, log_level
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

bind = env_str("BRIDGE_BIND", "127.0.0.1:8003")
workers = 1
worker_class = "gthread"
threads = 2
timeout = 30
graceful_timeout = 15
logconfig_dict = gunicorn_logconfig("bridge", log_level(), access_log=env_str("ACCESS_LOG", "false") == "true")


def post_worker_init(worker: Worker) -> None:
    worker.wsgi.extensions["chat.bridge"].start()
    worker.wsgi.extensions["chat.rooms"].start()  # private rooms: bridge/rooms.py
    settle_heap()


def worker_exit(server: Arbiter, worker: Worker) -> None:
    if worker.wsgi is not None:
        worker.wsgi.extensions["chat.bridge"].stop()
