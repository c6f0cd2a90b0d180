"""Helpers for tests that talk to a running stack through its gateway."""

import contextlib
import itertools
import json
import os
import shlex
import signal
import socket
import subprocess
import threading
import time
import uuid
from pathlib import Path

import httpx
import redis
from httpx_sse import connect_sse


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class RedisServer:
    """A redis-server of a test's own on a free loopback port, without persistence (a restart
    brings it back empty), started and stopped at will."""

    def __init__(self, folder):
        self.port = free_port()
        self.command = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                        "--appendonly", "no", "--dir", str(folder)]
        self.process = None

    def start(self, timeout=10):
        """Until it answers a PING (a client of its own: a tested client's pool stays as it was)."""
        self.process = subprocess.Popen(self.command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while not self.answers():
            if time.monotonic() > deadline or self.process.poll() is not None:
                self.process.kill()
                raise RuntimeError(f"redis-server on port {self.port} did not start")
            time.sleep(0.05)

    def answers(self):
        probe = redis.Redis(port=self.port, single_connection_client=True)
        try:
            return bool(probe.ping())
        except redis.RedisError:
            return False
        finally:
            probe.close()

    def stop(self):
        if self.process is not None:
            self.process.terminate()
            self.process.wait(10)
            self.process = None

    def restart(self):
        self.stop()
        self.start()

    def pause(self):
        """Stopped, as a Redis stalled by the machine is: connections stay open, nothing answers."""
        self.process.send_signal(signal.SIGSTOP)

    def resume(self):
        self.process.send_signal(signal.SIGCONT)


# Settings that make the behaviour under test reachable in seconds rather than minutes.
TEST_SERVICE_ENV = {
    "HISTORY_MAX": "100",  # the Redis window per room: small, so tests can leave it
    "RATE_LIMIT_WINDOW_S": "60",  # long enough that the rate-limit test fills it even on a busy machine
    "RATE_LIMIT_USER": "300",  # tests that post a lot spread it over several user names
    "RATE_LIMIT_IP": "100000",  # every test client shares 127.0.0.1, and so do the per-address budgets:
    "RATE_LIMIT_IP_BYTES": "1000000000",
    "RATE_LIMIT_IP_TYPING": "100000",
    "RATE_LIMIT_IP_DELETES": "100000",
    "RATE_LIMIT_IP_ROOMS": "100000",  # every test makes its own rooms
    "PRIVATE_ROOM_MAX_MEMBERS": "3",  # test_private_rooms.py fills a room
    "RATE_LIMIT_IP_DAY": "100000000",
    "RATE_LIMIT_IP_BYTES_DAY": "100000000000",
    "STREAM_OPENS_PER_IP": "100000",  # the same; test_stream_churn.py runs its own stream with the limit
    "STREAM_CONNECTIONS_PER_IP": "0",  # the same; test_stream_churn.py runs its own stream with the cap
    "STREAM_HEARTBEAT_S": "2",
    "STREAM_PRESENCE_TTL_S": "6",  # presence must be refreshed several times within a test
    "STREAM_WORKERS": "2",
    "STREAM_SCROLLBACK_PAGE_MS": "60000",  # whole pages however slow the machine; the time budget has its own test
    "INGEST_PRODUCE_TIMEOUT_S": "3",
    "LOG_LEVEL": "INFO",
}


def start_service_beside(stack, name, run_dir, **env):
    """Run one more ``name`` service with the stack's own command and environment, on the
    stack's Kafka and Redis, changed by ``env``; return (process, its base URL). Its log
    goes to ``run_dir/<name>.log``; the caller terminates it."""
    port = free_port()
    metrics_dir = run_dir / f"{name}-metrics"
    metrics_dir.mkdir()
    environment = {
        **os.environ,
        **stack.service_environment(name),
        f"{name.upper()}_BIND": f"127.0.0.1:{port}",
        "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir),
        **env,
    }
    with open(run_dir / f"{name}.log", "wb") as log:
        process = subprocess.Popen(shlex.split(stack.service_command(name)), env=environment, stdout=log,
                                   stderr=subprocess.STDOUT)
    return process, f"http://127.0.0.1:{port}"


@contextlib.contextmanager
def services_beside(stack, names, run_dir, ready_within=60, **env):
    """``start_service_beside`` for each of ``names``, all with ``env``; yields {name: base
    URL} once every one is ready, and stops them afterwards."""
    processes, urls = [], {}
    try:
        for name in names:
            process, urls[name] = start_service_beside(stack, name, run_dir, **env)
            processes.append(process)
        wait_until_ready(urls.values(), ready_within)
        yield urls
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait(30)


def wait_until_ready(urls, timeout):
    """Wait until every service at ``urls`` (base URLs) answers /readyz with 200."""
    deadline = time.monotonic() + timeout
    for url in urls:
        while True:
            try:
                if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:  # probes need no sign-in
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, f"{url} not ready after {timeout} s"
            time.sleep(0.2)


RELIABILITY_REPORTS = Path(__file__).parents[1] / "test-artifacts" / "reliability"


def report(name, figures):
    """Keep the figures of a fault run in test-artifacts/reliability (docs/reliability.md
    quotes them)."""
    RELIABILITY_REPORTS.mkdir(parents=True, exist_ok=True)
    (RELIABILITY_REPORTS / f"{name}.json").write_text(json.dumps(figures, indent=2) + "\n")


def longest_pause(arrivals, since):
    """The longest wait between two consecutive messages (``arrivals``: their
    time.monotonic() arrival times), from the last one before ``since`` on: what a person in
    the room would notice of a fault that struck at ``since``."""
    start = max([i for i, at in enumerate(arrivals) if at <= since] or [0])
    return max((b - a for a, b in itertools.pairwise(arrivals[start:])), default=0.0)


def hub_refills(stack):
    """How often the stream workers' hubs re-offered rooms' windows since the service
    (re)started: after a restart, each one counts a room whose readers joined a worker
    before its pub/sub connection was up, the order of events in which a connection's
    writer must drop what the re-offered window repeats."""
    text = httpx.get(stack.settings.service_url("stream") + "/metrics", timeout=10).text
    return int(sum(float(line.split()[-1]) for line in text.splitlines()
                   if line.startswith("chat_stream_redis_reconnects_total")))


_rooms = itertools.count()


def new_room(prefix="room"):
    """A room name no other test uses."""
    return f"{prefix}-{uuid.uuid4().hex[:8]}-{next(_rooms)}"


def post(base_url, room, user="ann", text="hello", client_id=None, **kwargs):
    body = {"user": user, "text": text}
    if client_id is not None:
        body["client_id"] = client_id
    return httpx.post(f"{base_url}/api/rooms/{room}/messages", json=body, timeout=10, **kwargs)


def wait_applied(base_url, room, last_id, timeout=30):
    """Wait until the room's history ends with ``last_id``. A 201 means Kafka has the
    message; tests that compare a connect's history with what they posted wait for the
    bridge to have applied it too."""
    deadline = time.monotonic() + timeout
    while True:
        response = httpx.get(f"{base_url}/stream/rooms/{room}/history", params={"limit": 1}, timeout=10)
        if response.status_code == 200 and [m["id"] for m in response.json()["messages"]] == [last_id]:
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"{room}: message {last_id} not in the history after {timeout} s")
        time.sleep(0.05)


