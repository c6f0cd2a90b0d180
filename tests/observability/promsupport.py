"""Helpers for the observability tests: a real Prometheus, its HTTP API, and the
expressions the dashboard and the alert rules ship."""

import json
import math
import re
import socket
import subprocess
import time
from pathlib import Path

import httpx
import yaml

from local import prometheus as local_prometheus  # local/prometheus.py: the same configuration as `make run`'s

ROOT = Path(__file__).resolve().parents[2]
DASHBOARDS = sorted((ROOT / "helm" / "chatroom" / "files" / "dashboards").glob("*.json"))
RULES_FILE = ROOT / "helm" / "chatroom" / "files" / "alerts" / "rules.yaml"
RULES_TEST_FILE = Path(__file__).resolve().parent / "rules_test.yaml"
ARTIFACTS = ROOT / "test-artifacts" / "observability"

JOBS = ("chatroom-ingest", "chatroom-bridge", "chatroom-stream")
# What each fault of the observed run must make Prometheus report (pending or firing).
KAFKA_DOWN_ALERTS = ("ChatIngestErrorRatioHigh", "ChatKafkaProduceFailures", "ChatKafkaBrokerDown")
BRIDGE_DOWN_ALERTS = ("ChatHopDown", "ChatHopUnavailable", "ChatBridgeNoConsumer")
# One pod of a hop down: that pod's alert, not the hop's.
ONE_BRIDGE_DOWN_ALERTS = ("ChatHopDown",)
NOT_FOR_ONE_BRIDGE_DOWN = ("ChatHopUnavailable", "ChatBridgeNoConsumer", "ChatBridgeStalled")
# After the bridge's backlog arrives seconds late, the delivery SLO burns fast.
AFTER_BACKLOG_ALERTS = ("ChatDeliveryLatencyBudgetBurnFast",)
REDIS_DOWN_ALERTS = ("ChatBridgeDependencyErrors",)

SCRAPE_INTERVAL_S = 1
# What Grafana substitutes for $__rate_interval at this scrape interval: at least four scrapes.
RATE_INTERVAL = "5s"
# The broker is scraped every KAFKA_SCRAPE_INTERVAL_S (local/prometheus.py): four of its scrapes.
KAFKA_RATE_INTERVAL = f"{4 * local_prometheus.KAFKA_SCRAPE_INTERVAL_S}s"


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Prometheus:
    """A Prometheus process scraping a stack, with the chart's rules loaded."""

    def __init__(self, settings, run_dir):
        self.run_dir = Path(run_dir)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.config = local_prometheus.render_config(
            self.run_dir / "prometheus.yml", settings, scrape_interval=f"{SCRAPE_INTERVAL_S}s",
        )
        self.log = open(self.run_dir / "prometheus.log", "wb")
        self.process = subprocess.Popen(
            local_prometheus.command(self.config, self.run_dir / "data", self.port),
            stdout=self.log, stderr=subprocess.STDOUT,
        )
        self.http = httpx.Client(base_url=self.url, timeout=10)

    def wait_ready(self, timeout=30):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"prometheus exited; see {self.run_dir}/prometheus.log")
            try:
                if self.http.get("/-/ready").status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise TimeoutError("prometheus not ready")

    def wait_targets_up(self, jobs, timeout=30):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            targets = self.api("/api/v1/targets")["activeTargets"]
            up = {t["labels"]["job"] for t in targets if t["health"] == "up"}
            if set(jobs) <= up:
                return
            time.sleep(0.3)
        raise TimeoutError(f"targets not up: {targets}")

    def api(self, path, **params):
        response = self.http.get(path, params=params)
        body = response.json()
        assert body.get("status") == "success", (path, params, body)
        return body["data"]

    def query(self, expr, at=None):
        """An instant query; returns the API's answer (status checked) and its result."""
        params = {"query": expr}
        if at is not None:
            params["time"] = f"{at:.3f}"
        return self.api("/api/v1/query", **params)["result"]

    def query_range(self, expr, start, end, step=1.0):
        return self.api("/api/v1/query_range", query=expr, start=f"{start:.3f}", end=f"{end:.3f}", step=step)["result"]

    def active_alerts(self):
        """alertname -> set of states (pending, firing) of the alerts active now."""
        states = {}
        for alert in self.api("/api/v1/alerts")["alerts"]:
            states.setdefault(alert["labels"]["alertname"], set()).add(alert["state"])
        return states

    def wait_alerts(self, names, timeout):
        """Wait until every alert of ``names`` is pending or firing; return the states seen."""
        deadline = time.monotonic() + timeout
        while True:
            states = self.active_alerts()
            if set(names) <= set(states) or time.monotonic() > deadline:
                return states
            time.sleep(0.5)

    def stop(self):
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.http.close()
        self.log.close()


# -- what the chart ships ----------------------------------------------------------------


def load_dashboards():
    return {path.name: json.loads(path.read_text()) for path in DASHBOARDS}


def dashboard_panels(dashboard):
    """Every panel that draws data (rows excluded, collapsed rows' panels included)."""
    for panel in dashboard["panels"]:
        if panel["type"] == "row":
            yield from panel.get("panels", [])
        else:
            yield panel


def grafana_to_promql(expr):
    """A dashboard expression as Grafana sends it: its variables substituted ($namespace:
    All, which matches the local series that have no namespace label)."""
    interval = KAFKA_RATE_INTERVAL if 'job="chatroom-kafka"' in expr else RATE_INTERVAL
    return expr.replace("$__rate_interval", interval).replace("$namespace", ".*")


def dashboard_targets():
    """(dashboard file, panel title, legend, PromQL) for every panel target."""
    for name, dashboard in load_dashboards().items():
        for panel in dashboard_panels(dashboard):
            for target in panel.get("targets", []):
                yield name, panel["title"], target.get("legendFormat", ""), grafana_to_promql(target["expr"])


def load_rules():
    return yaml.safe_load(RULES_FILE.read_text())


def all_rules():
    for group in load_rules()["groups"]:
        yield from group["rules"]


def alert_rules():
    return [rule for rule in all_rules() if "alert" in rule]


def recording_rules():
    return [rule for rule in all_rules() if "record" in rule]


SELECTOR = re.compile(r"(?<![\w:])([a-zA-Z_:][\w:]*)\s*\{([^{}]*)\}")
RECORDED = re.compile(r"(?<![\w:])([a-zA-Z_][\w]*:[\w:]+)(?![\w:{(])")


def selectors(expr):
    """The vector selectors of an expression (``name{matchers}``, and recorded series)."""
    found = [f"{name}{{{matchers}}}" for name, matchers in SELECTOR.findall(expr)]
    found += [name for name in RECORDED.findall(expr) if name + "{" not in expr]
    return found


def has_finite_value(result):
    for series in result:
        values = series.get("values") or [series.get("value")]
        if any(v is not None and math.isfinite(float(v[1])) for v in values):
            return True
    return False
