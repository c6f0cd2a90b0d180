"""What a history page older than the Redis window costs in Redis round trips, and the
index lookup that keeps it small: the client's share, the room's offsets and its deleted
messages read in one call.

The pages are read in this process with the stream service's own History, over the test
stack's Redis and Kafka, through a Redis client that counts what it sends."""

import dataclasses
import json

import gevent
import httpx
import redis
from support import delete_message, new_room, post, session_headers, wait_applied

from chat_common.messages import STATE_KEY, deleted_key, offsets_key, pack_offsets
from stream.config import Config
from stream.history import History
from stream.scrollback import LOOKUP_EXAMINED, ClientLimited, Scrollback

WINDOW = 100  # HISTORY_MAX in the test stack
LIMIT = 20


class CountingConnection(redis.Connection):
    """A Redis connection counting its round trips: each send (a command, a pipeline or a
    script call) waits for its replies before the caller goes on."""

    sent = 0

    def send_packed_command(self, command, check_health=True):
        CountingConnection.sent += 1
        return super().send_packed_command(command, check_health)


def counting_history(stack, **settings):
    pool = redis.ConnectionPool.from_url(stack.settings.redis_url, connection_class=CountingConnection)
    config = dataclasses.replace(
        Config.from_env(), kafka_bootstrap_servers=stack.settings.kafka_bootstrap,
        redis_url=stack.settings.redis_url, scrollback_page_ms=60_000, **settings,
    )
    return History(redis.Redis(connection_pool=pool), config)


def walk_back(history, room):
    """Page back through the room to its first message: (messages oldest first, the round
    trips of each page, read ahead included, with whether the page reached Kafka)."""
    messages, costs, before = [], [], None
    while True:
        sent = CountingConnection.sent
        page = history.before(room, before, LIMIT, client="round-trips")
        while history.scrollback._prefetching:  # the read ahead the page started
            gevent.sleep(0.01)
        costs.append((CountingConnection.sent - sent, page.source))
        messages = page.messages + messages
        if not page.more:
            return messages, costs
        before = page.next_before or int(json.loads(page.messages[0])["id"])


def ids_of(messages):
    return [json.loads(m)["id"] for m in messages]


def test_a_page_older_than_the_window_costs_two_redis_round_trips_once_read(stack):
    base, room = stack.settings.gateway_url, new_room("trips")
    ids = [post(base, room, user=f"user{i % 5}", text=f"m{i}").json()["id"] for i in range(WINDOW + 5 * LIMIT)]
    wait_applied(base, room, ids[-1])
    history = counting_history(stack)
    history.before(room, None, 1)  # the script is loaded and a connection made before counting
    try:
        first, cold = walk_back(history, room)
        again, warm = walk_back(history, room)
    finally:
        history.scrollback.close()

    print(f"round trips per page, first walk: {cold}; again: {warm}")
    assert ids_of(first) == ids_of(again) == ids  # in order, once, Redis window and Kafka stitched
    kafka = [trips for trips, source in warm if source == "kafka"]
    assert len(kafka) >= 5
    # The window's state and the page in one MULTI/EXEC, then one lookup: the client's
    # share, the index and the deletions. No read ahead: the next page is cached already.
    assert kafka == [2] * len(kafka), warm