class SseClient:
    """An SSE reader in a thread: collects every event of one stream.

    With ``reconnect=True`` it behaves as a browser's EventSource: when the stream ends it
    reconnects (after a short pause) with the last id it saw as Last-Event-ID. Without,
    tests reconnect explicitly to control what they check."""

    def __init__(self, url, headers=None, reconnect=False):
        self.url = url
        self.headers = dict(headers or {})
        self.reconnect = reconnect
        self.received = []  # every event, in arrival order
        self.arrived = []  # time.monotonic() of each event in received
        self.connects = 0
        self.open = threading.Event()
        self.closed = threading.Event()
        self._stopping = False
        self._client = httpx.Client(timeout=httpx.Timeout(5.0, read=60.0))
        self._response = None
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        if not self.open.wait(15):
            raise TimeoutError(f"SSE connection to {url} did not open")

    def _run(self):
        try:
            while not self._stopping:
                self._read_once()
                if not self.reconnect:
                    break
                time.sleep(0.5)
        finally:
            self.open.set()
            self.closed.set()

    def _read_once(self):
        last_id = next((e.id for e in reversed(self.received) if e.id), None)
        headers = {**self.headers, **({"Last-Event-ID": last_id} if last_id else {})}
        try:
            with connect_sse(self._client, "GET", self.url, headers=headers) as source:
                self._response = source.response
                self.status = source.response.status_code
                self.response_headers = source.response.headers
                self.connects += 1
                if self.status == 200 or not self.reconnect:
                    self.open.set()  # a reconnecting reader counts as open once it is subscribed
                if self.status != 200:
                    return
                for event in source.iter_sse():
                    self.arrived.append(time.monotonic())
                    self.received.append(event)
        except (httpx.HTTPError, RuntimeError):
            pass

    def arrival_of(self, **fields):
        """When the first message with these field values arrived (time.monotonic()), or None."""
        for event, at in zip(self.received, self.arrived, strict=False):
            if event.event == "message" and event.data:
                message = json.loads(event.data)
                if all(message.get(name) == value for name, value in fields.items()):
                    return at
        return None

    def messages(self):
        """The chat messages received (a block with only ``retry:`` is not one)."""
        return [json.loads(e.data) for e in self.received if e.event == "message" and e.data]

    def message_arrivals(self):
        """When each of those messages arrived (time.monotonic())."""
        return [at for e, at in zip(self.received, self.arrived, strict=False) if e.event == "message" and e.data]

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
        self._stopping = True
        if self._response is not None:
            self._response.close()
        self._client.close()
        self.closed.wait(5)


