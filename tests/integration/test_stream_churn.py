"""A stream's reader leaving is seen at once, not at the next heartbeat; one address opening
streams fast is refused past STREAM_OPENS_PER_IP, and one holding STREAM_CONNECTIONS_PER_IP
open is refused the next; the directory does not list the rooms of closed streams as occupied.

These run a stream service of their own beside the stack, with the default heartbeat and
presence TTL (15 s, 45 s: a leave the service did not see would last that long) and a
small STREAM_OPENS_PER_IP, reached directly: X-Forwarded-For gives each test its own
client address (the stack's stream counts 127.0.0.1 for every other test)."""

import concurrent.futures
import socket
import time
import uuid
from urllib.parse import urlsplit

import httpx
import pytest
import redis
from support import new_room, services_beside, session_headers, stream_url

from chat_common.messages import name_hold_key

OPENS = 50  # STREAM_OPENS_PER_IP of the service under test
OPEN_AT_ONCE = 20  # its STREAM_CONNECTIONS_PER_IP (above the 8 streams the churn test opens at once)
WINDOW_S = 600  # longer than the test takes on a busy machine (400 opens took over 60 s)
LEAVE_WITHIN_S = 2.0


@pytest.fixture(scope="module")
def beside(stack, tmp_path_factory):
    with services_beside(stack, ["stream"], tmp_path_factory.mktemp("churn"), STREAM_HEARTBEAT_S="15",
                         STREAM_PRESENCE_TTL_S="45", STREAM_OPENS_PER_IP=str(OPENS),
                         STREAM_OPENS_WINDOW_S=str(WINDOW_S),
                         STREAM_CONNECTIONS_PER_IP=str(OPEN_AT_ONCE)) as urls:
        yield urls["stream"]


def an_address():
    return f"2001:db8::{uuid.uuid4().hex[:4]}"


def users(base, room):
    response = httpx.get(f"{base}/stream/rooms/{room}/presence", timeout=10)
    assert response.status_code == 200
    return response.json()["users"]


def open_raw(base, path, headers):
    """A stream read on a plain socket up to its presence event; closing it sends the FIN at
    once (an HTTP client whose reading thread sits in recv() would hold it back)."""
    url = urlsplit(base)
    sock = socket.create_connection((url.hostname, url.port), timeout=10)
    lines = [f"GET {path} HTTP/1.1", f"Host: {url.netloc}"] + [f"{k}: {v}" for k, v in headers.items()]
    sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
    received = b""
    while b"event: presence" not in received:
        chunk = sock.recv(65536)
        assert chunk, received
        received += chunk
    assert received.startswith(b"HTTP/1.1 200"), received
    return sock


def test_a_closed_stream_leaves_presence_and_releases_its_name_within_2_s(stack, beside):
    r = redis.Redis.from_url(stack.settings.redis_url)
    room = new_room("leave")
    headers = {"X-Forwarded-For": an_address(), **session_headers(stack.settings.gateway_url)}
    reader = open_raw(beside, f"/stream/rooms/{room}?user=zoe&history=0", headers)
    assert users(beside, room) == ["zoe"] and r.zcard(name_hold_key(room, "zoe")) == 1

    reader.close()  # the tab closes
    closed_at = time.monotonic()
    while users(beside, room) or r.zcard(name_hold_key(room, "zoe")):
        assert time.monotonic() - closed_at < LEAVE_WITHIN_S, "still present after the stream closed"
        time.sleep(0.05)


def open_and_close(base, room, headers):
    """Open a stream, read its first bytes (it has joined the room), close it: (status,
    Retry-After, JSON error code)."""
    with httpx.stream("GET", stream_url(base, room, user="mal", history=0), headers=headers, timeout=10) as response:
        if response.status_code == 200:
            next(response.iter_bytes())
            return 200, None, None
        response.read()
        return response.status_code, response.headers.get("retry-after"), response.json()["error"]["code"]


def test_streams_opened_and_closed_fast_from_one_address_are_refused_past_the_limit(beside):
    headers = {"X-Forwarded-For": an_address()}
    rooms = [new_room("churn") for _ in range(400)]
    with concurrent.futures.ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(lambda room: open_and_close(beside, room, headers), rooms))
    opened = [room for room, (status, _, _) in zip(rooms, results, strict=True) if status == 200]
    assert len(opened) == OPENS
    refused = [result for result in results if result[0] != 200]
    assert {(status, code) for status, _, code in refused} == {(429, "too_many_streams")}
    assert all(0 < int(retry_after) <= WINDOW_S for _, retry_after, _ in refused)

    # Another address is not held back by this one.
    assert open_and_close(beside, new_room("churn"), {"X-Forwarded-For": an_address()})[0] == 200

    # The directory (recomputed every 2 s per worker) lists none of them as occupied.
    deadline = time.monotonic() + LEAVE_WITHIN_S + 2.5
    while True:
        response = httpx.get(f"{beside}/stream/rooms", timeout=10)
        occupied = {r["room"] for r in response.json()["rooms"] if r["people"]} & set(opened)
        if not occupied:
            break
        assert time.monotonic() < deadline, f"{len(occupied)} closed rooms still listed as occupied"
        time.sleep(0.1)


def test_one_address_holds_at_most_the_cap_of_open_streams_and_a_closed_one_frees_a_place(beside):
    """The service's own cap, whatever proxy is in front: the next stream gets a JSON 429
    while another address still connects; closing one lets the first address in again."""
    headers = {"X-Forwarded-For": an_address()}
    room = new_room("held")
    held = [open_raw(beside, f"/stream/rooms/{room}?history=0", headers) for _ in range(OPEN_AT_ONCE)]
    try:
        response = httpx.get(stream_url(beside, room, history=0), headers=headers, timeout=10)
        assert response.status_code == 429, response.text
        assert response.json()["error"]["code"] == "too_many_streams"
        assert int(response.headers["retry-after"]) > 0

        open_raw(beside, f"/stream/rooms/{room}?history=0", {"X-Forwarded-For": an_address()}).close()

        held.pop().close()
        closed_at = time.monotonic()
        while True:
            status = open_and_close(beside, room, headers)[0]
            if status == 200:
                break
            assert time.monotonic() - closed_at < LEAVE_WITHIN_S, "the closed stream's place was not given back"
            time.sleep(0.05)
    finally:
        for sock in held:
            sock.close()
