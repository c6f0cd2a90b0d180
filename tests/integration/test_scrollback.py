"""Scrollback into Kafka costs what the page costs, not what the other rooms in the
partition wrote: the bridge's per-room offset index names the records to fetch.

The other room's traffic is produced straight to Kafka (a producer is far faster than
posting through the gateway); the bridge applies it as any record.
"""

import time

import httpx
import pytest
import redis
from kafka import KafkaProducer
from prometheus_client.parser import text_string_to_metric_families

from chat_common.messages import Message, room_partition
from support import new_room, post, services_beside, wait_applied

WINDOW = 100  # HISTORY_MAX in the test stack
NOISE = 110_000  # the other room's records between the quiet room's first two messages (> BRIDGE_REBUILD_DEPTH)
RECORDS_METRIC = "chat_stream_scrollback_records_read"


def records_read(stack):
    """The stream service's count of Kafka records read for history pages (both ways)."""
    text = httpx.get(f"{stack.settings.service_url('stream')}/metrics", timeout=10).text
    for family in text_string_to_metric_families(text):
        if family.name == RECORDS_METRIC:
            return sum(s.value for s in family.samples if s.name == RECORDS_METRIC + "_total")
    raise AssertionError(f"the stream service reports no {RECORDS_METRIC}_total")


def room_in_partition(prefix, partition, partitions):
    while True:
        room = new_room(prefix)
        if room_partition(room, partitions) == partition:
            return room


def produce_noise(stack, room, count):
    producer = KafkaProducer(bootstrap_servers=stack.settings.kafka_bootstrap, linger_ms=5, batch_size=64 * 1024)
    value = Message(room=room, user="noise", text="n" * 80, ts=int(time.time() * 1000)).kafka_value()
    try:
        for _ in range(count):
            producer.send("chat.messages", key=room.encode(), value=value)
        producer.flush(120)
    finally:
        producer.close()


def page_back(base, room, limit, before=None):
    """Every message of the room older than ``before``, oldest first, following the pages
    (and their cursors) to the start; with each page's body."""
    bodies, messages = [], []
    while True:
        params = {"limit": limit} | ({"before": before} if before else {})
        response = httpx.get(f"{base}/stream/rooms/{room}/history", params=params, timeout=30)
        assert response.status_code == 200, response.text
        body = response.json()
        bodies.append(body)
        messages = body["messages"] + messages
        if not body["more"]:
            return messages, bodies
        before = body.get("next_before") or body["messages"][0]["id"]


@pytest.fixture(scope="module")
def busy_partition(stack):
    """A quiet room with one message, then NOISE records of another room of its partition,
    then WINDOW + 10 more messages: its first message is far back in Kafka."""
    base = stack.settings.gateway_url
    partition = room_partition(new_room("probe"), stack.settings.partitions)
    quiet = room_in_partition("quiet", partition, stack.settings.partitions)
    busy = room_in_partition("busy", partition, stack.settings.partitions)
    ids = [post(base, quiet, text="before the crowd").json()["id"]]
    produce_noise(stack, busy, NOISE)
    for i in range(WINDOW + 10):
        response = post(base, quiet, user=f"user{i % 5}", text=f"after {i}")
        assert response.status_code == 201
        ids.append(response.json()["id"])
    wait_applied(base, quiet, ids[-1], timeout=180)
    return partition, quiet, ids


@pytest.mark.slow
def test_a_history_page_reads_a_bounded_number_of_records_however_busy_the_partition(stack, busy_partition):
    _, quiet, ids = busy_partition
    before = records_read(stack)
    messages, bodies = page_back(stack.settings.gateway_url, quiet, 50)
    read = records_read(stack) - before

    assert [m["id"] for m in messages] == ids  # every message once, in order, the first across the crowd
    assert [len(b["messages"]) for b in bodies] == [50, 50, 11]
    # Three pages, two of which reach Kafka for 1 and 11 messages: a few close neighbours
    # of each are read, never the other room's 110,000 records.
    assert read <= 1_000, f"{read} Kafka records read for three pages"


@pytest.mark.slow
def test_a_small_room_answers_load_older_at_once_after_redis_restarted_empty(stack, busy_partition):
    partition, quiet, ids = busy_partition
    base = stack.settings.gateway_url
    r = redis.Redis.from_url(stack.settings.redis_url)
    stack.ctl("stop", "redis")
    stack.ctl("start", "redis")  # no persistence: it comes back empty, the bridge rebuilds
    deadline = time.monotonic() + 180
    while True:  # the recent past re-read into Redis, the older records into the offset index
        try:
            indexed = r.hget("chat:state", f"indexed:{partition}")
            if r.hget("chat:state", f"floor:{partition}") not in (None, b"-1") and indexed == b"0":
                break
        except redis.RedisError:
            pass
        assert time.monotonic() < deadline, "the bridge did not index the partition down to its beginning"
        time.sleep(0.5)
    wait_applied(base, quiet, ids[-1], timeout=180)  # the rebuild re-read the partition's recent past

    small = room_in_partition("small", partition, stack.settings.partitions)
    small_ids = [post(base, small, text=f"hello {i}").json()["id"] for i in range(6)]
    wait_applied(base, small, small_ids[-1], timeout=120)

    before = records_read(stack)
    latest = httpx.get(f"{base}/stream/rooms/{small}/history", params={"limit": 10}, timeout=30).json()
    older = httpx.get(f"{base}/stream/rooms/{small}/history", params={"before": small_ids[0], "limit": 50},
                      timeout=30).json()
    assert [m["id"] for m in latest["messages"]] == small_ids and latest["more"] is False
    assert older == {"messages": [], "more": False}
    assert records_read(stack) - before == 0  # the index knows the room has nothing older

    # And the quiet room is still whole, its first message far below the rebuilt window.
    messages, _ = page_back(base, quiet, 50)
    assert [m["id"] for m in messages] == ids


def test_past_its_share_of_kafka_reads_a_client_gets_a_json_429(stack, busy_partition, tmp_path):
    _, quiet, ids = busy_partition
    r = redis.Redis.from_url(stack.settings.redis_url)
    with services_beside(stack, ["stream"], tmp_path, STREAM_SCROLLBACK_CLIENT_RECORDS="1",
                         STREAM_SCROLLBACK_CLIENT_WINDOW_S="60") as urls:
        r.delete("chat:ratelimit:scrollback:127.0.0.1")
        url = f"{urls['stream']}/stream/rooms/{quiet}/history"
        first = httpx.get(url, params={"before": ids[2], "limit": 2}, timeout=30)
        assert first.status_code == 200
        assert [m["id"] for m in first.json()["messages"]] == ids[:2]
        refused = httpx.get(url, params={"before": ids[2], "limit": 2}, timeout=30)
        assert refused.status_code == 429
        assert refused.json()["error"]["code"] == "history_rate_limited"
        assert 1 <= int(refused.headers["Retry-After"]) <= 60
        # The Redis window costs no Kafka reads and is never refused.
        assert httpx.get(url, params={"limit": 5}, timeout=30).status_code == 200
        r.delete("chat:ratelimit:scrollback:127.0.0.1")
