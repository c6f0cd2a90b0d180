"""Helpers for tests that talk to a running stack through its gateway."""

import itertools
import json
import queue
import threading
import time
import uuid

import httpx
from httpx_sse import connect_sse

_rooms = itertools.count()


def new_room(prefix="room"):
    """A room name no other test uses."""
    return f"{prefix}-{uuid.uuid4().hex[:8]}-{next(_rooms)}"


def post(base_url, room, user="ann", text="hello", client_id=None, **kwargs):
    body = {"user": user, "text": text}
    if client_id is not None:
        body["client_id"] = client_id
    return httpx.post(f"{base_url}/api/rooms/{room}/messages", json=body, timeout=10, **kwargs)


class SseClient:
    """An EventSource-like reader in a thread: collects every event of one stream.

    Unlike a browser it does not reconnect by itself: tests reconnect explicitly, with
    ``last_event_id``, to control what they check."""

    def __init__(self, url, headers=None):
        self.url = url
        self.headers = headers or {}
        self.events = queue.Queue()
        self.received = []  # every event, in arrival order
        self.open = threading.Event()
        self.closed = threading.Event()
        self._client = httpx.Client(timeout=httpx.Timeout(5.0, read=60.0))
        self._response = None
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        if not self.open.wait(15):
            raise TimeoutError(f"SSE connection to {url} did not open")

    def _run(self):
        try:
            with connect_sse(self._client, "GET", self.url, headers=self.headers) as source:
                self._response = source.response
                self.status = source.response.status_code
                self.response_headers = source.response.headers
                self.open.set()
                for event in source.iter_sse():
                    self.received.append(event)
                    self.events.put(event)
        except (httpx.HTTPError, RuntimeError):
            pass
        finally:
            self.open.set()
            self.closed.set()

    def messages(self):
        """The chat messages received (a block with only ``retry:`` is not one)."""
        return [json.loads(e.data) for e in self.received if e.event == "message" and e.data]

    def wait_for(self, predicate, timeout=20):
        """Wait until ``predicate(self)`` is true; return whether it became true."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate(self):
                return True
            time.sleep(0.05)
        return predicate(self)

    def wait_messages(self, count, timeout=20):
        return self.wait_for(lambda c: len(c.messages()) >= count, timeout)

    def close(self):
        if self._response is not None:
            self._response.close()
        self._client.close()
        self.closed.wait(5)


def stream_url(base_url, room, **params):
    query = "&".join(f"{k}={v}" for k, v in params.items())
    return f"{base_url}/stream/rooms/{room}" + (f"?{query}" if query else "")
