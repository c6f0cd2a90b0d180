"""Prometheus helpers shared by the services.

Under gunicorn every service runs prometheus-client in multiprocess mode: the
``PROMETHEUS_MULTIPROC_DIR`` environment variable names a directory (an emptyDir in
Kubernetes) that gunicorn's hooks clear on start and prune when a worker exits.
"""

import os
import shutil
import time
from typing import TypeVar

from flask import Flask, Response, g, request
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

# Latency buckets for a chat: a millisecond up to ten seconds.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

HTTP_REQUESTS = Counter(
    "chat_http_requests_total",
    "HTTP requests answered, by route template, method and status code.",
    ["route", "method", "status"],
)
HTTP_DURATION = Histogram(
    "chat_http_request_duration_seconds",
    "Time to answer an HTTP request (for a stream: to its first byte), by route template.",
    ["route"],
    buckets=LATENCY_BUCKETS,
)


M = TypeVar("M", Counter, Gauge, Histogram)


def with_labels(metric: M, *values: str) -> M:
    """``metric`` with a zero series for each known label value, so that a healthy service
    exposes 0 rather than nothing (panels say 0, ratios over it are not empty)."""
    for value in values:
        metric.labels(value)
    return metric


def _multiproc_dir() -> str | None:
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR")


def exposition() -> tuple[bytes, str]:
    """The body and content type of a /metrics answer, merged over all worker processes."""
    if _multiproc_dir():
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]  # untyped in prometheus_client
    else:
        registry = REGISTRY
    return generate_latest(registry), CONTENT_TYPE_LATEST


def reset_multiproc_dir() -> None:
    """gunicorn ``on_starting``: forget the files of an earlier run."""
    path = _multiproc_dir()
    if path:
        shutil.rmtree(path, ignore_errors=True)
        os.makedirs(path, exist_ok=True)


def worker_exited(pid: int) -> None:
    """gunicorn ``child_exit``: a dead worker's live gauges stop counting."""
    if _multiproc_dir():
        multiprocess.mark_process_dead(pid)  # type: ignore[no-untyped-call]  # untyped in prometheus_client


def instrument_requests(app: Flask) -> None:
    """Count and time every request by its route template (never by its raw path)."""
    # (route, method, status) -> its counter and histogram, looked up once
    series: dict[tuple[str, str, int], tuple[Counter, Histogram]] = {}

    @app.before_request
    def _start_timer() -> None:
        g.request_started = time.perf_counter()

    @app.after_request
    def _record(response: Response) -> Response:
        key = (request.url_rule.rule if request.url_rule else "unmatched", request.method, response.status_code)
        children = series.get(key)
        if children is None:
            children = series[key] = (HTTP_REQUESTS.labels(key[0], key[1], str(key[2])), HTTP_DURATION.labels(key[0]))
        children[0].inc()
        started = g.get("request_started")
        if started is not None:
            children[1].observe(time.perf_counter() - started)
        return response
