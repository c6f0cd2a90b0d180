"""The public contract's refusals: the right status and JSON error, and nothing produced."""

import socket
import time

import httpx
import pytest
from support import RawFrames, new_room, post, services_beside, typing, wait_applied

JSON = {"Content-Type": "application/json"}


ROOM = "refusals"
BAD_POSTS = [
    # (what, room, headers, body, status, code)
    ("not JSON", ROOM, JSON, b"{user: ann", 400, "invalid_json"),
    ("invalid UTF-8", ROOM, JSON, b'{"user": "\xff", "text": "x"}', 400, "invalid_json"),
    ("a JSON array", ROOM, JSON, b'["ann", "hi"]', 422, "invalid_body"),
    ("form encoded", ROOM, {"Content-Type": "application/x-www-form-urlencoded"}, b"user=ann&text=hi", 415,
     "unsupported_media_type"),
    ("no content type", ROOM, {}, b'{"user": "ann", "text": "hi"}', 415, "unsupported_media_type"),
    ("over 16 KiB", ROOM, JSON, b'{"user": "ann", "text": "' + b"x" * 17000 + b'"}', 413, "payload_too_large"),
    ("user missing", ROOM, JSON, b'{"text": "hi"}', 422, "invalid_user"),
    ("user a number", ROOM, JSON, b'{"user": 7, "text": "hi"}', 422, "invalid_user"),
    ("user empty after trimming", ROOM, JSON, b'{"user": "   ", "text": "hi"}', 422, "invalid_user"),
    ("user too long", ROOM, JSON, b'{"user": "' + b"a" * 33 + b'", "text": "hi"}', 422, "invalid_user"),
    ("user with a newline", ROOM, JSON, b'{"user": "ann\\nevent: x", "text": "hi"}', 422, "invalid_user"),
    ("user with an RTL override", ROOM, JSON, b'{"user": "ann\\u202e", "text": "hi"}', 422, "invalid_user"),
    ("user a lone surrogate", ROOM, JSON, b'{"user": "\\ud800", "text": "hi"}', 422, "invalid_user"),
    ("text missing", ROOM, JSON, b'{"user": "ann"}', 422, "invalid_text"),
    ("text null", ROOM, JSON, b'{"user": "ann", "text": null}', 422, "invalid_text"),
    ("text blank", ROOM, JSON, b'{"user": "ann", "text": " \\n\\t "}', 422, "invalid_text"),
    ("text too long", ROOM, JSON, b'{"user": "ann", "text": "' + b"y" * 4001 + b'"}', 422, "text_too_long"),
    ("text with a NUL", ROOM, JSON, b'{"user": "ann", "text": "a\\u0000b"}', 422, "invalid_text"),
    ("text a lone surrogate", ROOM, JSON, b'{"user": "ann", "text": "\\udc00"}', 422, "invalid_text"),
    ("client_id with a newline", ROOM, JSON, b'{"user": "ann", "text": "hi", "client_id": "a\\nid: 9"}', 422,
     "invalid_client_id"),
    ("client_id a number", ROOM, JSON, b'{"user": "ann", "text": "hi", "client_id": 5}', 422, "invalid_client_id"),
    ("room with capitals", "Lobby", JSON, b'{"user": "ann", "text": "hi"}', 400, "invalid_room"),
    ("room too long", "r" * 65, JSON, b'{"user": "ann", "text": "hi"}', 400, "invalid_room"),
    ("room with a dot", "a.b", JSON, b'{"user": "ann", "text": "hi"}', 400, "invalid_room"),
    ("posted by another site's page", ROOM, {**JSON, "Origin": "https://evil.example"},
     b'{"user": "ann", "text": "hi"}', 403, "cross_origin"),
    ("a browser's cross-site request", ROOM, {**JSON, "Sec-Fetch-Site": "cross-site"},
     b'{"user": "ann", "text": "hi"}', 403, "cross_origin"),
    ("a DNS-rebinding page: a Host not allowed", ROOM, {**JSON, "Host": "evil.example", "Origin": "http://evil.example"},
     b'{"user": "ann", "text": "hi"}', 400, "host_not_allowed"),
    ("a page on another port of the same host", ROOM, {**JSON, "Origin": "http://127.0.0.1:9"},
     b'{"user": "ann", "text": "hi"}', 403, "cross_origin"),
    ("JSON nested 8,000 deep", ROOM, JSON, b"[" * 8000 + b"]" * 8000, 400, "invalid_json"),
    ("user only a Hangul filler", ROOM, JSON, b'{"user": "\\u3164", "text": "hi"}', 422, "invalid_user"),
    ("user only a blank braille pattern", ROOM, JSON, b'{"user": "\\u2800", "text": "hi"}', 422, "invalid_user"),
]


