"""Structured logs: one JSON object per line on stdout.

Log with ``extra={"msg_id": ...}`` wherever a message is handled, so that one message can
be followed through ingest, bridge and stream by its id.

A line: ``time``, ``level``, ``logger``, ``message``, then the record's extra fields in
the order given, ``service``, and ``exc_info`` (the traceback) if there is one. The
formatter is written for the hot path: the stream logs a line per message per worker, and
python-json-logger's formatter (which made the same lines) took about three times as long.
"""

import json
import logging
import sys

# What every LogRecord carries: anything else on a record came from ``extra`` (or a filter).
_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime"}


def _default(value):
    """How a value JSON cannot encode is written: an exception as "Type: text", else str()."""
    if isinstance(value, BaseException):
        return f"{type(value).__name__}: {value}"
    return str(value)


class JsonFormatter(logging.Formatter):
    """One JSON object per record (see the module's docstring for its fields)."""

    def __init__(self):
        super().__init__()
        self._second, self._stamp = None, ""

    def formatTime(self, record, datefmt=None):
        """Local time to the millisecond ("2026-01-02 03:04:05,006"); the seconds' text is
        made once per second."""
        second = int(record.created)
        if second != self._second:
            self._second, self._stamp = second, super().formatTime(record)[:-4]
        return "%s,%03d" % (self._stamp, record.msecs)

    def format(self, record):
        fields = {"time": self.formatTime(record), "level": record.levelname, "logger": record.name,
                  "message": record.getMessage()}
        for key, value in record.__dict__.items():
            if key not in _STANDARD:
                fields[key] = value
        if record.exc_info:
            fields["exc_info"] = self.formatException(record.exc_info)
        if record.stack_info:
            fields["stack_info"] = self.formatStack(record.stack_info)
        return json.dumps(fields, default=_default)


class _ServiceFilter(logging.Filter):
    def __init__(self, service):
        super().__init__()
        self.service = service

    def filter(self, record):
        record.service = self.service
        return True


class LineHandler(logging.StreamHandler):
    """Each line goes to the stream's binary buffer in one write, which that buffer makes
    whole against other threads by itself: no handler lock per record (under gevent, a
    lock written in Python)."""

    def createLock(self):
        self.lock = None

    def emit(self, record):
        try:
            line = (self.format(record) + self.terminator).encode()
            out = getattr(self.stream, "buffer", None)
            if out is None:  # a text-only stream (a test's capture)
                self.stream.write(line.decode())
            else:
                out.write(line)
            self.flush()
        except RecursionError:
            raise
        except Exception:
            self.handleError(record)

    def flush(self):
        out = getattr(self.stream, "buffer", self.stream)
        if hasattr(out, "flush"):
            out.flush()


def formatter():
    return JsonFormatter()


def setup_logging(service, level="INFO"):
    """Send every logger of the process to stdout as JSON, tagged with the service name."""
    # A record need not look up what no line shows: the caller's file and line, the thread,
    # the process (a system call) and its multiprocessing name (the logging HOWTO's
    # "Optimization").
    logging._srcfile = None
    logging.logThreads = logging.logProcesses = logging.logMultiprocessing = False
    handler = LineHandler(sys.stdout)
    handler.setFormatter(formatter())
    handler.addFilter(_ServiceFilter(service))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # Client libraries are chatty at INFO; their warnings still come through.
    for noisy in ("kafka", "urllib3"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def gunicorn_logconfig(service, level="INFO", access_log=False):
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
