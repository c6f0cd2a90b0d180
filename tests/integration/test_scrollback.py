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
from support import new_room, post, services_beside, wait_applied

from chat_common.messages import Message, room_partition

WINDOW = 100  # HISTORY_MAX in the test stack
NOISE = 110_000  # the other room's records between the quiet room's first two messages (> BRIDGE_REBUILD_DEPTH)
RECORDS_METRIC = "chat_stream_scrollback_records_read"


def records_read(stack):
    """The stream service's count of Kafka records read for history pages (both ways)."""
    return records_read_at(stack.settings.service_url("stream"))


def records_read_at(base):
    text = httpx.get(f"{base}/metrics", timeout=10).text
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


def test_readers_paging_back_through_the_same_room_read_kafka_once_between_them(stack, busy_partition, tmp_path):
    """What a room's members do when they scroll up together: the second walk through the
    room's past is answered from the worker's cache of the messages it read, whole and in
    order, without a Kafka read."""
    _, quiet, ids = busy_partition
    with services_beside(stack, ["stream"], tmp_path, STREAM_WORKERS="1") as urls:
        messages, _ = page_back(urls["stream"], quiet, 50)
        assert [m["id"] for m in messages] == ids
        first_walk = records_read_at(urls["stream"])
        assert first_walk > 0  # the first walk read the log (the quiet room's first message is far back)
        messages, _ = page_back(urls["stream"], quiet, 50)
        assert [m["id"] for m in messages] == ids
        assert records_read_at(urls["stream"]) == first_walk  # the second read none


def metric_at(base, family_name, label, value):
    text = httpx.get(f"{base}/metrics", timeout=10).text
    for family in text_string_to_metric_families(text):
        if family.name == family_name:
            return sum(s.value for s in family.samples if s.name.endswith("_total") and s.labels[label] == value)
    raise AssertionError(f"the stream service reports no {family_name}")


def test_after_a_page_the_next_older_one_is_read_ahead_and_served_without_reading_kafka(
        stack, busy_partition, tmp_path):
    """A reader paging back asks for the next older page next: the worker reads it into its
    cache as soon as it answered one, so that page reads no Kafka record of its own."""
    _, quiet, ids = busy_partition
    oldest_in_window = len(ids) - WINDOW
    with services_beside(stack, ["stream"], tmp_path, STREAM_WORKERS="1") as urls:
        url = f"{urls['stream']}/stream/rooms/{quiet}/history"
        first = httpx.get(url, params={"before": ids[oldest_in_window], "limit": 3}, timeout=30).json()
        assert [m["id"] for m in first["messages"]] == ids[oldest_in_window - 3:oldest_in_window]
        deadline = time.monotonic() + 30
        while metric_at(urls["stream"], "chat_stream_scrollback_prefetch", "outcome", "done") < 1:
            assert time.monotonic() < deadline, "the next older page was not read ahead"
            time.sleep(0.1)
        def page_reads():  # records read from Kafka by pages (not by reads ahead), cache hits
            return (metric_at(urls["stream"], "chat_stream_scrollback_records_read", "way", "index"),
                    metric_at(urls["stream"], "chat_stream_scrollback_cache", "result", "hit"))

        read, hits = page_reads()
        second = httpx.get(url, params={"before": first["messages"][0]["id"], "limit": 3}, timeout=30).json()
        assert [m["id"] for m in second["messages"]] == ids[oldest_in_window - 6:oldest_in_window - 3]
        assert second["more"] is True
        read_after, hits_after = page_reads()
        assert read_after == read  # the whole page came from the cache: no Kafka read of its own
        assert hits_after - hits == 4  # its 3 messages and the one that tells `more`


def test_a_page_that_runs_out_of_time_answers_what_it_has_and_the_next_goes_on_from_there(
        stack, busy_partition, tmp_path):
    """With no time to spare (0 ms: one run of records a page) and no cache, every page that
    reads the log answers after its first run, with a cursor; following the cursors still
    gives every message once, in order, down to the first."""
    _, quiet, ids = busy_partition
    with services_beside(stack, ["stream"], tmp_path, STREAM_SCROLLBACK_PAGE_MS="0",
                         STREAM_SCROLLBACK_CACHE_MESSAGES="0") as urls:
        messages, bodies = page_back(urls["stream"], quiet, 50)
    assert [m["id"] for m in messages] == ids
    cut = [b for b in bodies if "next_before" in b]
    assert cut and all(len(b["messages"]) < 50 and b["more"] for b in cut)
    assert bodies[-1]["more"] is False and "next_before" not in bodies[-1]


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


