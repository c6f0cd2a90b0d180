"""Redis refusing never switches a protection off: while it is down, or full (maxmemory with
noeviction, as the chart runs it), every ingest request whose checks live in Redis gets
503 redis_unavailable with Retry-After, and nothing reaches Kafka."""

import contextlib

import pytest
from kafka import KafkaConsumer, TopicPartition
from redis import Redis
from support import delete_message, new_room, post, session_headers, typing, wait_applied


@pytest.fixture(scope="module")
def end_offsets(stack):
    consumer = KafkaConsumer(bootstrap_servers=stack.settings.kafka_bootstrap)
    partitions = [TopicPartition("chat.messages", p) for p in consumer.partitions_for_topic("chat.messages")]
    yield lambda: consumer.end_offsets(partitions)
    consumer.close()


@contextlib.contextmanager
def redis_full(stack):
    """Redis over its maxmemory with noeviction: every write (and every script) gets OOM."""
    redis = Redis.from_url(stack.settings.redis_url)
    policy = redis.config_get("maxmemory-policy")["maxmemory-policy"]
    redis.config_set("maxmemory-policy", "noeviction")
    redis.config_set("maxmemory", 1)
    try:
        yield
    finally:
        redis.config_set("maxmemory", 0)
        redis.config_set("maxmemory-policy", policy)
        redis.close()


def assert_refused(response):
    assert response.status_code == 503, response.text
    assert response.json()["error"]["code"] == "redis_unavailable"
    assert int(response.headers["Retry-After"]) >= 1


def test_while_redis_is_full_posts_typing_and_deletes_are_refused_and_nothing_is_produced(stack, end_offsets):
    base, room = stack.settings.gateway_url, new_room("full")
    cookie = session_headers(base)
    mine = post(base, room, text="mine", headers=cookie).json()["id"]
    wait_applied(base, room, mine)
    before = end_offsets()
    with redis_full(stack):
        assert_refused(post(base, room, text="while full"))
        assert_refused(post(base, room, text="retried while full", client_id="c-full-1"))
        assert_refused(typing(base, room, "ann"))
        assert_refused(delete_message(base, room, mine, headers=cookie))
        assert end_offsets() == before
    assert post(base, room, text="after").status_code == 201  # back as soon as Redis takes writes


def test_while_redis_is_down_posts_typing_and_deletes_are_refused_and_nothing_is_produced(stack, end_offsets):
    base, room = stack.settings.gateway_url, new_room("down")
    cookie = session_headers(base)
    mine = post(base, room, text="mine", headers=cookie).json()["id"]
    wait_applied(base, room, mine)
    before = end_offsets()
    stack.ctl("stop", "redis")
    try:
        assert_refused(post(base, room, text="while down"))
        assert_refused(typing(base, room, "ann"))
        assert_refused(delete_message(base, room, mine, headers=cookie))
        assert end_offsets() == before
    finally:
        stack.ctl("start", "redis")  # no persistence: it comes back empty, and the bridge rebuilds it
    stack.wait_ready(60)
