"""A fresh ingest serves its first POSTs warm: each worker connects its Kafka producer (the
topic's metadata fetched) and loads Redis's scripts before it accepts a connection, and the
instance is not ready until then, so no request pays for them."""

import time
from concurrent.futures import ThreadPoolExecutor

import httpx
from prometheus_client.parser import text_string_to_metric_families
from support import free_port, new_room, post, services_beside, start_service_beside

WORKERS = 3


def producers_made(base):
    """chat_ingest_producer_connects_total of an ingest, by what made the producer."""
    made = {"warm_up": 0.0, "request": 0.0}
    for family in text_string_to_metric_families(httpx.get(f"{base}/metrics", timeout=10).text):
        for sample in family.samples:
            if sample.name == "chat_ingest_producer_connects_total":
                made[sample.labels["by"]] += sample.value
    return made


def wait_until(condition, timeout=30):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.1)


def test_no_post_to_a_fresh_ingest_waits_for_its_producer(stack, tmp_path):
    with services_beside(stack, ["ingest"], tmp_path, INGEST_WORKERS=str(WORKERS)) as urls:
        base, room = urls["ingest"], new_room("warm")
        # At once after ready, enough POSTs at a time to reach every worker.
        with ThreadPoolExecutor(4 * WORKERS) as pool:
            statuses = list(pool.map(lambda i: post(base, room, text=f"first {i}").status_code, range(8 * WORKERS)))
        assert statuses == [201] * len(statuses)
        wait_until(lambda: producers_made(base)["warm_up"] == WORKERS)  # each worker made its own, before serving
        assert producers_made(base)["request"] == 0  # and no request had to make one


def test_a_fresh_ingest_without_redis_is_not_ready(stack, tmp_path):
    process, base = start_service_beside(stack, "ingest", tmp_path, REDIS_URL=f"redis://127.0.0.1:{free_port()}/0")
    try:
        wait_until(lambda: _checks(base).get("kafka"))  # up, and its producer connected
        readyz = httpx.get(f"{base}/readyz", timeout=5)
        assert readyz.status_code == 503 and readyz.json()["checks"] == {"kafka": True, "redis": False}
    finally:
        process.terminate()
        process.wait(30)


def _checks(base):
    try:
        return httpx.get(f"{base}/readyz", timeout=5).json()["checks"]
    except httpx.HTTPError:
        return {}
