"""What every service's gunicorn.conf.py shares: hooks and settings for containers.

Each gunicorn.conf.py imports these names explicitly, so gunicorn sees them as settings.
"""

import gc
import logging
import os

from gunicorn.glogging import Logger
from gunicorn.workers.base import Worker

from chat_common.config import env_bool
from chat_common.metrics import reset_multiproc_dir, worker_exited

# Heartbeat files in memory: the root filesystem is read-only in Kubernetes.
worker_tmp_dir = "/dev/shm" if os.path.isdir("/dev/shm") else None
# No runtime control socket: nothing uses it, and it would need a writable home.
control_socket_disable = True
# Request limits that stop oversized or slow headers early.
limit_request_line = 4094
limit_request_fields = 50


class AccessLogWhenEnabled(Logger):  # type: ignore[misc]  # gunicorn has no type information
    """gunicorn's logger, except that it builds an access log line only when the access
    logger will write it (ACCESS_LOG=true): with a logging config, gunicorn builds one for
    every request and lets the logger drop it."""

    def access(self, resp: object, req: object, environ: dict[str, object], request_time: object) -> None:
        if self.access_log.isEnabledFor(logging.INFO):
            super().access(resp, req, environ, request_time)


logger_class = AccessLogWhenEnabled


def on_starting(server: object) -> None:
    """Forget the metrics files of an earlier run."""
    reset_multiproc_dir()


def child_exit(server: object, worker: Worker) -> None:
    """A dead worker's live gauges stop counting."""
    worker_exited(worker.pid)


def settle_heap() -> None:
    """Called in each worker once its app is loaded: the objects that live as long as the
    worker (modules, the app, its clients) leave the garbage collector's view, so a full
    collection no longer walks them all while every thread of the worker waits.

    Measured under load before this: each worker ran a full collection two or three times a
    minute, 40 to 270 ms each, over the 45,000 to 65,000 objects of its startup.
    GC_FREEZE=false leaves the collector as Python sets it.
    """
    if env_bool("GC_FREEZE", True):
        gc.collect()
        gc.freeze()
