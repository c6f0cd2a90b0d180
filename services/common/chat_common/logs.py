"""Structured logs: one JSON object per line on stdout.

Log with ``extra={"msg_id": ...}`` wherever a message is handled, so that one message can
be followed through ingest, bridge and stream by its id.
"""

import logging
import sys

from pythonjsonlogger.json import JsonFormatter

FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"


class _ServiceFilter(logging.Filter):
    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def filter(self, record: logging.LogRecord) -> bool:
        record.service = self.service
        return True


def formatter() -> JsonFormatter:
    return JsonFormatter(
        FORMAT,
        rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
        timestamp=False,
    )


def setup_logging(service: str, level: str = "INFO") -> None:
    """Send every logger of the process to stdout as JSON, tagged with the service name."""
    # A record need not look up what no line shows: the caller's file and line, the thread,
    # the process (a system call) and its multiprocessing name (the logging HOWTO's
    # "Optimization"). The stream logs a line per message per worker.
    logging._srcfile = None
    logging.logThreads = logging.logProcesses = logging.logMultiprocessing = False
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(formatter())
    handler.addFilter(_ServiceFilter(service))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # Client libraries are chatty at INFO; their warnings still come through.
    for noisy in ("kafka", "urllib3"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def gunicorn_logconfig(service: str, level: str = "INFO", access_log: bool = False) -> dict[str, object]:
    """gunicorn's ``logconfig_dict``: its own logs in the same JSON shape as the service's."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"service": {"()": _ServiceFilter, "service": service}},
        "formatters": {"json": {"()": formatter}},
        "handlers": {
            "console": {
                "class": "logging.StreamHandler",
                "stream": "ext://sys.stdout",
                "formatter": "json",
                "filters": ["service"],
            }
        },
        "root": {"handlers": ["console"], "level": level},
        "loggers": {
            "gunicorn.error": {"handlers": ["console"], "level": level, "propagate": False},
            "gunicorn.access": {
                "handlers": ["console"] if access_log else [],
                "level": "INFO" if access_log else "CRITICAL",
                "propagate": False,
            },
        },
    }