def stream_url(base_url, room, **params):
    query = "&".join(f"{k}={v}" for k, v in params.items())
    return f"{base_url}/stream/rooms/{room}" + (f"?{query}" if query else "")


def typing(base, room, user, **kwargs):
    return httpx.post(f"{base}/api/rooms/{room}/typing", json={"user": user}, timeout=10, **kwargs)


class RawFrames:
    """The stream's frames as the server wrote them (an SSE parser would carry the last id
    over to events that have none, hiding what is on the wire)."""

    def __init__(self, url):
        self.url = url
        self.frames = []
        self._client = httpx.Client(timeout=httpx.Timeout(5.0, read=60.0))
        self._open = threading.Event()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()
        assert self._open.wait(15), f"{url} did not open"

    def _read(self):
        try:
            with self._client.stream("GET", self.url) as response:
                self._open.set()
                block = []
                for line in response.iter_lines():
                    if line:
                        block.append(line)
                    elif block:
                        self.frames.append(block)
                        block = []
        except httpx.HTTPError:
            pass
        finally:
            self._open.set()

    def events(self, name):
        """The frames of event type ``name``, each as {field: value}."""
        found = []
        for block in self.frames:
            fields = dict(line.split(": ", 1) for line in block if not line.startswith(":") and ": " in line)
            if fields.get("event") == name:
                found.append(fields)
        return found

    def wait_for(self, predicate, timeout=20):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not predicate():
            time.sleep(0.05)
        return predicate()

    def close(self):
        self._client.close()


def session_headers(base_url):
    """A browser session's cookie (POST /api/session), as request headers."""
    response = httpx.post(f"{base_url}/api/session", headers={"Origin": base_url}, timeout=10)
    assert response.status_code == 204
    return {"Cookie": f"chat_session={response.cookies['chat_session']}"}


def delete_message(base_url, room, id, headers=None):
    return httpx.delete(f"{base_url}/api/rooms/{room}/messages/{id}", headers=headers or {}, timeout=10)


def history(base_url, room, **params):
    response = httpx.get(f"{base_url}/stream/rooms/{room}/history", params=params, timeout=20)
    assert response.status_code == 200
    return response.json()


def whole_history(base_url, room):
    """Every message the room holds, paging back into Kafka."""
    messages, before = [], None
    while True:
        page = history(base_url, room, limit=40, **({"before": before} if before else {}))
        messages = page["messages"] + messages
        if not page["more"] or not page["messages"]:
            return messages
        before = page["messages"][0]["id"]


def delete_events(client):
    """The delete events an SseClient received, as (id, data)."""
    return [(e.id, json.loads(e.data)) for e in client.received if e.event == "delete"]


@contextlib.contextmanager
def redis_cluster(folder, masters=3):
    """A Redis Cluster alone (no Kafka, no services) on free loopback ports, as the local
    stack's STACK_REDIS=cluster:<masters> runs it: yields the nodes' ports, primaries first."""
    from local.redis_cluster import form, node_command

    ports = [free_port() for _ in range(2 * masters)]
    processes = []
    try:
        for n, port in enumerate(ports, 1):
            node = Path(folder) / f"redis-{n}"
            node.mkdir(parents=True)
            processes.append(subprocess.Popen(shlex.split(node_command("127.0.0.1", port, free_port(), node, "256mb")),
                                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))

        def check_alive():
            dead = [p.args for p in processes if p.poll() is not None]
            if dead:
                raise RuntimeError(f"redis nodes exited: {dead}")

        form("127.0.0.1", ports, check_alive)
        yield ports
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait(10)


def cluster_settings(run_dir, masters=3, **fields):
    """The stack's settings with Redis Cluster (STACK_REDIS=cluster:<masters>) on free ports."""
    from local.stack import Settings

    return Settings(redis_port=free_port(), redis_masters=masters,
                    redis_node_ports=[free_port() for _ in range(2 * masters)],
                    redis_bus_ports=[free_port() for _ in range(2 * masters)], run_dir=run_dir, **fields)