def test_the_lookup_skips_deleted_messages_and_goes_further_back_so_a_page_stays_full(stack):
    """Index entries 100..109 and 200..299, every tenth of the latter deleted and all from
    280 on, in a room no bridge writes: the lookup answers the newest shown ones."""
    client = redis.Redis.from_url(stack.settings.redis_url)
    room = new_room("lookup")
    client.set(offsets_key(room), pack_offsets(list(range(100, 110)) + list(range(200, 300))))
    deleted = list(range(200, 300, 10)) + list(range(280, 300))
    client.sadd(deleted_key(room), *[str(o) for o in deleted])
    partition = 0
    indexed = int(client.hget(STATE_KEY, f"indexed:{partition}"))
    scrollback = Scrollback(client, counting_history(stack).config)
    try:
        found = scrollback._look_up(room, partition, 300, 10, 0, 5, "lookup")
        shown = [o for o in range(200, 300) if o not in deleted]
        assert found.entries == shown[-10:]
        assert found.oldest == shown[-10] and not found.exhausted and found.indexed == indexed
        assert found.ahead == list(range(shown[-10] - 5, shown[-10]))

        found = scrollback._look_up(room, partition, 205, 10, 0, 5, "lookup")
        assert found.entries == [104, 105, 106, 107, 108, 109, 201, 202, 203, 204]  # 200 was deleted
        assert not found.exhausted and found.ahead == [100, 101, 102, 103]

        found = scrollback._look_up(room, partition, 103, 10, 0, 5, "lookup")
        assert (found.entries, found.exhausted, found.removed, found.ahead) == ([100, 101, 102], True, False, [])

        # Below the log's first offset (retention): neither returned nor looked past.
        found = scrollback._look_up(room, partition, 203, 10, 105, 5, "lookup")
        assert (found.entries, found.exhausted, found.removed) == ([105, 106, 107, 108, 109, 201, 202], True, True)
    finally:
        client.delete(offsets_key(room), deleted_key(room))


def test_a_lookup_past_many_deleted_messages_goes_on_in_the_next_call(stack):
    client = redis.Redis.from_url(stack.settings.redis_url)
    room = new_room("lookup-many")
    gone = list(range(1000, 1000 + 3 * LOOKUP_EXAMINED))
    client.set(offsets_key(room), pack_offsets([10, 11] + gone))
    client.sadd(deleted_key(room), *[str(o) for o in gone])
    scrollback = Scrollback(client, counting_history(stack).config)
    try:
        below, calls, shown = 10 ** 6, 0, []
        while True:
            found = scrollback._look_up(room, 0, below, 5, 0, 5, "lookup")
            calls += 1
            shown = found.entries + shown
            if found.exhausted:
                break
            below = found.oldest
        assert shown == [10, 11] and calls <= 4  # each call looks at LOOKUP_EXAMINED entries at most
    finally:
        client.delete(offsets_key(room), deleted_key(room))


def test_past_its_share_the_lookup_refuses_the_client_in_the_same_call(stack):
    client = redis.Redis.from_url(stack.settings.redis_url)
    history = counting_history(stack, scrollback_client_records=10)
    scrollback = history.scrollback
    key = scrollback._client_key("greedy")
    client.set(key, 10, ex=30)
    try:
        assert scrollback._look_up(new_room("lookup-ok"), 0, 100, 5, 0, 5, "another").entries == []
        sent = CountingConnection.sent  # the connection made and the script loaded
        try:
            scrollback._look_up(new_room("lookup-limited"), 0, 100, 5, 0, 5, "greedy")
        except ClientLimited as limited:
            assert 0 < limited.retry_after <= 30
        else:
            raise AssertionError("a client past its share was not refused")
        assert CountingConnection.sent - sent == 1
    finally:
        client.delete(key)


def test_pages_past_a_run_of_deleted_messages_in_kafka_stay_full_in_order_and_once(stack):
    base, room = stack.settings.gateway_url, new_room("deleted-run")
    mine = session_headers(base)
    with httpx.Client(base_url=base, timeout=10, headers=mine) as client:
        ids = [client.post(f"/api/rooms/{room}/messages", json={"user": "ann", "text": f"m{i}"}).json()["id"]
               for i in range(WINDOW + 3 * LIMIT)]
    wait_applied(base, room, ids[-1])
    gone = ids[10:10 + 2 * LIMIT]  # longer than a page, only in Kafka now
    for id in gone:
        assert delete_message(base, room, id, mine).status_code == 204
    kept = [id for id in ids if id not in gone]
    wait_applied(base, room, kept[-1])

    pages, before = [], None
    while True:
        params = {"limit": LIMIT} | ({"before": before} if before else {})
        body = httpx.get(f"{base}/stream/rooms/{room}/history", params=params, timeout=30).json()
        pages.append([m["id"] for m in body["messages"]])
        if not body["more"]:
            break
        before = body.get("next_before") or body["messages"][0]["id"]
    assert [id for page in reversed(pages) for id in page] == kept
    assert all(len(page) == LIMIT for page in pages[:-1]), [len(p) for p in pages]