def test_a_post_from_the_sites_own_page_passes_the_origin_check(stack):
    base = stack.settings.gateway_url  # http://127.0.0.1:<port>: scheme, host and port as the page has them
    response = post(base, new_room("own-page"), headers={"Origin": base, "Sec-Fetch-Site": "same-origin"})
    assert response.status_code == 201, response.text


def test_a_delete_for_a_host_not_allowed_is_refused_before_anything_is_read(stack):
    response = httpx.delete(f"{stack.settings.gateway_url}/api/rooms/{ROOM}/messages/1",
                            headers={"Host": "evil.example"})
    assert response.status_code == 400 and response.json()["error"]["code"] == "host_not_allowed"
    # Probes and scrapers address a pod by its IP: the operational endpoints answer any Host.
    ingest = stack.settings.service_url("ingest")
    assert httpx.get(f"{ingest}/readyz", headers={"Host": "10.1.2.3:8001"}).status_code == 200


@pytest.mark.parametrize("what,room,headers,body,status,code", BAD_POSTS, ids=[case[0] for case in BAD_POSTS])
def test_bad_posts_are_refused_with_a_json_error_and_change_nothing(stack, end_offsets, what, room, headers, body,
                                                                     status, code):
    before = end_offsets()
    response = httpx.post(f"{stack.settings.gateway_url}/api/rooms/{room}/messages", content=body, headers=headers)
    assert response.status_code == status
    error = response.json()["error"]
    assert error["code"] == code
    assert isinstance(error["message"], str) and error["message"]
    assert end_offsets() == before


BAD_TYPING = [
    # (what, room, headers, body, status, code)
    ("not JSON", None, JSON, b"{user: ann", 400, "invalid_json"),
    ("a JSON array", None, JSON, b'["ann"]', 422, "invalid_body"),
    ("form encoded", None, {"Content-Type": "application/x-www-form-urlencoded"}, b"user=ann", 415,
     "unsupported_media_type"),
    ("over 16 KiB", None, JSON, b'{"user": "' + b"x" * 17000 + b'"}', 413, "payload_too_large"),
    ("user missing", None, JSON, b"{}", 422, "invalid_user"),
    ("user too long", None, JSON, b'{"user": "' + b"a" * 33 + b'"}', 422, "invalid_user"),
    ("user with a newline", None, JSON, b'{"user": "ann\\nevent: x"}', 422, "invalid_user"),
    ("room with capitals", "Lobby", JSON, b'{"user": "ann"}', 400, "invalid_room"),
    ("posted by another site's page", None, {**JSON, "Origin": "https://evil.example"}, b'{"user": "ann"}', 403,
     "cross_origin"),
]


@pytest.mark.parametrize("what,room,headers,body,status,code", BAD_TYPING, ids=[case[0] for case in BAD_TYPING])
def test_bad_typing_signals_are_refused_with_a_json_error_and_reach_nobody(stack, end_offsets, what, room, headers,
                                                                          body, status, code):
    base, watched = stack.settings.gateway_url, new_room("typing-refused")
    reader = RawFrames(f"{base}/stream/rooms/{watched}?history=0")
    try:
        before = end_offsets()
        response = httpx.post(f"{base}/api/rooms/{room or watched}/typing", content=body, headers=headers)
        assert response.status_code == status
        error = response.json()["error"]
        assert error["code"] == code and error["message"]
        assert end_offsets() == before
        # A valid signal after it: the room's channel keeps order, so once it arrives,
        # anything the refused request had published would have arrived before it.
        assert typing(base, watched, "barrier").status_code == 204
        assert reader.wait_for(lambda: reader.events("typing"))
        assert [e["data"] for e in reader.events("typing")] == ['{"user":"barrier"}']
    finally:
        reader.close()


