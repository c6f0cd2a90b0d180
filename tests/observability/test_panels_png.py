"""What an operator would look at: the dashboard's key panels, drawn from Prometheus's
answers to the dashboard's own expressions over the observed run, with the faults shaded.

Writes test-artifacts/observability/metrics-panels.png; docs/metrics-panels.png is a copy
of one such run."""

import math

import matplotlib
import pytest

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from promsupport import ARTIFACTS, dashboard_panels, grafana_to_promql, load_dashboards  # noqa: E402

KEY_PANELS = [
    "Delivery latency p50 / p95 / p99",
    "Throughput through each hop",
    "Open SSE connections",
    "Consumer lag (records behind)",
    "POST answers by status",
    "Hops up",
]
FAULTS = {"one bridge down": "#e9c46a", "kafka down": "#e76f51", "bridge down": "#f4a261", "redis down": "#9b5de5"}

pytestmark = pytest.mark.timeout(900)  # it may be the test that waits for the observed run (conftest.py)


def _series(prom, expr, legend, start, end):
    lines = []
    for series in prom.query_range(expr, start, end, step=1):
        label = legend
        for key, value in series["metric"].items():
            label = label.replace("{{" + key + "}}", value)
        xs, ys = [], []
        for t, v in series["values"]:
            if xs and float(t) - start - xs[-1] > 1.5:  # no sample (target down, no traffic): a gap, not a line
                xs.append(math.nan)
                ys.append(math.nan)
            xs.append(float(t) - start)
            ys.append(float(v))
        lines.append((label, xs, ys))
    return lines


def test_key_panels_render_to_png(observed):
    panels = {p["title"]: p for p in dashboard_panels(load_dashboards()["chatroom-pipeline.json"])}
    prom, start, end = observed.prometheus, observed.start, observed.end
    fig, axes = plt.subplots(3, 2, figsize=(14, 11), constrained_layout=True)
    drawn = 0
    for ax, title in zip(axes.flat, KEY_PANELS, strict=False):
        panel = panels[title]
        unit = panel["fieldConfig"]["defaults"]["unit"]
        for target in panel["targets"]:
            for label, xs, ys in _series(prom, grafana_to_promql(target["expr"]), target["legendFormat"], start, end):
                if unit == "s":
                    ys = [y * 1000 if math.isfinite(y) else math.nan for y in ys]
                ax.plot(xs, ys, label=label, linewidth=1.3)
                drawn += sum(1 for y in ys if math.isfinite(y))
        if unit == "s":
            ax.set_yscale("log")
            ax.axhline(250, color="red", linestyle="--", linewidth=1, label="objective p99 ≤ 250 ms")
            ax.set_ylabel("ms (the top bucket, 10 s, caps the quantiles)")
        else:
            ax.set_ylabel({"cps": "per second", "reqps": "requests / s"}.get(unit, ""))
        for phase, color in FAULTS.items():
            if phase in observed.phases:
                a, b = observed.phases[phase]
                ax.axvspan(a - start, b - start, color=color, alpha=0.25, label=phase)
        ax.set_title(title)
        ax.set_xlabel("seconds into the run")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=7, loc="upper left")
    fig.suptitle("Chatroom / Pipeline: key panels over one observed run (Prometheus, 1 s scrapes)")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    target = ARTIFACTS / "metrics-panels.png"
    fig.savefig(target, dpi=90)
    plt.close(fig)
    assert drawn > 500, "the panels drew almost nothing"
    assert target.stat().st_size > 30_000
