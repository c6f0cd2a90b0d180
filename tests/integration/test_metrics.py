"""Every hop exposes /healthz, /readyz and /metrics, and the metrics move with traffic."""

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from support import SseClient, new_room, post, stream_url


def scrape(stack, service):
    text = httpx.get(stack.settings.service_url(service) + "/metrics", timeout=10).text
    samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            key = (sample.name, tuple(sorted(sample.labels.items())))
            samples[key] = samples.get(key, 0) + sample.value
    return samples


def total(samples, name, **labels):
    return sum(v for (n, ls), v in samples.items() if n == name and set(labels.items()) <= set(ls))


@pytest.mark.parametrize("service", ["ingest", "bridge", "stream"])
def test_every_hop_answers_health_and_readiness(stack, service):
    base = stack.settings.service_url(service)
    assert httpx.get(base + "/healthz").json() == {"status": "ok"}
    ready = httpx.get(base + "/readyz")
    assert ready.status_code == 200 and ready.json()["status"] == "ready"


def test_each_hop_counts_the_messages_it_handles(stack):
    base = stack.settings.gateway_url
    room = new_room("metrics")
    before = {service: scrape(stack, service) for service in ("ingest", "bridge", "stream")}
    client = SseClient(stream_url(base, room, history=0))
    try:
        for i in range(3):
            assert post(base, room, text=f"counted {i}").status_code == 201
        assert client.wait_messages(3)
        after = {service: scrape(stack, service) for service in ("ingest", "bridge", "stream")}
        assert client.wait_for(lambda c: total(scrape(stack, "stream"), "chat_stream_connections") >= 1)
    finally:
        client.close()

    def grew(service, name, by, **labels):
        return total(after[service], name, **labels) - total(before[service], name, **labels) >= by

    assert grew("ingest", "chat_ingest_messages_total", 3)
    assert grew("ingest", "chat_http_requests_total", 3, route="/api/rooms/<room>/messages", status="201")
    assert grew("ingest", "chat_ingest_produce_duration_seconds_count", 3)
    assert grew("bridge", "chat_bridge_messages_consumed_total", 3)
    assert grew("bridge", "chat_bridge_messages_applied_total", 3, outcome="written")
    assert grew("bridge", "chat_bridge_kafka_to_redis_seconds_count", 3)
    assert grew("stream", "chat_stream_events_sent_total", 3, event="message")
    assert grew("stream", "chat_delivery_latency_seconds_count", 3)
    assert grew("stream", "chat_stream_connects_total", 1, kind="fresh")
    assert any(name == "chat_bridge_consumer_lag" for name, _ in after["bridge"])
