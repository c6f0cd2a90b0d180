"""Where the time goes, hop by hop: the services' own latency histograms (their /metrics),
read before and after a step; the difference is that step's distribution."""

import urllib.request
from collections.abc import Mapping
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

# hop -> (service, histogram): the order a message travels.
HOPS = {
    "ingest: POST handed to Kafka -> acknowledged": ("ingest", "chat_ingest_produce_duration_seconds"),
    "bridge: Kafka record timestamp -> published in Redis": ("bridge", "chat_bridge_kafka_to_redis_seconds"),
    "stream: received from Redis -> written to the socket": ("stream", "chat_stream_fanout_seconds"),
    "stream: message ts -> written to the socket": ("stream", "chat_delivery_latency_seconds"),
}

Snapshot = dict[str, dict[str, Any]]


def metrics_text(url: str) -> str:
    """A service's /metrics, or nothing if it does not answer."""
    try:
        with urllib.request.urlopen(f"{url}/metrics", timeout=5) as response:
            text: str = response.read().decode()
            return text
    except OSError:
        return ""


def snapshot(service_urls: Mapping[str, str]) -> Snapshot:
    """{hop: {"buckets": [(le, cumulative count)], "sum": s, "count": n}} from each service."""
    texts = {service: metrics_text(url) for service, url in service_urls.items()}
    out: Snapshot = {}
    for hop, (service, name) in HOPS.items():
        buckets: dict[float, float] = {}
        total, count = 0.0, 0.0
        for family in text_string_to_metric_families(texts.get(service, "")):
            if family.name != name:
                continue
            for sample in family.samples:
                if sample.name == name + "_bucket":
                    le = float(sample.labels["le"])
                    buckets[le] = buckets.get(le, 0.0) + sample.value
                elif sample.name == name + "_sum":
                    total += sample.value
                elif sample.name == name + "_count":
                    count += sample.value
        out[hop] = {"buckets": sorted(buckets.items()), "sum": total, "count": count}
    return out


def delta(before: Snapshot, after: Snapshot) -> dict[str, dict[str, Any] | None]:
    """Per hop: count, mean and interpolated p50 / p99 (ms) of what happened in between."""
    result: dict[str, dict[str, Any] | None] = {}
    for hop, b in after.items():
        a = before.get(hop, {"buckets": [], "sum": 0.0, "count": 0.0})
        prior = dict(a["buckets"])
        buckets = [(le, n - prior.get(le, 0.0)) for le, n in b["buckets"]]
        count = b["count"] - a["count"]
        if count <= 0:
            result[hop] = None
            continue
        result[hop] = {
            "count": int(count),
            "mean_ms": (b["sum"] - a["sum"]) / count * 1000,
            "p50_ms": _quantile(buckets, 0.5),
            "p99_ms": _quantile(buckets, 0.99),
        }
    return result


def _quantile(buckets: list[tuple[float, float]], q: float) -> float | None:
    """Linear interpolation within the bucket holding the quantile (as Prometheus does)."""
    if not buckets:
        return None
    total = buckets[-1][1]
    rank = q * total
    lower_le, lower_n = 0.0, 0.0
    for le, n in buckets:
        if n >= rank:
            if le == float("inf"):
                return lower_le * 1000
            span = n - lower_n
            frac = (rank - lower_n) / span if span > 0 else 0.0
            return (lower_le + (le - lower_le) * frac) * 1000
        lower_le, lower_n = le, n
    return None