def test_the_stored_message_is_trimmed_and_stamped_by_the_server(stack):
    response = post(stack.settings.gateway_url, new_room(), user="  ann  ", text="\n  hello  \r\n", client_id="c-1")
    assert response.status_code == 201
    message = response.json()
    assert set(message) == {"id", "room", "user", "text", "ts", "client_id"}
    assert (message["user"], message["text"], message["client_id"]) == ("ann", "hello", "c-1")
    assert message["id"].isdigit() and isinstance(message["ts"], int)


def test_a_retry_with_the_same_client_id_is_stored_once(stack):
    base = stack.settings.gateway_url
    room = new_room("retry")
    first = post(base, room, text="only once", client_id="retry-1").json()
    history = lambda: httpx.get(f"{base}/stream/rooms/{room}/history").json()["messages"]  # noqa: E731
    deadline = time.monotonic() + 10
    while not history() and time.monotonic() < deadline:
        time.sleep(0.1)
    again = post(base, room, text="only once", client_id="retry-1")
    assert again.status_code == 201
    assert again.json() == first  # the retry is answered with the message already stored
    assert [m["id"] for m in history()] == [first["id"]]


@pytest.mark.parametrize(
    "path",
    [
        "/stream/rooms/Bad/history",
        "/stream/rooms/ok/history?limit=5000",
        "/stream/rooms/ok/history?before=abc",
        "/stream/rooms/ok?history=-1",
        "/stream/rooms/ok?last_event_id=1%0Aevent:x",
        "/stream/rooms/ok?user=ann%0Aevent:%20x",
        "/stream?channel=no%20spaces",
    ],
)
def test_bad_stream_queries_get_400_json(stack, path):
    response = httpx.get(stack.settings.gateway_url + path, timeout=10)
    assert response.status_code == 400
    assert response.json()["error"]["code"].startswith("invalid_")


def test_unknown_paths_and_methods_get_json_errors(stack):
    base = stack.settings.gateway_url
    response = httpx.get(f"{base}/api/rooms/lobby/messages")
    assert response.status_code == 405 and response.json()["error"]["code"] == "method_not_allowed"
    response = httpx.get(f"{base}/api/nothing-here")
    assert response.status_code == 404 and response.json()["error"]["code"] == "not_found"


def test_a_sender_over_the_rate_limit_gets_429_with_retry_after_and_nothing_stored(stack, end_offsets, tmp_path):
    # An ingest of its own with a small limit and a long window: however slowly the machine
    # posts, the window still holds every post when the next one is refused.
    limit, window_s = 5, 600
    with services_beside(stack, ["ingest"], tmp_path, RATE_LIMIT_USER=str(limit),
                         RATE_LIMIT_WINDOW_S=str(window_s)) as urls:
        base, room = urls["ingest"], new_room("limited")
        statuses = [post(base, room, user="flooder", text=f"n{i}").status_code for i in range(limit)]
        assert statuses == [201] * limit
        before = end_offsets()
        response = post(base, room, user="flooder", text="one too many")
        assert response.status_code == 429
        assert response.json()["error"]["code"] == "rate_limited"
        assert 1 <= int(response.headers["Retry-After"]) <= window_s
        assert end_offsets() == before
        # another person in the same room is not affected
        assert post(base, room, user="bystander", text="hi").status_code == 201


def test_retries_answered_with_the_stored_message_do_not_count_against_the_rate_limit(stack, tmp_path):
    # A browser that lost a 201 retries with the same client_id; the answer comes from what
    # the bridge stored, in the same Redis call that would count the post (ingest/admission.py).
    limit, window_s = 2, 600
    with services_beside(stack, ["ingest"], tmp_path, RATE_LIMIT_USER=str(limit),
                         RATE_LIMIT_WINDOW_S=str(window_s)) as urls:
        base, room = urls["ingest"], new_room("retried")
        first = post(base, room, user="retrier", text="once", client_id="r-1").json()
        wait_applied(stack.settings.gateway_url, room, first["id"])
        for _ in range(3):
            again = post(base, room, user="retrier", text="once", client_id="r-1")
            assert again.status_code == 201 and again.json() == first
        assert post(base, room, user="retrier", text="second").status_code == 201  # the limit's second post
        assert post(base, room, user="retrier", text="third").status_code == 429


