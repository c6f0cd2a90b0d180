"""Reconnecting clients get exactly what they missed; history pages back into Kafka."""

import time

import httpx
import redis
from support import SseClient, new_room, post, stream_url, wait_applied

WINDOW = 100  # HISTORY_MAX in the test stack


def post_many(base, room, count, prefix="m"):
    ids = []
    for i in range(count):
        response = post(base, room, user=f"user{i % 5}", text=f"{prefix} {i}")
        assert response.status_code == 201
        ids.append(response.json()["id"])
    wait_applied(base, room, ids[-1])
    return ids


def test_a_fresh_connect_gets_the_last_n_messages_then_live_ones(stack):
    base = stack.settings.gateway_url
    room = new_room("hist")
    ids = post_many(base, room, 12)
    client = SseClient(stream_url(base, room, history=5))
    try:
        assert client.wait_messages(5)
        assert [m["id"] for m in client.messages()] == ids[-5:]
        live = post(base, room, text="live").json()
        assert client.wait_messages(6)
        assert client.messages()[-1] == live
    finally:
        client.close()


def test_a_reconnect_with_last_event_id_gets_exactly_the_missed_messages(stack):
    base = stack.settings.gateway_url
    room = new_room("resume")
    first = SseClient(stream_url(base, room, history=0))
    seen = post_many(base, room, 3)
    assert first.wait_messages(3)
    first.close()

    missed = post_many(base, room, 20, prefix="missed")
    again = SseClient(stream_url(base, room), headers={"Last-Event-ID": seen[-1]})
    try:
        assert again.wait_messages(20)
        live = post(base, room, text="after").json()
        assert again.wait_messages(21)
        assert [m["id"] for m in again.messages()] == missed + [live["id"]]
        assert not any(e.event == "reset" for e in again.received)
    finally:
        again.close()


def test_the_first_connect_may_resume_with_a_query_parameter(stack):
    base = stack.settings.gateway_url
    room = new_room("resumeq")
    ids = post_many(base, room, 6)
    client = SseClient(stream_url(base, room, last_event_id=ids[2]))
    try:
        assert client.wait_messages(3)
        assert [m["id"] for m in client.messages()] == ids[3:]
    finally:
        client.close()


def test_an_id_older_than_the_window_gets_a_reset_then_the_last_n(stack):
    base = stack.settings.gateway_url
    room = new_room("reset")
    ids = post_many(base, room, WINDOW + 10)
    client = SseClient(stream_url(base, room, history=7), headers={"Last-Event-ID": ids[0]})
    try:
        assert client.wait_messages(7)
        kinds = [e.event for e in client.received if e.event in ("reset", "message") and e.data]
        assert kinds[0] == "reset"
        assert [m["id"] for m in client.messages()] == ids[-7:]
    finally:
        client.close()


def opening_position(client):
    """The id a connect handed the reader before any event (its position)."""
    assert client.wait_for(lambda c: c.received)
    first = client.received[0]
    assert first.data == "" and first.event in ("", "message")  # a block with no data: no event for the page
    assert first.id
    return first.id


def test_every_connect_hands_the_reader_its_position_first_also_in_an_empty_room_with_history_0(stack):
    base = stack.settings.gateway_url
    room = new_room("position")
    first = SseClient(stream_url(base, room, history=0))
    position = opening_position(first)
    first.close()
    said_while_away = post_many(base, room, 3)

    again = SseClient(stream_url(base, room, history=0), headers={"Last-Event-ID": position})
    try:
        assert again.wait_messages(3)
        assert [m["id"] for m in again.messages()] == said_while_away
        assert opening_position(again) == position
        assert not any(e.event == "reset" for e in again.received)
    finally:
        again.close()


def test_a_fresh_connects_position_comes_before_its_history_so_a_reconnect_misses_none_of_it(stack):
    base = stack.settings.gateway_url
    room = new_room("position")
    ids = post_many(base, room, 6)
    first = SseClient(stream_url(base, room, history=3))
    assert first.wait_messages(3)
    position = opening_position(first)
    first.close()
    assert int(position) == int(ids[3]) - 1

    again = SseClient(stream_url(base, room, history=3), headers={"Last-Event-ID": position})
    try:
        assert again.wait_messages(3)
        assert [m["id"] for m in again.messages()] == ids[3:]
    finally:
        again.close()


