"""The gateway (local/templates/nginx.conf) as a hostile client meets it: every refusal is the
API's JSON error with the right status, never nginx's HTML page; a body trickled in is cut
off; one address cannot hold all of /api/ while others still post; and a sign-in header sent
by a client never reaches the services.

Most tests talk to the stack's own gateway. The sign-in and the service-down tests run a
second gateway, rendered by the same code (``Stack.prepare``) in front of services started
beside the stack's own."""

import contextlib
import socket
import subprocess
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from support import free_port, history, new_room, post, services_beside

from local.stack import Settings, Stack

OTHER_ADDRESS = "127.0.0.2"  # a second client address on the loopback network
SIGN_IN_HEADER = "X-Forwarded-User"
BODY_READ_TIMEOUT_S = 3  # the gateway's client_body_timeout (SECURITY.md)
BODY_DEADLINE_S = 10  # GATEWAY_BODY_DEADLINE_S: the whole /api/ request, from its first byte


def exchange(host, port, data, source="127.0.0.1", timeout=15.0):
    """Send ``data`` raw on a fresh connection; return everything the gateway answers
    before it closes the connection (or ``timeout`` passes)."""
    with socket.create_connection((host, port), timeout=timeout, source_address=(source, 0)) as sock:
        sock.sendall(data)
        answer = b""
        with contextlib.suppress(OSError):
            while chunk := sock.recv(65536):
                answer += chunk
                if b"\r\n\r\n" in answer and answer.rstrip().endswith(b"}}"):
                    break
    return answer


def parse(answer):
    """(status, headers as lower-case name -> value, body) of a raw HTTP answer."""
    head, _, body = answer.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {name.strip().lower(): value.strip() for name, _, value in (line.partition(":") for line in lines[1:])}
    return status, headers, body


def assert_json_error(answer, status, code):
    got, headers, body = parse(answer)
    assert got == status, answer[:300]
    assert headers["content-type"] == "application/json", headers
    assert b"<html" not in body.lower()
    assert httpx.Response(status, content=body).json()["error"]["code"] == code


HUGE_HEADERS = b"".join(b"X-Filler-%d: %s\r\n" % (i, b"a" * 7000) for i in range(8))


@pytest.mark.parametrize("prefix", ["/api/rooms/lobby/messages", "/stream/rooms/lobby"])
@pytest.mark.parametrize("request_bytes,status,code", [
    (b"GET {path}/a%00b HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", 400, "bad_request"),
    (b"GET {path} HTTP/1.1 trailing\r\nHost: 127.0.0.1\r\n\r\n", 400, "bad_request"),
    (b"GET {path}?" + b"q" * 20000 + b" HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", 414, "uri_too_long"),
    (b"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: " + b"a" * 10000 + b"\r\n\r\n", 431, "headers_too_large"),
    (b"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n" + HUGE_HEADERS + b"\r\n", 431, "headers_too_large"),
], ids=["nul-in-path", "bad-request-line", "huge-uri", "huge-header", "many-headers"])
def test_malformed_requests_are_refused_with_the_apis_json_error(stack, prefix, request_bytes, status, code):
    request = request_bytes.replace(b"{path}", prefix.encode())
    answer = exchange(stack.settings.host, stack.settings.gateway_port, request)
    assert_json_error(answer, status, code)


def test_a_body_over_the_limit_is_refused_with_a_json_413(stack):
    body = b'{"user": "ann", "text": "' + b"x" * (70 * 1024) + b'"}'
    request = (b"POST /api/rooms/%s/messages HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
               b"Content-Length: %d\r\n\r\n" % (new_room("big").encode(), len(body)))
    answer = exchange(stack.settings.host, stack.settings.gateway_port, request + body)
    assert_json_error(answer, 413, "payload_too_large")


