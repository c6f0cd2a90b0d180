"""A stream's bytes as the stream service writes them, straight from it (no proxy between
to smooth them over). Past its opening the service writes its events itself, framed as the
HTTP response is (HTTP/1.1: chunks; HTTP/1.0: bare, until the connection closes): the
response stays well formed and each reader gets every message once, in order."""

import socket
from urllib.parse import urlsplit

import h11
import httpx
import pytest
from support import new_room, post

MESSAGES = 40


class RawReader:
    """One stream request on a plain socket, its response parsed by h11 (which raises on a
    malformed one)."""

    def __init__(self, stack, room, version):
        url = urlsplit(stack.settings.service_url("stream"))
        self.sock = socket.create_connection((url.hostname, url.port), timeout=30)
        host = f"{url.hostname}:{url.port}"  # an allowed Host (ALLOWED_HOSTS)
        self.sock.sendall(f"GET /stream/rooms/{room}?history=0 HTTP/{version}\r\nHost: {host}\r\n\r\n".encode())
        self.parser = h11.Connection(h11.CLIENT)  # h11 sends only HTTP/1.1: it is told of a request, not sending it
        self.parser.send(h11.Request(method="GET", target="/", headers=[("Host", host)]))
        self.parser.send(h11.EndOfMessage())
        self.response, self.body, self.blocks = None, b"", []

    def read_until(self, predicate):
        while not predicate(self):
            event = self.parser.next_event()
            if event is h11.NEED_DATA:
                data = self.sock.recv(65536)
                assert data, "the stream ended early"
                self.parser.receive_data(data)
            elif isinstance(event, h11.Response):
                self.response = event
            elif isinstance(event, h11.Data):
                self.body += event.data
                *blocks, self.body = self.body.split(b"\n\n")  # an incomplete event waits for the rest
                self.blocks += blocks
            else:
                raise AssertionError(f"unexpected {event!r}")

    def ids(self):
        ids = []
        for block in self.blocks:
            fields = dict(line.split(b": ", 1) for line in block.split(b"\n") if b": " in line)
            if fields.get(b"event") == b"message":
                ids.append(int(fields[b"id"]))
        return ids


@pytest.mark.parametrize("version", ["1.1", "1.0"])
def test_events_the_service_writes_itself_arrive_once_in_order_in_a_well_formed_response(stack, version):
    room = new_room("wire")
    readers = [RawReader(stack, room, version) for _ in range(3)]
    try:
        for reader in readers:  # subscribed once its opening came
            reader.read_until(lambda r: any(b"retry:" in block for block in r.blocks))
        acked = []
        for i in range(MESSAGES):
            answer = post(stack.settings.gateway_url, room, user="ann", text=f"m{i}")
            assert answer.status_code == 201
            acked.append(int(answer.json()["id"]))
        for reader in readers:
            reader.read_until(lambda r: len(r.ids()) >= MESSAGES)
            assert reader.response.status_code == 200
            headers = {name.lower(): value for name, value in reader.response.headers}
            assert headers[b"content-type"].startswith(b"text/event-stream")
            if version == "1.1":
                assert headers[b"transfer-encoding"] == b"chunked"
            assert reader.ids() == acked  # once each, in order
    finally:
        for reader in readers:
            reader.sock.close()


def test_a_head_on_a_stream_answers_its_headers_and_joins_no_one_to_the_room(stack):
    room = new_room("head")
    response = httpx.head(f"{stack.settings.service_url('stream')}/stream/rooms/{room}?user=ann", timeout=10)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    presence = httpx.get(f"{stack.settings.gateway_url}/stream/rooms/{room}/presence", timeout=10).json()
    assert presence == {"users": []}  # a HEAD is no reader: nobody shows in the room
