"""The Grafana dashboards shipped in the chart: the committed JSON is what the code in
dashboards/ builds, and it has the structure an import and the sidecar rely on, a
datasource variable used by every query, and what an operator needs on them.

(Grafana's dashboard linter cannot be installed from the Go module proxy here; these
checks cover its rules that apply: templated datasource, panel datasource, titles and
descriptions, units, $__rate_interval, valid PromQL (test_live.py).)"""

import re

import pytest
from promsupport import DASHBOARDS, dashboard_panels, load_dashboards

from dashboards.__main__ import rendered

GRAFANA_UNITS = {"s", "ms", "short", "percentunit", "reqps", "cps", "ops", "none", "bytes", "Bps"}


def test_the_chart_ships_the_pipeline_dashboard():
    assert [path.name for path in DASHBOARDS] == ["chatroom-pipeline.json"]


def test_the_committed_dashboards_are_what_the_code_builds():
    """Change a dashboard in dashboards/, then run `make dashboards` to write its JSON."""
    built = rendered()
    assert sorted(built) == DASHBOARDS
    for path, text in built.items():
        assert path.read_text() == text, f"{path.name} differs from what dashboards/ builds: run make dashboards"


@pytest.fixture(params=sorted(load_dashboards()), scope="module")
def dashboard(request):
    return load_dashboards()[request.param]


def test_identity(dashboard):
    assert re.fullmatch(r"[a-z0-9-]{1,40}", dashboard["uid"])
    assert dashboard["title"].startswith("Chatroom / ")
    assert dashboard["schemaVersion"] >= 36
    assert "id" not in dashboard or dashboard["id"] is None  # an id would clash on import


def test_datasource_variable_and_its_use(dashboard):
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    namespace = variables["namespace"]
    assert namespace["datasource"]["uid"] == "${datasource}"
    assert namespace["includeAll"] and namespace["allValue"] == ".*"
    for panel in dashboard_panels(dashboard):
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, panel["title"]
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == "${datasource}", panel["title"]


def test_panels_are_titled_described_and_have_units(dashboard):
    for panel in dashboard_panels(dashboard):
        assert panel["title"] and len(panel["description"]) > 20, panel["title"]
        assert panel["fieldConfig"]["defaults"]["unit"] in GRAFANA_UNITS, panel["title"]
        assert panel["targets"], panel["title"]


def test_queries_use_rate_interval_namespace_and_a_job(dashboard):
    for panel in dashboard_panels(dashboard):
        for target in panel["targets"]:
            expr = target["expr"]
            windows = re.findall(r"\[([^\]]+)\]", expr)
            assert all(w == "$__rate_interval" for w in windows), (panel["title"], expr)
            for matchers in re.findall(r"\{([^{}]*)\}", expr):
                assert 'namespace=~"$namespace"' in matchers, (panel["title"], expr)
                assert re.search(r'job=~?"chatroom-', matchers), (panel["title"], expr)


def test_layout_ids_unique_and_no_overlap(dashboard):
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    cells = set()
    for panel in dashboard["panels"]:
        pos = panel["gridPos"]
        assert 0 <= pos["x"] and pos["x"] + pos["w"] <= 24, panel["title"]
        for x in range(pos["x"], pos["x"] + pos["w"]):
            for y in range(pos["y"], pos["y"] + pos["h"]):
                assert (x, y) not in cells, f"{panel['title']} overlaps another panel"
                cells.add((x, y))


def test_a_row_per_hop_plus_end_to_end(dashboard):
    rows = [p["title"] for p in dashboard["panels"] if p["type"] == "row"]
    assert [r.split(":")[0] for r in rows] == ["End to end", "Ingest", "Bridge", "Stream", "Kafka"]
    end_to_end = []
    for panel in dashboard["panels"][1:]:
        if panel["type"] == "row":
            break
        end_to_end.append(panel)
    exprs = " ".join(t["expr"] for p in end_to_end for t in p["targets"])
    for needed in ("histogram_quantile(0.5,", "histogram_quantile(0.95,", "histogram_quantile(0.99,",
                   "chat_delivery_latency_seconds_count", "chat_stream_connections", "chat_bridge_consumer_lag"):
        assert needed in exprs, needed