@pytest.mark.parametrize("path", ["/api/rooms/lobby/messages", "/stream/rooms/lobby/presence",
                                  "/stream/rooms/lobby/history"])
def test_api_answers_cannot_be_sniffed_framed_or_run(stack, path):
    response = httpx.request("POST" if path.startswith("/api") else "GET", stack.settings.gateway_url + path,
                             json={"user": "ann", "text": "headers"})
    assert response.headers["x-content-type-options"] == "nosniff"
    assert "frame-ancestors 'none'" in response.headers["content-security-policy"]
    assert "access-control-allow-origin" not in response.headers  # CORS stays closed


def test_a_client_that_sends_its_request_slowly_is_dropped_by_the_gateway(stack, end_offsets):
    """Slowloris: headers trickling in hold nothing open for long, and nothing is stored."""
    before = end_offsets()
    with socket.create_connection((stack.settings.host, stack.settings.gateway_port), timeout=30) as sock:
        sock.sendall(b"POST /api/rooms/slow/messages HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        started = time.monotonic()
        for _ in range(30):  # one more header line every second, never the blank line
            time.sleep(1)
            try:
                sock.sendall(b"X-Slow: 1\r\n")
            except OSError:
                break
        try:
            leftover = sock.recv(4096)
        except OSError:
            leftover = b""
        closed_after = time.monotonic() - started
    assert closed_after < 15, closed_after  # the gateway's 10 s header timeout, not the client's patience
    assert not leftover.startswith(b"HTTP/1.1 2")
    assert end_offsets() == before


def test_one_address_cannot_hold_more_streams_than_the_gateways_cap(stack):
    """Over GATEWAY_STREAM_CONNECTIONS_PER_IP open streams from one address, the next gets a
    JSON 429 with Retry-After; closing one makes room again."""
    cap, room = stack.settings.stream_connections_per_ip, new_room("cap")
    request = f"GET /stream/rooms/{room}?history=0 HTTP/1.1\r\nHost: {stack.settings.host}\r\n\r\n".encode()

    def open_stream():
        sock = socket.create_connection((stack.settings.host, stack.settings.gateway_port), timeout=10)
        sock.sendall(request)
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = sock.recv(4096)
            if not chunk:
                break
            head += chunk
        return sock, head

    streams, refused = [], None
    try:
        for _ in range(cap + 5):  # streams other tests left open count too: fewer may fit
            sock, head = open_stream()
            if head.startswith(b"HTTP/1.1 200"):
                streams.append(sock)
                continue
            refused = head
            while b"}}" not in refused:
                refused += sock.recv(4096)
            sock.close()
            break
        assert refused is not None, f"{len(streams)} streams open and none refused"
        assert 0 < len(streams) <= cap
        assert refused.startswith(b"HTTP/1.1 429")
        headers, body = refused.split(b"\r\n\r\n", 1)
        assert b"\r\nRetry-After: 10" in headers and b"application/json" in headers
        assert b'"code":"too_many_streams"' in body

        streams.pop().close()
        time.sleep(0.5)  # the gateway notices the closed connection
        sock, head = open_stream()
        streams.append(sock)
        assert head.startswith(b"HTTP/1.1 200"), head[:200]
    finally:
        for sock in streams:
            sock.close()


def test_a_stream_for_a_host_not_allowed_is_refused(stack):
    """A DNS-rebinding page (Host: its own name, resolving to this address) cannot read a
    room either: the stream's public routes check the Host as ingest's do."""
    base = stack.settings.gateway_url
    for path in (f"/stream/rooms/{ROOM}?history=0", f"/stream/rooms/{ROOM}/history", f"/stream/rooms/{ROOM}/presence",
                 "/stream/rooms"):
        response = httpx.get(f"{base}{path}", headers={"Host": "evil.example"}, timeout=10)
        assert response.status_code == 400, (path, response.status_code)
        assert response.json()["error"]["code"] == "host_not_allowed", path
    stream = stack.settings.service_url("stream")
    assert httpx.get(f"{stream}/readyz", headers={"Host": "10.1.2.3:8002"}).status_code == 200