def test_where_the_index_does_not_reach_each_page_scans_within_its_budget_and_hands_back_a_cursor(
        stack, busy_partition):
    """The minutes after Redis came back empty, before the bridge re-indexed the older
    records: the reader scans, never more than its budget per page, and the cursor leads
    on to the room's first message. Driven on a Redis database of its own, where the
    partition is indexed only from its end (what the bridge's state says then)."""
    from types import SimpleNamespace

    from kafka import KafkaConsumer, TopicPartition

    from stream.scrollback import Scrollback

    partition, quiet, ids = busy_partition
    r = redis.Redis.from_url(stack.settings.redis_url.rsplit("/", 1)[0] + "/9")
    r.flushdb()
    consumer = KafkaConsumer(bootstrap_servers=stack.settings.kafka_bootstrap)
    tp = TopicPartition("chat.messages", partition)
    end = consumer.end_offsets([tp])[tp]
    consumer.close()
    r.hset("chat:state", f"indexed:{partition}", end)  # nothing indexed below the end yet
    budget = 10_000
    config = SimpleNamespace(kafka_topic="chat.messages", kafka_bootstrap_servers=stack.settings.kafka_bootstrap,
                             scrollback_readers=1, scrollback_wait_s=5, scrollback_scan_records=budget,
                             scrollback_client_records=10**9, scrollback_client_window_s=60,
                             scrollback_cache_messages=0, scrollback_page_ms=10**6, scrollback_prefetch=False)
    scrollback = Scrollback(r, config)
    try:
        found, pages, below = [], 0, int(ids[1])
        while True:
            older = scrollback.older(quiet, partition, below, 2, "test")
            pages += 1
            assert older.records <= budget
            found += [int(i) for _, i in older.messages]
            if older.cursor is None:
                break
            assert older.cursor < below
            below = older.cursor
        assert found == [int(ids[0])]  # the first message, found below the crowd; nothing older
        assert pages >= NOISE // budget  # each page stopped at its budget, then went on from its cursor
        assert older.older_removed is False  # the log still starts at offset 0
    finally:
        scrollback.close()
        r.flushdb()


@pytest.mark.slow
def test_once_retention_removed_a_rooms_first_messages_its_last_page_says_so(stack, busy_partition):
    """The partition's first records deleted, as retention deletes them (this test goes
    last: the quiet room loses its first message). A room that lost messages ends with
    older_removed; a room born after the deletion still reaches its own start."""
    from kafka import KafkaAdminClient, TopicPartition

    partition, quiet, ids = busy_partition
    base = stack.settings.gateway_url
    admin = KafkaAdminClient(bootstrap_servers=stack.settings.kafka_bootstrap)
    try:
        admin.delete_records({TopicPartition("chat.messages", partition): int(ids[1])})
    finally:
        admin.close()
    fresh = room_in_partition("fresh", partition, stack.settings.partitions)
    fresh_ids = [post(base, fresh, text=f"new {i}").json()["id"] for i in range(3)]
    wait_applied(base, fresh, fresh_ids[-1])

    deadline = time.monotonic() + 60  # each stream worker reads a partition's beginning anew every 10 s
    while True:
        messages, bodies = page_back(base, quiet, 50)
        if [m["id"] for m in messages] == ids[1:] and bodies[-1].get("older_removed") is True:
            break
        assert time.monotonic() < deadline, ([m["id"] for m in messages][:3], bodies[-1].get("older_removed"))
        time.sleep(0.5)
    assert all("older_removed" not in body for body in bodies[:-1])  # only the last page says it
    older = httpx.get(f"{base}/stream/rooms/{fresh}/history", params={"before": fresh_ids[0]}, timeout=30).json()
    assert older == {"messages": [], "more": False}
