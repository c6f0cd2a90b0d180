"""Taking a message back: a tombstone in the room's log, and no read path shows the message again."""

import json
import time

import httpx
import pytest
from kafka import KafkaConsumer, TopicPartition
from support import (
    SseClient,
    delete_events,
    delete_message,
    history,
    new_room,
    post,
    session_headers,
    stream_url,
    wait_applied,
    whole_history,
)

from chat_common.messages import room_partition

HISTORY_MAX = 100  # the Redis window of the test stack (tests/support.py)


@pytest.fixture(scope="module")
def kafka(stack):
    consumer = KafkaConsumer(bootstrap_servers=stack.settings.kafka_bootstrap, enable_auto_commit=False)
    yield consumer
    consumer.close()


def end_offsets(kafka):
    partitions = [TopicPartition("chat.messages", p) for p in kafka.partitions_for_topic("chat.messages")]
    return kafka.end_offsets(partitions)


def record_at(kafka, room, offset):
    tp = TopicPartition("chat.messages", room_partition(room, len(kafka.partitions_for_topic("chat.messages"))))
    kafka.assign([tp])
    kafka.seek(tp, offset)
    while True:
        for record in kafka.poll(timeout_ms=5000, max_records=1).get(tp, []):
            return record


def test_the_sender_deletes_a_message_and_every_reader_is_told_once_by_a_tombstone(stack, kafka):
    base, room = stack.settings.gateway_url, new_room("delete")
    mine = session_headers(base)
    first = post(base, room, user="ann", text="oops, wrong room", headers=mine).json()
    second = post(base, room, user="ann", text="this one stays", headers=mine).json()
    wait_applied(base, room, second["id"])
    reader = SseClient(stream_url(base, room))
    flask_sse = SseClient(f"{base}/stream?channel={room}")
    try:
        assert reader.wait_messages(2)
        before = end_offsets(kafka)
        response = delete_message(base, room, first["id"], mine)
        assert response.status_code == 204 and response.content == b""

        # Kafka holds one more record: the tombstone, keyed by the room, after the message.
        after = end_offsets(kafka)
        [(tp, end)] = [(tp, end) for tp, end in after.items() if end != before[tp]]
        assert end == before[tp] + 1
        tombstone_id = str(end - 1)
        record = record_at(kafka, room, end - 1)
        assert record.key == room.encode() and json.loads(record.value)["delete"] == first["id"]
        assert int(tombstone_id) > int(second["id"])

        # Readers get event: delete with the tombstone's own id; flask-sse's endpoint too.
        assert reader.wait_for(lambda c: delete_events(c))
        assert delete_events(reader) == [(tombstone_id, {"id": first["id"]})]
        assert flask_sse.wait_for(lambda c: delete_events(c))
        assert delete_events(flask_sse) == [(tombstone_id, {"id": first["id"]})]

        # A repeat answers 204 and writes nothing.
        assert delete_message(base, room, first["id"], mine).status_code == 204
        assert end_offsets(kafka) == after
    finally:
        reader.close()
        flask_sse.close()

    # No read path returns it: history pages, a fresh connect, flask-sse's endpoint.
    assert [m["id"] for m in history(base, room)["messages"]] == [second["id"]]
    fresh = SseClient(stream_url(base, room))
    try:
        assert fresh.wait_for(lambda c: any(e.event == "presence" for e in c.received))
        assert [m["id"] for m in fresh.messages()] == [second["id"]]
        assert delete_events(fresh) == []
    finally:
        fresh.close()

    # A reader resuming from before the tombstone is told, in the log's order.
    for last_seen, expected in ((second["id"], []), (first["id"], [second["id"]])):
        resumed = SseClient(stream_url(base, room), headers={"Last-Event-ID": last_seen})
        try:
            assert resumed.wait_for(lambda c: any(e.event == "presence" for e in c.received))
            assert [m["id"] for m in resumed.messages()] == expected
            assert delete_events(resumed) == [(tombstone_id, {"id": first["id"]})]
            assert [e.event for e in resumed.received if e.event in ("message", "delete") and e.data][-1] == "delete"
        finally:
            resumed.close()
    # ... and a reader already past it is not told again.
    resumed = SseClient(stream_url(base, room), headers={"Last-Event-ID": tombstone_id})
    try:
        assert resumed.wait_for(lambda c: any(e.event == "presence" for e in c.received))
        assert resumed.messages() == [] and delete_events(resumed) == []
    finally:
        resumed.close()


def test_only_the_sending_session_may_delete_and_refusals_write_nothing(stack, kafka):
    base, room = stack.settings.gateway_url, new_room("delete")
    mine, theirs = session_headers(base), session_headers(base)
    message = post(base, room, user="ann", text="mine alone", headers=mine).json()
    cookieless = post(base, room, user="ann", text="sent without a session").json()
    partitions = len(kafka.partitions_for_topic("chat.messages"))
    neighbour = next(r for r in iter(lambda: new_room("delete"), None)
                     if room_partition(r, partitions) == room_partition(room, partitions))
    other_room = post(base, neighbour, user="ann", text="elsewhere", headers=mine).json()
    wait_applied(base, room, cookieless["id"])
    before = end_offsets(kafka)
    for headers, id, status, code in [
        (theirs, message["id"], 403, "forbidden"),  # another browser
        ({}, message["id"], 403, "forbidden"),  # no session at all
        ({"Cookie": "chat_session=forged.x.y"}, message["id"], 403, "forbidden"),
        (mine, cookieless["id"], 403, "forbidden"),  # sent without a session: nobody holds it
        (mine, str(int(cookieless["id"]) + 10**6), 404, "message_not_found"),
        (mine, other_room["id"], 404, "message_not_found"),  # another room's message, in the same partition
        (mine, "0" * 20, 400, "invalid_message_id"),
        ({**mine, "Origin": "https://evil.example"}, message["id"], 403, "cross_origin"),
    ]:
        response = delete_message(base, room, id, headers)
        assert (response.status_code, response.json()["error"]["code"]) == (status, code), (headers, id)
        assert response.json()["error"]["message"]
    response = delete_message(base, "Not-A-Room", message["id"], mine)
    assert (response.status_code, response.json()["error"]["code"]) == (400, "invalid_room")
    assert end_offsets(kafka) == before
    assert [m["text"] for m in history(base, room)["messages"]] == ["mine alone", "sent without a session"]


def test_kafka_scrollback_never_returns_a_deleted_message(stack):
    """Deleted both inside the Redis window and in the part only Kafka holds."""
    base, room = stack.settings.gateway_url, new_room("delete-deep")
    mine = session_headers(base)
    with httpx.Client(base_url=base, timeout=10, headers=mine) as client:
        ids = [client.post(f"/api/rooms/{room}/messages", json={"user": "ann", "text": f"m{i:03}"}).json()["id"]
               for i in range(HISTORY_MAX + 30)]
    wait_applied(base, room, ids[-1])
    deep, recent = ids[5], ids[-3]  # the first only in Kafka now, the second in the window
    for id in (deep, recent):
        assert delete_message(base, room, id, mine).status_code == 204
    expected = [id for id in ids if id not in (deep, recent)]
    deadline = time.monotonic() + 20
    while [m["id"] for m in history(base, room, limit=5)["messages"]] != expected[-5:]:
        assert time.monotonic() < deadline, "the bridge did not apply the tombstone"
        time.sleep(0.1)
    shown = whole_history(base, room)
    assert [m["id"] for m in shown] == expected
    assert {"m005", f"m{HISTORY_MAX + 27:03}"}.isdisjoint(m["text"] for m in shown)
