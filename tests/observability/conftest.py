"""One observed run of the real stack, shared by the observability tests.

The stack has the chart's topology (``scaled_stack``: 2 ingest, 3 bridge and 3 stream
instances, each scraped as a pod), so that every sum and per-pod breakdown of the
dashboard and the rules is evaluated over several pods per hop, as in a cluster. A real
Prometheus (the chart's alert rules loaded, the local job names) scrapes every instance
every second while traffic flows through the gateway in five phases: healthy; one bridge
of three stopped (one pod down, the hop still whole); Kafka stopped (POSTs answer 503) and
started again; every bridge stopped (the backlog is delivered late once they are back);
Redis stopped (it comes back empty and the bridges rebuild history); recovered. The tests
then read the dashboard's and the rules' expressions back through Prometheus's HTTP API.
The stack is left healthy for whatever runs after.
"""

import concurrent.futures
import itertools
import json
import shutil
import threading
import time
import uuid
from dataclasses import dataclass, field

import httpx
import pytest
from promsupport import (
    AFTER_BACKLOG_ALERTS,
    ARTIFACTS,
    BRIDGE_DOWN_ALERTS,
    JOBS,
    KAFKA_DOWN_ALERTS,
    ONE_BRIDGE_DOWN_ALERTS,
    REDIS_DOWN_ALERTS,
    Prometheus,
)
from support import SseClient, delete_message, new_room, post, session_headers, stream_url, typing

POST_INTERVAL_S = 0.08  # about 12 messages a second, spread over the rooms
POSTS_IN_FLIGHT = 24  # while Kafka is away each POST waits for the produce timeout
KAFKA_RECOVERY_S = 30  # Kafka answering again to POSTs accepted again
BRIDGE_DOWN_S = 10  # long enough for its backlog to be a fifth of the deliveries



@dataclass
class ObservedRun:
    prometheus: Prometheus
    stack: object
    start: float = 0.0
    end: float = 0.0
    phases: dict = field(default_factory=dict)  # name -> (start, end), epoch seconds
    alerts: dict = field(default_factory=dict)  # snapshot name -> {alertname: {states}}
    statuses: dict = field(default_factory=dict)  # HTTP status -> count, over the run
    acked: list = field(default_factory=list)  # (room, id) of every 201
    rooms: list = field(default_factory=list)
    ingest_recovered_alone: bool = True
    clients: list = field(default_factory=list)


class Poster:
    """Posts to the rooms in a loop from a few threads until stopped; counts the answers."""

    def __init__(self, base, rooms, run):
        self.base, self.rooms, self.run = base, rooms, run
        self.stopping = threading.Event()
        self.lock = threading.Lock()
        self.counter = itertools.count()
        self.in_flight = threading.BoundedSemaphore(POSTS_IN_FLIGHT)
        self.pool = concurrent.futures.ThreadPoolExecutor(max_workers=POSTS_IN_FLIGHT)
        self.thread = threading.Thread(target=self._loop, daemon=True)
        self.thread.start()

    def _one(self, n):
        room = self.rooms[n % len(self.rooms)]
        try:
            response = post(self.base, room, user=f"user{n % 4}", text=f"observed message {n}")
        except httpx.HTTPError:
            return
        finally:
            self.in_flight.release()
        with self.lock:
            self.run.statuses[response.status_code] = self.run.statuses.get(response.status_code, 0) + 1
            if response.status_code == 201:
                self.run.acked.append((room, response.json()["id"]))

    def _loop(self):
        while not self.stopping.is_set():
            if self.in_flight.acquire(blocking=False):  # no queue builds up while Kafka is away
                self.pool.submit(self._one, next(self.counter))
            self.stopping.wait(POST_INTERVAL_S)

    def stop(self):
        self.stopping.set()
        self.thread.join(5)
        self.pool.shutdown(wait=True)


def _side_traffic(base, run):
    """The requests that fill the other panels: refusals, a replayed retry, history pages,
    a resume by Last-Event-ID, a flask-sse connection."""
    room = run.rooms[0]
    for body in ({"user": "ann", "text": "   "}, {"user": "", "text": "hi"}, {"text": "no user"}):
        assert httpx.post(f"{base}/api/rooms/{room}/messages", json=body, timeout=10).status_code == 422
    client_id = uuid.uuid4().hex
    first = post(base, room, user="ann", text="sent twice", client_id=client_id)
    assert first.status_code == 201
    for _ in range(50):  # the bridge records the client_id; the retry is then answered from it
        retry = post(base, room, user="ann", text="sent twice", client_id=client_id)
        if retry.status_code == 201 and retry.json()["id"] == first.json()["id"]:
            break
        time.sleep(0.1)
    assert httpx.get(f"{base}/stream/rooms/{room}/history?limit=5", timeout=10).status_code == 200
    # A message taken back (twice: the repeat writes nothing), and someone typing.
    session = session_headers(base)
    mistake = post(base, room, user="cy", text="sent by mistake", headers=session).json()["id"]
    for _ in range(2):
        assert delete_message(base, room, mistake, session).status_code == 204
    assert typing(base, room, "cy").status_code == 204
    resumed = SseClient(stream_url(base, room, history=0), headers={"Last-Event-ID": first.json()["id"]})
    flask_sse = SseClient(f"{base}/stream?channel={room}")
    time.sleep(1)
    resumed.close()
    flask_sse.close()


def _wait_delivered(run, timeout=60):
    """Every acknowledged message reached every reader of its room."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        acked = {}
        for room, id in list(run.acked):
            acked.setdefault(room, set()).add(id)
        if all(acked.get(c.room, set()) <= {m["id"] for m in c.messages()} for c in run.clients):
            return True
        time.sleep(0.3)
    return False


def _wait_posts_succeed(base, room, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if post(base, room, user="probe", text="are you back").status_code == 201:
                return True
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    return False


def _write_summary(run):
    """test-artifacts/observability/run.json: what happened when, for a person reading the
