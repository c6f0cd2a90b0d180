"""docs/metrics.md documents every metric the services define, and shows the panels."""

import importlib

from prometheus_client import REGISTRY
from promsupport import ROOT, recording_rules

DOC = ROOT / "docs" / "metrics.md"
MODULES = ("chat_common.metrics", "ingest.metrics", "bridge.metrics", "stream.metrics")


def defined_metrics():
    for module in MODULES:
        importlib.import_module(module)
    names = {}
    for family in REGISTRY.collect():
        if family.name.startswith("chat_"):
            names[family.name + ("_total" if family.type == "counter" else "")] = family.type
    return names


def test_the_services_define_the_metrics_the_rules_and_dashboard_need():
    names = defined_metrics()
    assert names["chat_delivery_latency_seconds"] == "histogram"
    assert names["chat_bridge_consumer_lag"] == "gauge"
    assert names["chat_stream_connections"] == "gauge"
    assert len(names) >= 30


def test_every_metric_is_documented():
    doc = DOC.read_text()
    missing = [name for name in defined_metrics() if f"`{name}`" not in doc]
    assert not missing, f"docs/metrics.md does not describe {missing}"


def test_every_recording_rule_is_documented():
    doc = DOC.read_text()
    for rule in recording_rules():
        stem = rule["record"].rsplit("_rate", 1)[0]
        assert stem in doc, rule["record"]


def test_metric_names_follow_the_conventions():
    for name, kind in defined_metrics().items():
        assert name.startswith("chat_") and name == name.lower(), name
        if kind == "counter":
            assert name.endswith("_total"), name
        if kind == "histogram":
            assert name.endswith("_seconds"), name
        assert not any(word in name for word in ("_milliseconds", "_ms", "_user", "_room_")), name


def test_the_panels_picture_is_committed_and_referenced():
    assert "(metrics-panels.png)" in DOC.read_text()
    png = ROOT / "docs" / "metrics-panels.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
