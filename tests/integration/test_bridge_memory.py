"""The bridge reports Redis's memory and its limit (for ChatRedisMemoryHigh): what Redis
itself says, followed within seconds when the limit changes."""

import time

import httpx
import redis
from prometheus_client.parser import text_string_to_metric_families

from bridge.consumer import REDIS_MEMORY_INTERVAL_S


def redis_gauges(stack):
    text = httpx.get(stack.settings.service_url("bridge") + "/metrics", timeout=10).text
    return {sample.name: sample.value for family in text_string_to_metric_families(text)
            for sample in family.samples if sample.name.startswith("chat_redis_")}


def test_the_bridge_reports_redis_memory_and_follows_its_limit(stack):
    client = redis.Redis.from_url(stack.settings.redis_url)
    before = int(client.config_get("maxmemory")["maxmemory"])
    limit = 3 * 1024**3  # far above what the stack uses: nothing is refused meanwhile
    client.config_set("maxmemory", limit)
    try:
        deadline = time.monotonic() + REDIS_MEMORY_INTERVAL_S * 3
        while (gauges := redis_gauges(stack)).get("chat_redis_maxmemory_bytes") != limit:
            assert time.monotonic() < deadline, gauges
            time.sleep(0.5)
        used = client.info("memory")["used_memory"]
        assert 0.5 * used < gauges["chat_redis_used_memory_bytes"] < 2 * used
    finally:
        client.config_set("maxmemory", before)
        client.close()
