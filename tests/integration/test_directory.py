"""The room directory: rooms with people present or a message in the last day, busiest first."""

import concurrent.futures
import time

import httpx
from support import SseClient, new_room, post, stream_url


def directory(base):
    response = httpx.get(f"{base}/stream/rooms", timeout=10)
    assert response.status_code == 200
    return response.json()["rooms"]


def wait_listing(base, predicate, timeout=20):
    """The directory once ``predicate(rooms)`` holds (each stream worker recomputes it every 2 s)."""
    deadline = time.monotonic() + timeout
    while True:
        rooms = directory(base)
        if predicate(rooms) or time.monotonic() > deadline:
            return rooms
        time.sleep(0.2)


def entry(rooms, room):
    return next((r for r in rooms if r["room"] == room), None)


def test_rooms_with_people_come_first_and_rooms_with_a_recent_message_follow(stack):
    base = stack.settings.gateway_url
    quiet, busy = new_room("dir-quiet"), new_room("dir-busy")
    message = post(base, quiet, user="ann", text="anyone?").json()
    rooms = wait_listing(base, lambda rooms: entry(rooms, quiet))
    assert entry(rooms, quiet) == {"room": quiet, "people": 0, "last_ts": message["ts"]}
    assert entry(rooms, busy) is None

    # Two names present (one of them on two connections), no message yet.
    readers = [SseClient(stream_url(base, busy, user=user, history=0)) for user in ("bob", "cat", "bob")]
    try:
        rooms = wait_listing(base, lambda rooms: (entry(rooms, busy) or {}).get("people") == 2)
        assert entry(rooms, busy) == {"room": busy, "people": 2, "last_ts": None}
        names = [r["room"] for r in rooms]
        assert names.index(busy) < names.index(quiet)  # busiest first
        assert all(set(r) == {"room", "people", "last_ts"} for r in rooms)
    finally:
        for reader in readers:
            reader.close()
    # Everyone left and nothing was said: the room is no longer listed.
    rooms = wait_listing(base, lambda rooms: entry(rooms, busy) is None)
    assert entry(rooms, busy) is None and entry(rooms, quiet) is not None


def test_a_room_two_addresses_took_part_in_ranks_above_everything_one_address_made(stack):
    """One address makes more rooms than the directory lists, every one newer than a quiet
    room where two addresses took part (one posted, one opened a stream), and sits in one of
    them under three names: the quiet room is listed above all of them. Each service trusts
    one proxy in front, so the test names the client address in X-Forwarded-For when it calls
    ingest and stream directly."""
    base, settings = stack.settings.gateway_url, stack.settings
    pair = new_room("dir-pair")
    assert post(settings.service_url("ingest"), pair, user="eve", text="quiet here",
                headers={"X-Forwarded-For": "198.51.100.1"}).status_code == 201
    reader = SseClient(stream_url(settings.service_url("stream"), pair, history=0),
                       headers={"X-Forwarded-For": "198.51.100.2"})
    assert reader.status == 200
    reader.close()

    flood = [new_room("dir-flood") for _ in range(101)]  # all from the gateway's one address
    with concurrent.futures.ThreadPoolExecutor(max_workers=8) as pool:
        assert set(pool.map(lambda room: post(base, room, user="dan", text="hi").status_code, flood)) == {201}
    last = post(base, flood[0], user="dan", text="the newest message of all").json()
    # The same address also sits in one of its rooms under three names.
    crowd = [SseClient(stream_url(base, flood[1], user=user, history=0)) for user in ("ed", "flo", "gus")]
    quiet = lambda listed: [r for r in listed if r["people"] == 0]  # noqa: E731 (other tests' readers may linger)
    flooded = lambda listed: [r for r in quiet(listed) if r["room"] in flood]  # noqa: E731
    try:
        listed = wait_listing(base, lambda listed: flooded(listed) and flooded(listed)[0]["room"] == flood[0] and
                              flooded(listed)[0]["last_ts"] == last["ts"] and entry(listed, pair) and
                              (entry(listed, flood[1]) or {}).get("people") == 3)
    finally:
        for reader in crowd:
            reader.close()
    assert len(listed) == 100 and len(flooded(listed)) < len(flood)
    names = [r["room"] for r in listed]
    assert names.index(pair) < min(names.index(r["room"]) for r in [*flooded(listed), entry(listed, flood[1])])
    times = [r["last_ts"] for r in flooded(listed)]
    assert times == sorted(times, reverse=True)  # among one address's rooms: the newest first
