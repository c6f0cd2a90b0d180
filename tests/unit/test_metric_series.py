"""A healthy service exposes every series the dashboard and the alert rules read, with 0
before the first event: a counter that appears only with its first error leaves panels at
"No data" and ratios over it empty."""

import json
import re
from pathlib import Path

import yaml
from prometheus_client import REGISTRY

import bridge.metrics  # noqa: F401  (registers the services' metrics)
import ingest.metrics  # noqa: F401
import stream.metrics  # noqa: F401

CHART_FILES = Path(__file__).resolve().parents[2] / "helm" / "chatroom" / "files"
# Labelled by what only exists at run time: a partition once assigned, a route once answered,
# the Kafka client's own metrics once switched on (INGEST_KAFKA_CLIENT_METRICS).
LABELLED_AT_RUN_TIME = {"chat_bridge_consumer_lag", "chat_bridge_index_pending_records", "chat_http_requests",
                        "chat_http_request_duration_seconds", "chat_ingest_kafka_client"}


def families():
    return {family.name: family for family in REGISTRY.collect() if family.name.startswith("chat_")}


def queried_names():
    """Metric names in the dashboard's queries and the alert rules' expressions."""
    exprs = [target["expr"] for dashboard in (CHART_FILES / "dashboards").glob("*.json")
             for target in _targets(json.loads(dashboard.read_text()))]
    rules = yaml.safe_load((CHART_FILES / "alerts" / "rules.yaml").read_text())
    exprs += [rule["expr"] for group in rules["groups"] for rule in group["rules"]]
    return {name for expr in exprs for name in re.findall(r"\b(chat_[a-z_]+)", expr)}


def _targets(node):
    if isinstance(node, dict):
        yield from node.get("targets", [])
        for value in node.values():
            yield from _targets(value)
    elif isinstance(node, list):
        for value in node:
            yield from _targets(value)


def base_name(name):
    return re.sub(r"_(total|bucket|count|sum|created)$", "", name)


def test_every_labelled_metric_has_its_known_series_from_the_start():
    empty = [name for name, family in families().items()
             if name not in LABELLED_AT_RUN_TIME and not family.samples]
    assert empty == [], f"labelled metrics with no series before their first event: {empty}"


def test_the_dashboard_and_rules_read_only_metrics_the_services_expose():
    missing = sorted({base_name(n) for n in queried_names()} - set(families()))
    assert missing == [], f"queried but not exposed by any service: {missing}"