PNG; the stack's logs of the run next to it."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    summary = {
        "seconds": round(run.end - run.start, 1),
        "phases": {name: [round(a - run.start, 1), round(b - run.start, 1)] for name, (a, b) in run.phases.items()},
        "statuses": run.statuses,
        "acknowledged": len(run.acked),
        "ingest_recovered_alone": run.ingest_recovered_alone,
        "alerts": {name: {alert: sorted(states) for alert, states in snap.items()}
                   for name, snap in run.alerts.items()},
    }
    (ARTIFACTS / "run.json").write_text(json.dumps(summary, indent=2) + "\n")
    logs = ARTIFACTS / "logs"
    shutil.rmtree(logs, ignore_errors=True)
    shutil.copytree(run.stack.run_dir / "logs", logs)


@pytest.fixture(scope="session")
def stack(scaled_stack):
    """Here, the stack with several instances per service (tests/conftest.py)."""
    return scaled_stack


@pytest.fixture(scope="session")
def prometheus(stack, tmp_path_factory):
    prom = Prometheus(stack.settings, tmp_path_factory.mktemp("prometheus"))
    try:
        prom.wait_ready()
        prom.wait_targets_up(JOBS + ("chatroom-kafka",))
        yield prom
    finally:
        prom.stop()


@pytest.fixture(scope="session")
def observed(stack, prometheus):
    base = stack.settings.gateway_url
    run = ObservedRun(prometheus=prometheus, stack=stack)
    run.rooms = [new_room("observed") for _ in range(3)]
    for room in run.rooms:
        for user in ("ann", "bob"):
            client = SseClient(stream_url(base, room, user=user, history=0), reconnect=True)
            client.room = room
            run.clients.append(client)

    def phase(name, started):
        run.phases[name] = (started, time.time())

    # Warm up (producer metadata, first fetches) so that the healthy phase is steady state.
    warmup = [(room, post(base, room, user="warmup", text="warm up").json()["id"]) for room in run.rooms]
    for client in run.clients:
        assert client.wait_for(lambda c: {i for r, i in warmup if r == c.room} <= {m["id"] for m in c.messages()})
    time.sleep(2)

    run.start = time.time()
    poster = Poster(base, run.rooms, run)
    try:
        # 1. healthy
        _side_traffic(base, run)
        time.sleep(8)
        run.alerts["healthy"] = prometheus.active_alerts()
        phase("healthy", run.start)

        # 2. one bridge of three stops: that pod is down, the hop is not; its partitions
        #    move to the other two once the group's session times out
        started = time.time()
        one_bridge = stack.settings.instances("bridge")[-1]
        stack.ctl("stop", one_bridge)
        run.alerts["one bridge down"] = prometheus.wait_alerts(ONE_BRIDGE_DOWN_ALERTS, timeout=20)
        stack.ctl("start", one_bridge)
        stack.wait_ready(60)
        phase("one bridge down", started)

        # 3. Kafka stops: POSTs answer 503 after the produce timeout
        started = time.time()
        stack.ctl("stop", "kafka")
        run.alerts["kafka down"] = prometheus.wait_alerts(KAFKA_DOWN_ALERTS, timeout=45)
        stack.ctl("start", "kafka")
        stack.create_topic(timeout=120)  # the broker answers again (its start-up takes long on a busy machine)
        # ingest should produce again by itself; if it does not, restart it as an operator
        # would, so that the rest of the run goes on (test_live reports it as a failure).
        run.ingest_recovered_alone = _wait_posts_succeed(base, run.rooms[0], timeout=KAFKA_RECOVERY_S)
        if not run.ingest_recovered_alone:
            stack.ctl("restart", *stack.settings.instances("ingest"))
            stack.wait_ready(60)
            assert _wait_posts_succeed(base, run.rooms[0], timeout=30), "ingest does not produce after a restart"
        phase("kafka down", started)

        # 4. every bridge stops; the backlog waits in Kafka, then arrives late
        started = time.time()
        bridges = stack.settings.instances("bridge")
        stack.ctl("stop", *bridges)
        run.alerts["bridge down"] = prometheus.wait_alerts(BRIDGE_DOWN_ALERTS, timeout=20)
        time.sleep(max(0.0, started + BRIDGE_DOWN_S - time.time()))
        stack.ctl("start", *bridges)
        stack.wait_ready(60)
        assert _wait_delivered(run), "the backlog did not reach the clients after the bridge came back"
        phase("bridge down", started)
        run.alerts["after backlog"] = prometheus.wait_alerts(AFTER_BACKLOG_ALERTS, timeout=20)

        # 5. Redis stops and comes back empty: the bridge retries, then rebuilds history
        started = time.time()
        stack.ctl("stop", "redis")
        run.alerts["redis down"] = prometheus.wait_alerts(REDIS_DOWN_ALERTS, timeout=20)
        stack.ctl("start", "redis")
        stack.wait_ready(60)
        assert _wait_delivered(run), "messages were lost across the Redis restart"
        phase("redis down", started)

        # 6. recovered
        started = time.time()
        time.sleep(6)
        phase("recovered", started)
    finally:
        poster.stop()
        stack.ctl("start", "all")  # a no-op for what runs
    stack.wait_ready(90)
    assert _wait_delivered(run), "messages acknowledged during the run did not all reach their rooms"
    time.sleep(2)  # a last scrape of the final counters
    run.end = time.time()
    _write_summary(run)
    yield run
    for client in run.clients:
        client.close()
