"""What a history page older than the Redis window costs in Redis round trips (the index
lookup that keeps it small is tested against Redis alone: tests/lua/test_lookup.py), and what
pages past the window leave out: deleted messages and retried copies.

The round trips are counted in this process with the stream service's own History, over the
test stack's Redis and Kafka, through a Redis client that counts what it sends."""

import dataclasses
import json

import gevent
import httpx
import redis
from support import delete_message, new_room, post, session_headers, wait_applied

from chat_common.messages import client_id_key
from stream.config import Config
from stream.history import History

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
        while history.scrollback.read_ahead.running():  # the read ahead the page started
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


def test_a_retried_copy_is_left_out_of_pages_past_the_window_whichever_form_its_client_id_key_has(stack):
    """A client_id's key holds the id of the message first stored with it (or, written before
    that, the whole message): a record of the log with that client_id and another id is a
    retried copy, never shown; the first one is."""
    base, room = stack.settings.gateway_url, new_room("retried")
    # Spread over names: the test stack allows 300 posts per name per minute, shared with
    # the tests before this one.
    ids = [post(base, room, user=f"retrier{i % 10}", text=f"m{i}", client_id=f"c-{room}-{i}").json()["id"]
           for i in range(WINDOW + LIMIT)]
    wait_applied(base, room, ids[-1])
    r = redis.Redis.from_url(stack.settings.redis_url)
    r.set(client_id_key(room, f"c-{room}-1"), ids[0])  # the first with this client_id was another message
    r.set(client_id_key(room, f"c-{room}-2"), json.dumps({"id": ids[0], "room": room, "user": "ann", "text": "m0",
                                                          "ts": 1, "client_id": f"c-{room}-2"}))  # the old form
    r.set(client_id_key(room, f"c-{room}-3"), ids[3])  # its own id: the first copy

    body = httpx.get(f"{base}/stream/rooms/{room}/history", params={"before": ids[LIMIT], "limit": LIMIT},
                     timeout=30).json()
    assert [m["id"] for m in body["messages"]] == [ids[0]] + ids[3:LIMIT]