def test_the_position_before_a_partitions_first_record_is_a_valid_resume_point(stack):
    base = stack.settings.gateway_url
    room = new_room("position")
    ids = post_many(base, room, 2)
    # -1: what a connect hands a reader while nothing was ever written in the room's partition
    client = SseClient(stream_url(base, room, last_event_id=-1))
    try:
        assert client.wait_messages(2)
        assert [m["id"] for m in client.messages()] == ids
        assert not any(e.event == "reset" for e in client.received)
    finally:
        client.close()
    assert httpx.get(stream_url(base, room), headers={"Last-Event-ID": "-2"}, timeout=10).status_code == 400


def test_when_the_hubs_resubscribe_readers_get_nothing_twice_and_nothing_older_than_asked(stack):
    """The bridge held back, readers (one resumed at the room's newest message, one fresh
    with history=0) connect while the window holds nothing newer; every stream worker's
    pub/sub connection then drops, and each hub resubscribes and re-offers the room's
    window; then the bridge publishes what was sent meanwhile."""
    base = stack.settings.gateway_url
    room = new_room("refill")
    before = post_many(base, room, 5)
    stack.ctl("stop", "bridge")
    readers = []
    try:
        held_back = [post(base, room, text=f"held {i}").json()["id"] for i in range(3)]
        readers = [
            SseClient(stream_url(base, room), headers={"Last-Event-ID": before[-1]}),
            SseClient(stream_url(base, room, history=0)),
        ]
        for reader in readers:  # connected: history read (nothing newer than before[-1]), presence last
            assert reader.wait_for(lambda c: any(e.event == "presence" for e in c.received))
        redis.Redis.from_url(stack.settings.redis_url).client_kill_filter(_type="pubsub")
    finally:
        stack.ctl("start", "bridge")
    try:
        for reader in readers:
            assert reader.wait_messages(3, timeout=60)
        live = post(base, room, text="after").json()["id"]
        for reader in readers:
            assert reader.wait_for(lambda c: c.messages() and c.messages()[-1]["id"] == live)
            assert [m["id"] for m in reader.messages()] == held_back + [live]
    finally:
        for reader in readers:
            reader.close()
        stack.wait_ready(120)


def test_history_pages_back_past_the_redis_window_into_kafka_without_gap_or_duplicate(stack):
    base = stack.settings.gateway_url
    room = new_room("deep")
    other = new_room("deep-other")  # other rooms' records share partitions and must be skipped
    ids = []
    for i in range(WINDOW + 50):
        ids.append(post(base, room, user=f"user{i % 5}", text=f"deep {i}").json()["id"])
        if i % 10 == 0:
            post(base, other, text="noise")

    pages, before = [], None
    while True:
        params = {"limit": 40} | ({"before": before} if before else {})
        body = httpx.get(f"{base}/stream/rooms/{room}/history", params=params, timeout=30).json()
        assert body["messages"], "an empty page must not promise more"
        pages.append([m["id"] for m in body["messages"]])
        assert all(m["room"] == room for m in body["messages"])
        before = body["messages"][0]["id"]
        if not body["more"]:
            break
    collected = [i for page in reversed(pages) for i in page]
    assert collected == ids  # oldest first, every message once, Redis and Kafka stitched together
    assert len(pages) == 4  # 150 messages in pages of 40


def test_history_of_an_unknown_room_is_empty(stack):
    body = httpx.get(f"{stack.settings.gateway_url}/stream/rooms/{new_room('empty')}/history", timeout=10).json()
    assert body == {"messages": [], "more": False}


def test_presence_lists_connected_users_and_announces_changes(stack):
    base = stack.settings.gateway_url
    room = new_room("presence")
    ann = SseClient(stream_url(base, room, user="ann"))
    try:
        bob = SseClient(stream_url(base, room, user="bob"))
        presence = lambda c: [e.data for e in c.received if e.event == "presence"]  # noqa: E731
        assert ann.wait_for(lambda c: '{"users":["ann","bob"]}' in presence(c))
        assert httpx.get(f"{base}/stream/rooms/{room}/presence").json() == {"users": ["ann", "bob"]}
        bob.close()
        assert ann.wait_for(lambda c: presence(c)[-1] == '{"users":["ann"]}')
    finally:
        ann.close()


def test_the_flask_sse_endpoint_streams_a_channel_live(stack):
    base = stack.settings.gateway_url
    room = new_room("compat")
    post(base, room, text="before")  # flask-sse sends no history
    client = SseClient(f"{base}/stream?channel={room}")
    try:
        live = post(base, room, text="live").json()
        assert client.wait_messages(1)
        assert client.messages() == [live]
    finally:
        client.close()


