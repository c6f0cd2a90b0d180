"""Presence and held names when readers and posters meet different instances: the
chart's topology (``scaled_stack``: 2 ingest, 3 stream instances), each client sent to a
chosen instance, as the Service may send any two browsers of a room to two pods.
"""

import json

import httpx
from support import SseClient, new_room, post, stream_url


def presence_events(client):
    return [json.loads(e.data)["users"] for e in client.received if e.event == "presence"]


def join(base, room, user, session=None):
    """A reader of ``room`` on the stream instance at ``base``, shown as ``user``, with a
    browser session if given; returned once it has its first presence list."""
    headers = {"Cookie": f"chat_session={session}"} if session else None
    client = SseClient(stream_url(base, room, user=user, history=0), headers=headers)
    assert client.wait_for(lambda c: presence_events(c), 15), "no presence list on connect"
    return client


def new_session(gateway):
    response = httpx.post(f"{gateway}/api/session", headers={"Origin": gateway}, timeout=10)
    assert response.status_code == 204
    return response.cookies["chat_session"]


def test_a_person_on_one_stream_instance_is_listed_for_readers_on_the_others(scaled_stack):
    settings = scaled_stack.settings
    first, second, third = settings.service_urls("stream")
    room = new_room("presence")
    ann = join(first, room, "ann")
    try:
        bob = join(second, room, "bob")
        try:
            assert presence_events(bob)[0] == ["ann", "bob"]  # on connect: ann, on another instance
            assert ann.wait_for(lambda c: presence_events(c)[-1] == ["ann", "bob"], 15)  # live, the other way
            listed = httpx.get(f"{third}/stream/rooms/{room}/presence", timeout=10).json()["users"]
            assert listed == ["ann", "bob"]  # and from an instance neither is on
        finally:
            bob.close()
        assert ann.wait_for(lambda c: presence_events(c)[-1] == ["ann"], 15)  # bob left on his instance
    finally:
        ann.close()


def test_a_name_held_on_one_stream_instance_is_refused_on_every_ingest_instance(scaled_stack):
    settings = scaled_stack.settings
    gateway, (holder_stream, other_stream, _) = settings.gateway_url, settings.service_urls("stream")
    room = new_room("names")
    alice, mallory = new_session(gateway), new_session(gateway)
    holder = join(holder_stream, room, "Alice", alice)
    other = join(other_stream, room, "mallory", mallory)  # her own stream is on another instance
    try:
        for ingest in settings.service_urls("ingest"):
            refused = post(ingest, room, user="alice", text="as alice",
                           headers={"Cookie": f"chat_session={mallory}"})
            assert refused.status_code == 409, (ingest, refused.text)
            assert refused.json()["error"]["code"] == "name_taken"
        for ingest in settings.service_urls("ingest"):
            accepted = post(ingest, room, user="Alice", text=f"mine via {ingest}",
                            headers={"Cookie": f"chat_session={alice}"})
            assert accepted.status_code == 201, (ingest, accepted.text)
        assert other.wait_messages(2, timeout=15)
        assert [m["user"] for m in other.messages()] == ["Alice", "Alice"]  # the refusals stored nothing
    finally:
        holder.close()
        other.close()