def trickled_post(host, port, room, length=200, source="127.0.0.1"):
    """A POST whose headers are sent whole and whose body has not started yet."""
    sock = socket.create_connection((host, port), timeout=30, source_address=(source, 0))
    sock.sendall(b"POST /api/rooms/%s/messages HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                 b"Content-Length: %d\r\n\r\n" % (room.encode(), length))
    return sock


def test_a_body_trickled_one_byte_every_4_s_is_cut_off(stack):
    """client_body_timeout restarts at every read: a body must keep coming, at least one
    read every 3 s, or the connection is closed (with a JSON 408 at most)."""
    sock = trickled_post(stack.settings.host, stack.settings.gateway_port, new_room("trickle"))
    started = time.monotonic()
    answer, closed_after = b"", None
    with sock:
        for _ in range(10):  # would take 40 s if nothing cut it off
            try:
                sock.sendall(b"{")
            except OSError:
                closed_after = time.monotonic() - started
                break
            sock.settimeout(4)
            try:
                chunk = sock.recv(4096)
            except TimeoutError:
                continue
            answer += chunk
            closed_after = time.monotonic() - started
            break
    assert closed_after is not None, "the trickled body was never cut off"
    assert closed_after < BODY_READ_TIMEOUT_S + 2, closed_after
    if answer:
        assert_json_error(answer, 408, "request_timeout")


def test_a_body_that_keeps_trickling_is_answered_408_at_the_deadline(stack):
    """One byte a second never trips the per-read timeout, but the whole request must arrive
    within GATEWAY_BODY_DEADLINE_S of its first byte: then a JSON 408, and nothing posted."""
    room = new_room("slow-body")
    sock = trickled_post(stack.settings.host, stack.settings.gateway_port, room)
    started, answer = time.monotonic(), b""
    with sock:
        sock.settimeout(1)
        while time.monotonic() - started < BODY_DEADLINE_S + 5:
            with contextlib.suppress(OSError):
                sock.sendall(b" ")
            try:
                chunk = sock.recv(4096)
            except TimeoutError:
                continue
            answer += chunk
            if not chunk or answer.rstrip().endswith(b"}}"):
                break
    took = time.monotonic() - started
    assert BODY_DEADLINE_S - 1 < took < BODY_DEADLINE_S + 2, took
    assert_json_error(answer, 408, "request_timeout")
    assert history(stack.settings.gateway_url, room)["messages"] == []


def test_a_chunked_body_is_refused_411(stack):
    """The deadline needs a length: a chunked POST (no browser sends one) gets a JSON 411."""
    answer = exchange(stack.settings.host, stack.settings.gateway_port,
                      b"POST /api/rooms/%s/messages HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                      b"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
                      b"2\r\n{}\r\n0\r\n\r\n" % new_room("chunked").encode())
    assert_json_error(answer, 411, "length_required")


def test_one_address_cannot_hold_more_api_requests_than_the_cap_while_another_still_posts(stack):
    """GATEWAY_API_CONNECTIONS_PER_IP requests in progress from one address (slow bodies
    here); the next from it gets a JSON 429 with Retry-After, another address posts."""
    s = stack.settings
    cap, room = s.api_connections_per_ip, new_room("api-cap")
    held = [trickled_post(s.host, s.gateway_port, room) for _ in range(cap)]
    stop = threading.Event()

    def keep_trickling():  # one byte a second: well inside the 3 s between reads
        while not stop.wait(1):
            for sock in held:
                with contextlib.suppress(OSError):
                    sock.sendall(b" ")

    feeder = threading.Thread(target=keep_trickling, daemon=True)
    feeder.start()
    try:
        time.sleep(0.5)  # every held request is in progress at the gateway
        refused = exchange(s.host, s.gateway_port, b"POST /api/rooms/%s/messages HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                           b"Content-Type: application/json\r\nContent-Length: 2\r\n\r\n{}" % room.encode())
        assert_json_error(refused, 429, "too_many_connections")
        assert parse(refused)[1]["retry-after"].isdigit()

        with httpx.Client(transport=httpx.HTTPTransport(local_address=OTHER_ADDRESS), timeout=10) as other:
            response = other.post(f"{s.gateway_url}/api/rooms/{room}/messages",
                                  json={"user": "bea", "text": "still here"})
        assert response.status_code == 201, response.text
    finally:
        stop.set()
        feeder.join()
        for sock in held:
            sock.close()
    time.sleep(0.5)  # the gateway notices the closed connections
    assert post(s.gateway_url, room, user="ann", text="room again").status_code == 201


@contextlib.contextmanager
def gateway_beside(stack, run_dir: Path, ingest_url: str, stream_url: str, **service_env):
    """A second gateway, rendered as the stack's own, in front of the given ingest and
    stream; yields its base URL."""
    settings = Settings(
        gateway_port=free_port(),
        run_dir=run_dir,
        instance_ports={"ingest": [urlsplit(ingest_url).port], "stream": [urlsplit(stream_url).port],
                        "bridge": [free_port()]},
        external_kafka=stack.settings.kafka_bootstrap,
        external_redis=stack.settings.redis_url,
        service_env=service_env,
    )
    Stack(settings).prepare()  # with Kafka and Redis external: only the gateway's and supervisord's files
    with open(run_dir / "logs" / "nginx.log", "wb") as log:
        process = subprocess.Popen(["nginx", "-c", str(run_dir / "nginx" / "nginx.conf"), "-e", "stderr"],
                                   stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 10
        while True:
            with contextlib.suppress(OSError), socket.create_connection((settings.host, settings.gateway_port), 1):
                break
            assert time.monotonic() < deadline, "the second gateway did not start"
            time.sleep(0.1)
        yield settings.gateway_url
    finally:
        process.terminate()
        process.wait(10)


@pytest.fixture(scope="module")
def signed_in_gateway(stack, tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("signed-in-gateway")
    with (services_beside(stack, ("ingest", "stream"), run_dir, TRUSTED_USER_HEADER=SIGN_IN_HEADER,
                          MODERATORS="mod") as urls,
          gateway_beside(stack, run_dir, urls["ingest"], urls["stream"], TRUSTED_USER_HEADER=SIGN_IN_HEADER) as url):
        yield {"gateway": url, **urls}


@pytest.mark.parametrize("header", [SIGN_IN_HEADER, "x-forwarded-user", "X-Auth-Request-User", "X-Forwarded-Email"])
def test_a_client_cannot_sign_itself_in_through_the_gateway(signed_in_gateway, header):
    """With TRUSTED_USER_HEADER set on the services, a client's own sign-in header (in any
    case, or one of the other usual ones) is removed by the gateway: it signs nobody in."""
    room, body = new_room("forged"), {"user": "mallory", "text": "I am the moderator"}
    forged = {header: "mod"} if header.lower() == SIGN_IN_HEADER.lower() else {header: "mod", SIGN_IN_HEADER: "mod"}
    # The services trust the header: sent to ingest directly (as a sign-in proxy does), it names the user.
    direct = httpx.post(f"{signed_in_gateway['ingest']}/api/rooms/{room}/messages", json=body, headers=forged,
                        timeout=10)
    assert direct.status_code == 201 and direct.json()["user"] == "mod"
    # Through the gateway, nobody is signed in: no post, no stream.
    gateway = signed_in_gateway["gateway"]
    response = httpx.post(f"{gateway}/api/rooms/{room}/messages", json=body, headers=forged, timeout=10)
    assert (response.status_code, response.json()["error"]["code"]) == (401, "unauthenticated")
    with httpx.stream("GET", f"{gateway}/stream/rooms/{room}?history=0", headers=forged, timeout=10) as stream:
        assert stream.status_code == 401


def test_a_service_that_is_down_is_a_json_503_with_retry_after(stack, tmp_path):
    nobody = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    with gateway_beside(stack, tmp_path, nobody, nobody) as gateway:
        for method, path in (("POST", f"/api/rooms/{new_room()}/messages"), ("GET", f"/stream/rooms/{new_room()}")):
            response = httpx.request(method, gateway + path, json={"user": "ann", "text": "hello"}, timeout=10)
            assert response.status_code == 503, response.text
            assert response.json()["error"]["code"] == "unavailable"
            assert int(response.headers["retry-after"]) > 0
