"""A reader that stops reading is cut off; the room goes on for everyone else.

The stream service keeps a bounded queue per connection (STREAM_CLIENT_QUEUE events).
A reader whose socket stops draining fills it and is disconnected; it would resume by id
if it came back. Meanwhile the other readers get every message, in order, and the
stream's memory does not grow with what the stuck reader did not take.
"""

import collections
import concurrent.futures
import socket
import threading
import time

import h11
import httpx
import psutil
from support import SseClient, new_room, report, stream_url

MESSAGES = 2500
TEXT = "x" * 3900  # about 10 MB in all: more than the sockets and the proxy between can hold


class Writers:
    """One HTTP client per posting thread: a client per post would build a TLS context each
    time (about 70 ms of CPU on a busy machine: minutes for the 2,500 posts)."""

    def __init__(self):
        self.local, self.clients = threading.local(), []

    def client(self):
        if not hasattr(self.local, "client"):
            self.local.client = httpx.Client(timeout=10)
            self.clients.append(self.local.client)
        return self.local.client

    def close(self):
        for client in self.clients:
            client.close()


def send(writers, base, room, i):
    """Post message ``i``, retried with its client_id as the page does (a busy machine may
    answer 503 now and then); return the last status."""
    body = {"user": f"writer{i % 10}", "text": f"{i} {TEXT}", "client_id": f"{room}-{i}"}
    for _ in range(10):
        status = writers.client().post(f"{base}/api/rooms/{room}/messages", json=body).status_code
        if status == 201:
            break
        time.sleep(0.5)
    return status


def read_until_the_response_ends(sock, head, timeout):
    """The body of the HTTP response on ``sock`` (``head``: what was already read of it),
    read until the response or the connection ends; AssertionError if neither happens
    within ``timeout`` seconds."""
    parser = h11.Connection(h11.CLIENT)
    parser.send(h11.Request(method="GET", target="/", headers=[("Host", "chat")]))  # what was sent
    parser.send(h11.EndOfMessage())
    parser.receive_data(head)
    body, deadline = b"", time.monotonic() + timeout
    sock.settimeout(timeout)
    while time.monotonic() < deadline:
        try:
            event = parser.next_event()
        except h11.RemoteProtocolError:  # the connection closed in the middle of the body
            return body
        if event is h11.NEED_DATA:
            parser.receive_data(sock.recv(1 << 16))  # b"": the connection closed
        elif isinstance(event, h11.Data):
            body += event.data
        elif isinstance(event, (h11.EndOfMessage, h11.ConnectionClosed)):
            return body
    raise AssertionError("the stuck reader's stream did not end")


def stream_rss(stack):
    master = psutil.Process(stack.pid("stream"))
    return sum(p.memory_info().rss for p in [master, *master.children(recursive=True)])


def test_a_reader_that_stops_reading_is_cut_off_and_the_others_get_everything(stack):
    base = stack.settings.gateway_url
    room = new_room("slow")
    readers = [SseClient(stream_url(base, room, history=0)) for _ in range(2)]
    stuck = socket.socket()
    stuck.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # a small window, never read
    stuck.connect((stack.settings.host, stack.settings.gateway_port))
    host = stack.settings.host  # an allowed Host (ALLOWED_HOSTS)
    stuck.sendall(f"GET /stream/rooms/{room}?history=0 HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
    head = b""
    while b"retry:" not in head:  # subscribed: the first event came
        head += stuck.recv(1024)
    assert head.startswith(b"HTTP/1.1 200")
    rss_before = stream_rss(stack)
    try:
        writers = Writers()
        with concurrent.futures.ThreadPoolExecutor(max_workers=8) as pool:
            statuses = list(pool.map(lambda i: send(writers, base, room, i), range(MESSAGES)))
        writers.close()
        assert statuses.count(201) == MESSAGES, collections.Counter(statuses)
        for reader in readers:
            assert reader.wait_messages(MESSAGES, timeout=120)
            ids = [int(m["id"]) for m in reader.messages()]
            assert len(ids) == MESSAGES and ids == sorted(set(ids))
        rss_growth = stream_rss(stack) - rss_before

        # The stuck reader: once it reads again, its stream ends (cut off) well short of
        # everything. What ends it depends on which side noticed first: the connection
        # closes (the stream service dropped it mid-response), or the response ends cleanly
        # and the gateway keeps the connection for another request. An EventSource
        # reconnects after either; nothing was buffered for it meanwhile.
        received = read_until_the_response_ends(stuck, head, timeout=30)
        assert received.count(b"event: message") < MESSAGES
    finally:
        stuck.close()
        for reader in readers:
            reader.close()
    report("slow-reader", {
        "messages": MESSAGES, "bytes_per_message": len(TEXT), "other_readers_lost": 0,
        "stuck_reader_got_before_cut_off": received.count(b"event: message"),
        "stream_rss_growth_mib": round(rss_growth / 2**20, 1),
    })
    # What the stuck reader did not take was not kept for it (about 10 MB were sent).
    assert rss_growth < 8 * 1024 * 1024, rss_growth
