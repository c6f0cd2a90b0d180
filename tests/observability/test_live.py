"""The dashboard and the alert rules, evaluated by a real Prometheus scraping the real
stack, several instances per hop, while traffic flows and faults happen (see conftest.py
for the run)."""

import json
import re
import subprocess
from collections import Counter

import httpx
import pytest
from promsupport import (
    AFTER_BACKLOG_ALERTS,
    BRIDGE_DOWN_ALERTS,
    KAFKA_DOWN_ALERTS,
    NOT_FOR_ONE_BRIDGE_DOWN,
    ONE_BRIDGE_DOWN_ALERTS,
    REDIS_DOWN_ALERTS,
    all_rules,
    dashboard_targets,
    has_finite_value,
    recording_rules,
    selectors,
)

# The first test waits for the whole observed run: the stack with eight service instances
# started, then about four minutes of phases (conftest.py).
pytestmark = pytest.mark.timeout(900)

# Panel targets that may stay empty in this run, and why. Everything else must draw a line.
MAY_BE_EMPTY = {
    "chat_ingest_rate_limited_total": "the tests' rate limits are set high; tests/integration covers 429s",
}


def _may_be_empty(expr):
    return any(metric in expr for metric in MAY_BE_EMPTY)


@pytest.mark.parametrize("service", ["ingest", "bridge", "stream"])
def test_every_metrics_endpoint_passes_promtool(observed, service):
    for url in observed.stack.settings.service_urls(service):
        body = httpx.get(url + "/metrics", timeout=10).text
        assert "chat_http_requests_total" in body
        result = subprocess.run(["promtool", "check", "metrics"], input=body, capture_output=True, text=True)
        assert result.returncode == 0, url + ": " + result.stdout + result.stderr


def test_prometheus_scrapes_every_instance_under_its_job_name_as_a_pod(observed):
    settings = observed.stack.settings
    targets = observed.prometheus.api("/api/v1/targets")["activeTargets"]
    assert Counter(t["labels"]["job"] for t in targets) == {
        "chatroom-kafka": 1, **{f"chatroom-{service}": settings.replicas[service]
                                for service in ("ingest", "bridge", "stream")}}
    assert {t["labels"]["pod"] for t in targets} == {"kafka-0"} | {
        program for service in ("ingest", "bridge", "stream") for program in settings.instances(service)}
    assert all(t["health"] == "up" for t in targets), targets


def test_the_brokers_metrics_show_a_healthy_broker_that_took_the_runs_records(observed):
    """The JMX exporter's agent in the broker: every partition led and in sync, one active
    controller, and the records of the run counted going in."""
    prom, selector = observed.prometheus, 'job="chatroom-kafka"'
    for metric, healthy in (("kafka_server_replicamanager_underreplicatedpartitions", 0),
                            ("kafka_server_replicamanager_underminisrpartitioncount", 0),
                            ("kafka_controller_kafkacontroller_offlinepartitionscount", 0),
                            ("kafka_controller_kafkacontroller_activecontrollercount", 1)):
        result = prom.query(f"{metric}{{{selector}}}")
        assert [float(r["value"][1]) for r in result] == [healthy], (metric, result)
    records = prom.query(f"increase(kafka_server_brokertopicmetrics_messagesinpersec_total{{{selector}}}"
                         f"[{int(observed.end - observed.start) + 1}s])", at=observed.end)
    assert records and float(records[0]["value"][1]) > 100, records
    sizes = prom.query(f'kafka_log_size_bytes{{{selector},topic="chat.messages"}}')
    assert len(sizes) == observed.stack.settings.partitions and sum(float(r["value"][1]) for r in sizes) > 0


def test_per_pod_panels_draw_a_line_for_every_pod(observed):
    """A target broken down ``by (pod)`` shows each instance of its hop on its own."""
    settings, checked = observed.stack.settings, 0
    for _dashboard, panel, legend, expr in dashboard_targets():
        if "by (pod)" not in expr:
            continue
        service = re.search(r'job="chatroom-(\w+)"', expr).group(1)
        result = observed.prometheus.query_range(expr, observed.start, observed.end, step=1)
        assert {series["metric"]["pod"] for series in result} == set(settings.instances(service)), (panel, legend)
        checked += 1
    assert checked >= 3


def test_every_dashboard_target_is_valid_and_draws_data(observed):
    prom, empty, checked = observed.prometheus, [], 0
    for dashboard, panel, legend, expr in dashboard_targets():
        result = prom.query_range(expr, observed.start, observed.end, step=1)  # a bad expression fails here
        checked += 1
        if not has_finite_value(result) and not _may_be_empty(expr):
            empty.append(f"{dashboard} / {panel} / {legend}: {expr}")
    assert not empty, "panel targets without data:\n" + "\n".join(empty)
    assert checked >= 40