def test_sse_responses_are_unbuffered_uncached_and_hint_a_retry(stack):
    # Straight from the service: nginx acts on X-Accel-Buffering and does not pass it on.
    client = SseClient(stream_url(stack.settings.service_url("stream"), new_room("headers")))
    try:
        assert client.status == 200
        assert client.response_headers["content-type"].startswith("text/event-stream")
        assert client.response_headers["cache-control"] == "no-cache"
        assert client.response_headers["x-accel-buffering"] == "no"
        assert client.wait_for(lambda c: any(e.retry for e in c.received))
    finally:
        client.close()


def test_a_stock_flask_sse_publisher_reaches_the_rooms_clients(stack):
    """flask-sse's own ``sse.publish`` into a room: same channel, same wire format."""
    from flask import Flask
    from flask_sse import sse

    base = stack.settings.gateway_url
    room = new_room("publisher")
    rooms_client = SseClient(stream_url(base, room, history=0))
    compat_client = SseClient(f"{base}/stream?channel={room}")
    publisher = Flask(__name__)
    publisher.config["REDIS_URL"] = stack.settings.redis_url
    try:
        with publisher.app_context():
            sse.publish({"note": "from flask-sse"}, type="announcement", channel=room)
        for client in (rooms_client, compat_client):
            assert client.wait_for(lambda c: any(e.event == "announcement" for e in c.received))
            event = next(e for e in client.received if e.event == "announcement")
            assert event.data == '{"note":"from flask-sse"}'
    finally:
        rooms_client.close()
        compat_client.close()


def test_a_reader_in_a_busy_room_stays_present(stack):
    """Presence is refreshed on the heartbeat's clock even when messages never let the
    stream fall quiet (the test stack's presence lasts 6 s unless refreshed)."""
    base = stack.settings.gateway_url
    room = new_room("busy")
    reader = SseClient(stream_url(base, room, user="reader", history=0))
    try:
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            assert post(base, room, user="chatter", text="busy").status_code == 201
            time.sleep(0.3)
        assert httpx.get(f"{base}/stream/rooms/{room}/presence").json() == {"users": ["reader"]}
    finally:
        reader.close()


def reset_then_messages(client):
    """The kinds of the events that carry data, in order: reset and message."""
    return [e.event for e in client.received if e.event in ("reset", "message") and e.data]


def test_a_resume_point_past_the_end_of_the_log_gets_a_reset_then_the_last_n_then_live_ones(stack):
    base = stack.settings.gateway_url
    room = new_room("beyond")
    ids = post_many(base, room, 5)
    client = SseClient(stream_url(base, room, history=3), headers={"Last-Event-ID": "9999999999999999999"})
    try:
        assert client.wait_messages(3)
        assert reset_then_messages(client) == ["reset", "message", "message", "message"]
        assert [m["id"] for m in client.messages()] == ids[-3:]
        live = post(base, room, text="live after the reset").json()
        assert client.wait_messages(4)
        assert client.messages()[-1] == live
    finally:
        client.close()


def expire_room(stack, room):
    """What ROOM_IDLE_TTL_S does to an idle room: its window, meta and deletes are gone (its
    offset index and deleted set stay)."""
    r = redis.Redis.from_url(stack.settings.redis_url)
    r.delete(f"chat:room:{room}:history", f"chat:room:{room}:meta", f"chat:room:{room}:deletes")


def test_a_room_whose_redis_window_expired_still_shows_its_last_n_from_the_log(stack):
    base = stack.settings.gateway_url
    room = new_room("idle")
    ids = post_many(base, room, 8)
    expire_room(stack, room)
    fresh = SseClient(stream_url(base, room, history=5))
    try:
        assert fresh.wait_messages(5)
        time.sleep(0.5)  # nothing more arrives: each message once
        assert [m["id"] for m in fresh.messages()] == ids[-5:]
        assert "reset" not in reset_then_messages(fresh)
        live = post(base, room, text="the room wakes up").json()
        assert fresh.wait_messages(6)
        assert fresh.messages()[-1] == live
    finally:
        fresh.close()


def test_a_resume_in_a_room_whose_redis_window_expired_gets_a_reset_then_the_last_n(stack):
    base = stack.settings.gateway_url
    room = new_room("idle-resume")
    ids = post_many(base, room, 8)
    expire_room(stack, room)
    client = SseClient(stream_url(base, room, history=4), headers={"Last-Event-ID": ids[2]})
    try:
        assert client.wait_messages(4)
        time.sleep(0.5)
        assert reset_then_messages(client) == ["reset"] + ["message"] * 4
        assert [m["id"] for m in client.messages()] == ids[-4:]
    finally:
        client.close()
