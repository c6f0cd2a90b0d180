"""Typing signals: straight to the room's readers, never stored, at most one per name every 2 s."""

import json

import httpx
from support import RawFrames, SseClient, new_room, post, stream_url, typing, wait_applied


def test_a_typing_signal_reaches_the_rooms_readers_without_an_id_and_is_never_stored(stack, end_offsets):
    base = stack.settings.gateway_url
    room, elsewhere = new_room("typing"), new_room("typing")
    stored = post(base, room, user="bob", text="before anyone typed").json()["id"]
    wait_applied(base, room, stored)
    reader, other_room = RawFrames(stream_url(base, room, history=0)), RawFrames(stream_url(base, elsewhere))
    flask_sse = SseClient(f"{base}/stream?channel={room}")
    try:
        before = end_offsets()
        response = typing(base, room, "  alice  ")
        assert response.status_code == 204 and response.content == b""
        assert reader.wait_for(lambda: reader.events("typing"))
        [event] = reader.events("typing")
        assert json.loads(event["data"]) == {"user": "alice"}  # the name as stored: trimmed
        assert "id" not in event  # ephemeral: it moves nobody's resume position
        assert flask_sse.wait_for(lambda c: [e.event for e in c.received if e.data] == ["typing"])
        assert end_offsets() == before  # nothing went to Kafka

        # Not in the room's history, nor replayed to a later reader.
        assert [m["id"] for m in httpx.get(f"{base}/stream/rooms/{room}/history").json()["messages"]] == [stored]
        later = SseClient(stream_url(base, room))
        try:
            assert later.wait_for(lambda c: any(e.event == "presence" for e in c.received))
            assert [m["id"] for m in later.messages()] == [stored]
            assert not [e for e in later.received if e.event == "typing"]
        finally:
            later.close()
        assert other_room.events("typing") == []
    finally:
        reader.close()
        other_room.close()
        flask_sse.close()


def test_one_signal_per_name_every_two_seconds_more_get_429_and_publish_nothing(stack, end_offsets):
    base = stack.settings.gateway_url
    room = new_room("typing")
    reader = RawFrames(stream_url(base, room, history=0))
    try:
        assert typing(base, room, "carol").status_code == 204
        before = end_offsets()
        again = typing(base, room, "CAROL")  # a name that looks alike is the same name
        assert again.status_code == 429
        assert again.json()["error"]["code"] == "rate_limited"
        assert 1 <= int(again.headers["Retry-After"]) <= 2
        assert end_offsets() == before
        # Another name in the room, and the same name in another room, are not held back.
        assert typing(base, room, "dave").status_code == 204
        assert typing(base, new_room("typing"), "carol").status_code == 204
        assert reader.wait_for(lambda: len(reader.events("typing")) == 2)
        assert [json.loads(e["data"])["user"] for e in reader.events("typing")] == ["carol", "dave"]
    finally:
        reader.close()


def test_a_name_held_by_a_present_session_cannot_be_used_to_signal_typing(stack, end_offsets):
    base, room = stack.settings.gateway_url, new_room("typing")
    session = httpx.post(f"{base}/api/session", headers={"Origin": base}, timeout=10).cookies["chat_session"]
    holder = SseClient(stream_url(base, room, user="erin", history=0), headers={"Cookie": f"chat_session={session}"})
    reader = RawFrames(stream_url(base, room, history=0))
    try:
        assert holder.wait_for(lambda c: any(e.event == "presence" for e in c.received))
        refused = typing(base, room, "Erin")
        assert refused.status_code == 409 and refused.json()["error"]["code"] == "name_taken"
        assert typing(base, room, "erin", headers={"Cookie": f"chat_session={session}"}).status_code == 204
        assert reader.wait_for(lambda: reader.events("typing"))
        assert [json.loads(e["data"]) for e in reader.events("typing")] == [{"user": "erin"}]
    finally:
        holder.close()
        reader.close()