def test_every_rule_expression_is_valid_and_its_series_exist(observed):
    prom, missing = observed.prometheus, []
    for rule in all_rules():
        prom.query(rule["expr"])  # valid: the API answers success
        for selector in selectors(rule["expr"]):
            if not prom.query_range(f"count({selector})", observed.start, observed.end, step=1):
                missing.append(f"{rule.get('alert') or rule.get('record')}: {selector}")
    assert not missing, "selectors that match nothing in the run:\n" + "\n".join(missing)


def test_recording_rules_return_data(observed):
    for rule in recording_rules():
        result = observed.prometheus.query_range(rule["record"], observed.start, observed.end, step=1)
        assert has_finite_value(result), rule["record"]


def test_prometheus_evaluates_every_rule_without_error(observed):
    groups = observed.prometheus.api("/api/v1/rules")["groups"]
    evaluated = {rule["name"]: rule for group in groups for rule in group["rules"]}
    expected = {rule.get("alert") or rule.get("record") for rule in all_rules()}
    assert set(evaluated) == expected
    for name, rule in evaluated.items():
        assert rule["health"] == "ok", (name, rule.get("lastError"))


def test_no_alert_is_active_while_the_stack_is_healthy(observed):
    assert observed.alerts["healthy"] == {}


@pytest.mark.parametrize(
    "snapshot,names",
    [
        ("one bridge down", ONE_BRIDGE_DOWN_ALERTS),
        ("kafka down", KAFKA_DOWN_ALERTS),
        ("bridge down", BRIDGE_DOWN_ALERTS),
        ("after backlog", AFTER_BACKLOG_ALERTS),
        ("redis down", REDIS_DOWN_ALERTS),
    ],
)
def test_faults_activate_their_alerts(observed, snapshot, names):
    active = observed.alerts[snapshot]
    for name in names:
        assert active.get(name, set()) & {"pending", "firing"}, (snapshot, name, active)


def test_one_pod_down_is_not_the_hop_down(observed):
    """One bridge of three stopped: its pod's alert, none of the alerts that say the hop or
    the consumer group is gone."""
    active = observed.alerts["one bridge down"]
    assert not set(active) & set(NOT_FOR_ONE_BRIDGE_DOWN), active


def test_ingest_produced_again_by_itself_once_kafka_was_back(observed):
    """Not an observability property, but the run is where it shows: after the broker
    restart, POSTs must succeed again without restarting ingest."""
    assert observed.ingest_recovered_alone, "ingest needed a restart to produce after Kafka came back"


def test_the_run_saw_201s_and_503s(observed):
    assert observed.statuses.get(201, 0) > 100, observed.statuses
    assert observed.statuses.get(503, 0) > 0, observed.statuses


def test_end_to_end_latency_is_measured_for_every_message(observed):
    """The histogram's count over the run covers every acknowledged message: each stream
    worker records a message once, when the last of its readers in the room has it."""
    prom = observed.prometheus
    window_s = int(observed.end - observed.start) + 5
    delivered = prom.query(
        f'sum(increase(chat_delivery_latency_seconds_count{{job="chatroom-stream"}}[{window_s}s]))',
        at=observed.end,
    )
    acked = len(observed.acked)
    assert delivered and float(delivered[0]["value"][1]) >= 0.9 * acked, (delivered, acked)


def test_one_message_can_be_followed_through_the_json_logs(observed):
    """docs/metrics.md: ingest "message produced", bridge "message published", stream
    "message fanned out", each with msg_id and room."""
    room, msg_id = observed.acked[len(observed.acked) // 4]
    settings, logs = observed.stack.settings, observed.stack.run_dir / "logs"
    seen = {}
    for service, event in (("ingest", "message produced"), ("bridge", "message published"),
                           ("stream", "message fanned out")):
        lines = [line for program in settings.instances(service)  # whichever pod handled it
                 for line in (logs / f"{program}.log").read_text(errors="replace").splitlines()]
        for line in lines:
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if record.get("msg_id") == msg_id and record.get("room") == room and record.get("message") == event:
                assert record["service"] == service
                seen.setdefault(service, []).append(record["time"])
    # Each hop logs once it is done, so the three lines can interleave by a millisecond.
    assert set(seen) == {"ingest", "bridge", "stream"}, seen
