"""The benchmark harness, run tiny: the load generator's checks count what they should,
every system's adapter delivers through it (the project, the seed, Centrifugo, and the
fan-out stages alone), and a run's summary and plots get written. Behaviour only: no figure
here is a performance claim."""

import asyncio
import copy
import json
import os
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import redis

from bench import coldstart, report, run, scrollback
from bench.kit import cpu, loadgen, stacks
from bench.kit.fanout import bridge_publisher
from bench.kit.stacks import CentrifugoStack, SeedStack, wait_history_ready
from chat_common.messages import history_key, meta_key


def _frame_ours(sender, seq):
    data = {"id": "1", "room": "r", "user": "u", "text": f"S:{sender}:{seq}:{int(time.time() * 1e6)}",
            "ts": int(time.time() * 1000), "client_id": None}
    return f"event: message\nid: 1\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()


def _frame_seed(sender, seq):
    data = {"user": "u", "message": f"S:{sender}:{seq}:{int(time.time() * 1e6)}"}
    return f"event:message\ndata:{json.dumps(data)}\n\n".encode()


def _frame_centrifugo(sender, seq):
    data = {"room": "r", "user": "u", "text": f"S:{sender}:{seq}:{int(time.time() * 1e6)}",
            "ts": int(time.time() * 1000)}
    pub = {"channel": "r", "pub": {"data": data, "offset": seq + 1}}
    return f"data: {json.dumps(pub, separators=(',', ':'))}\n\n".encode()


# kind -> (frame, greeting written when a stream opens, status of an accepted post, its body)
FAKES = {
    "ours": (_frame_ours, b": connected\n\n", 201, b'{"id":"1"}'),
    "seed": (_frame_seed, b"", 200, b"OK"),
    "centrifugo": (_frame_centrifugo, b'data: {"connect":{}}\n\n', 200, b'{"result":{}}'),
}


class FakePipeline(ThreadingHTTPServer):
    """A system that misbehaves on cue: of one sender's messages 0..7 it refuses 7,
    delivers 0 1 3 once 3 is posted, then 2 2 5 once 5 is posted (4 and 6 never).
    ``chunked``: the stream in HTTP/1.1 chunks of 7 bytes, as a proxy may cut it (an event,
    even a chunk's size line, then spans several reads); otherwise HTTP/1.0, as is."""

    daemon_threads = True
    SCRIPT = {3: (0, 1, 3), 5: (2, 2, 5)}

    def __init__(self, kind, chunked=False):
        super().__init__(("127.0.0.1", 0), FakeHandler)
        self.frame, self.greeting, self.ok_status, self.ok_body = FAKES[kind]
        self.chunked = chunked
        self.stream = None
        self.stream_open = threading.Event()
        self.lock = threading.Lock()

    def send(self, data):
        if not self.chunked:
            self.stream.write(data)
        for start in range(0, len(data) if self.chunked else 0, 7):
            piece = data[start:start + 7]
            self.stream.write(b"%x\r" % len(piece))
            self.stream.flush()
            self.stream.write(b"\n" + piece + b"\r\n")
            self.stream.flush()
        self.stream.flush()


class FakeHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"  # the stream's end is the connection's end

    def log_message(self, *args):
        pass

    def do_GET(self):
        if self.server.chunked:
            self.protocol_version = "HTTP/1.1"
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        if self.server.chunked:
            self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        self.server.stream = self.wfile
        self.server.send(self.server.greeting)
        self.server.stream_open.set()
        while True:  # until the reader closes its connection
            if not self.rfile.read(1):
                return

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        text = body.get("text") or body.get("message") or body["data"]["text"]
        _, sender, seq, _ = text.split(":")
        sender, seq = int(sender), int(seq)
        assert self.server.stream_open.wait(10)
        with self.server.lock:
            for s in self.server.SCRIPT.get(seq, ()):
                self.server.send(self.server.frame(sender, s))
        status, answer = (self.server.ok_status, self.server.ok_body) if seq != 7 else (500, b"{}")
        self.send_response(status)
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)


@pytest.mark.parametrize("kind, chunked", [(kind, False) for kind in sorted(FAKES)]
                         + [("ours", True), ("centrifugo", True)])
def test_load_generator_counts_lost_duplicated_and_reordered_events(kind, chunked):
    server = FakePipeline(kind, chunked)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    target = loadgen.Target("fake", base, kind, publish_url=base, api_key="k")

    async def check():
        readers = loadgen.Readers(target, ["r"], 1)
        await readers.open()
        try:
            # One sender, eight messages: 0..6 acknowledged, 7 refused.
            return await loadgen.run_step(target, readers, rate=20, duration=0.4, sender_base=7,
                                          per_sender_rate=20, drain_timeout=10, stall_s=1)
        finally:
            await readers.close()

    try:
        step = asyncio.run(check())
    finally:
        server.shutdown()
        server.server_close()
    assert (step["sent"], step["acked"], step["post_errors"]) == (8, 7, 1)
    assert step["expected_deliveries"] == 7
    assert step["received"] == 6
    assert step["reordered"] == 1
    assert step["duplicates"] == 1
    assert step["lost"] == 2  # 4 and 6; 7 was refused, so not lost
    assert step["readers_dropped"] == 0
    assert len(step["latency_send_ms"]) == 6
    assert len(step["latency_ts_ms"]) == (0 if kind == "seed" else 6)


@pytest.fixture(scope="module")
def seed(stack, tmp_path_factory):
    s = SeedStack(tmp_path_factory.mktemp("seed"), stack.settings.kafka_bootstrap, stack.settings.redis_url,
                  nginx_connections=2048)
    s.start()
    yield s
    s.stop()


def _run(systems, params, idle):
    async def scenarios():
        results = {}
        for system in systems:
            results[system.name] = await run.delivery_scenarios(system, params, ["fanout", "capacity"], print)
            if system.name in idle:
                results[system.name]["idle"] = await run.idle_scenario(system, params, print)
        return results

    return asyncio.run(scenarios())


def _check_delivery(name, res, params):
    fan = res["fanout"]
    assert fan["post_errors"] == 0, name
    assert fan["acked"] > 0, name
    assert fan["received"] == fan["expected_deliveries"] == fan["acked"] * params["fanout"]["clients"] // 2, name
    assert (fan["lost"], fan["duplicates"], fan["reordered"]) == (0, 0, 0), name
    assert fan["latency_send"]["count"] == fan["received"], name
    assert fan["resources"]["groups"]["loadgen"]["cpu_seconds"] > 0, name
    assert res["capacity"]["steps"], name
    if "idle" in res:
        assert res["idle"]["connections"] == params["idle"]["connections"], name


def test_both_systems_deliver_through_the_harness(stack, seed, tmp_path):
    r = redis.Redis.from_url(stack.settings.redis_url)
    wait_history_ready(r, stack.settings.partitions, print, timeout=120)
    params = copy.deepcopy(run.PROFILES["smoke"])
    stream = stack.settings.service_url("stream")
    systems = [
        run.System("ours", loadgen.Target("ours", stack.settings.gateway_url, "ours"),
                   {name: stack.pid(name) for name in ("nginx", "ingest", "bridge", "stream")},
                   [stack.pid("stream")], r, "benchsmoke-o", stream),
        run.System("seed", loadgen.Target("seed", seed.gateway_url, "seed"), seed.groups(), seed.stream_pids(), r,
                   "benchsmoke-s", f"http://127.0.0.1:{seed.stream_port}"),
    ]
    results = _run(systems, params, idle=("ours", "seed"))
    for name, res in results.items():
        _check_delivery(name, res, params)
    assert results["ours"]["fanout"]["latency_ts"]["count"] == results["ours"]["fanout"]["received"]
    assert results["seed"]["fanout"]["latency_ts"] is None

    result = {"timestamp": "smoke", "profile": "smoke", "params": params, "machine": run.machine_description(),
              "results": results, "elapsed_s": 1.0}
    paths = report.write(result, tmp_path, latest=False)
    names = sorted(p.name for p in paths)
    assert names == ["smoke-capacity.png", "smoke-latency-cdf.png", "smoke-memory.png", "smoke.json", "smoke.md"]
    summary = (tmp_path / "smoke.md").read_text()
    assert "| ours |" in summary and "| seed |" in summary
    assert json.loads((tmp_path / "smoke.json").read_text())["results"]["ours"]["fanout"]["lost"] == 0


def test_the_brokers_side_of_the_path_counts_the_produces_it_answered(stack):
    """What path_cpu.py reports of the broker: its request counters move by the POSTs
    acknowledged (one produce request each at most), and a running broker's JIT compiler
    has used CPU."""
    wait_history_ready(redis.Redis.from_url(stack.settings.redis_url), stack.settings.partitions, print, timeout=120)
    target = loadgen.Target("ours", stack.settings.gateway_url, "ours")
    before = stacks.kafka_requests(stack.settings.kafka_metrics_port)
    posted = asyncio.run(loadgen.ingest_closed_loop(target, ["broker-count"], 2, 1.0))
    after = stacks.kafka_requests(stack.settings.kafka_metrics_port)
    assert posted["acked"] > 0
    assert 0 < after["Produce"] - before.get("Produce", 0) <= posted["acked"] + 50  # 50: produce requests retried
    assert cpu.jit_seconds(stack.pid("kafka")) > 0
    assert cpu.jit_seconds(os.getpid()) == 0  # no JVM here


def test_scrollback_pages_back_through_kafka_to_the_first_message(stack):
    """The scrollback scenario, tiny (its quiet room stays inside the Redis window here; paging
    into the log is tested in tests/integration): every page answers, a reader reaches the
    room's first message, and live readers in other rooms get everything once, in order."""
    r = redis.Redis.from_url(stack.settings.redis_url)
    wait_history_ready(r, stack.settings.partitions, print, timeout=120)
    params = copy.deepcopy(run.PROFILES["smoke"])
    system = run.System("ours", loadgen.Target("ours", stack.settings.gateway_url, "ours"),
                        {name: stack.pid(name) for name in ("nginx", "ingest", "bridge", "stream")},
                        [stack.pid("stream")], r, "benchsb", stack.settings.service_url("stream"),
                        {name: stack.settings.service_url(name) for name in ("ingest", "bridge", "stream")})
    try:
        res = asyncio.run(scrollback.scrollback_scenario(system, params, print, stack.settings.kafka_bootstrap,
                                                         "chat.messages", stack.settings.partitions))
    finally:
        loadgen.stop()
    assert res["applied"]
    assert res["page_errors"] == 0 and res["page_statuses"] == {}
    assert res["full_walks"] >= 1  # a reader reached the room's first message
    for live in (res["live_alone"], res["live_with_paging"]):
        assert live["acked"] > 0
        assert live["received"] == live["acked"] * params["scrollback"]["live_clients"]
        assert (live["lost"], live["duplicates"], live["reordered"]) == (0, 0, 0)
    assert "Scrollback" in "\n".join(scrollback.summary(res))


@pytest.fixture(scope="module")
def centrifugo(stack, tmp_path_factory):
    c = CentrifugoStack(tmp_path_factory.mktemp("centrifugo"), stack.settings.kafka_bootstrap,
                        stack.settings.redis_url, stack.settings.partitions, nginx_connections=2048)
    c.start()
    yield c
    c.stop()


@pytest.mark.timeout(1800)  # a first run builds Centrifugo into the per-user cache: minutes on two cores
def test_the_peer_and_the_fanout_stages_deliver_through_the_harness(stack, centrifugo, tmp_path):
    """Centrifugo's whole pipeline (a POST through its gateway -> Kafka -> its consumer ->
    every reader) and both fan-out stages (ours published into Redis as the bridge does;
    Centrifugo's publish API) deliver everything, and the summary compares them."""
    r = redis.Redis.from_url(stack.settings.redis_url)
    wait_history_ready(r, stack.settings.partitions, print, timeout=120)
    params = copy.deepcopy(run.PROFILES["smoke"])
    stream = stack.settings.service_url("stream")
    groups = centrifugo.groups()
    systems = [
        run.System("ours-fanout", loadgen.Target("ours-fanout", stack.settings.gateway_url, "ours-redis",
                                                 redis=bridge_publisher(stack.settings)),
                   {name: stack.pid(name) for name in ("nginx", "stream")}, [stack.pid("stream")], r,
                   "benchsmoke-r", stream),
        run.System("centrifugo", loadgen.Target("centrifugo", centrifugo.gateway_url, "centrifugo-kafka"), groups,
                   centrifugo.stream_pids(), r, "benchsmoke-c", centrifugo.api_url),
        run.System("centrifugo-fanout", loadgen.Target("centrifugo-fanout", centrifugo.gateway_url, "centrifugo",
                                                       publish_url=centrifugo.api_url, api_key=centrifugo.API_KEY),
                   groups, centrifugo.stream_pids(), r, "benchsmoke-d", centrifugo.api_url),
    ]
    results = _run(systems, params, idle=("centrifugo",))
    for name, res in results.items():
        _check_delivery(name, res, params)
        # Every event carries a ts: ingest's for Centrifugo's pipeline, the sender's otherwise.
        assert res["fanout"]["latency_ts"]["count"] == res["fanout"]["received"], name
    # The fan-out stage's rooms are bounded and expire as the bridge's: bytes counted, idle TTL set.
    rooms = {key.decode().split(":")[2] for key in r.scan_iter("chat:room:benchsmoke-r*:history")}
    assert rooms
    for room in rooms:
        assert 0 < r.ttl(history_key(room)) <= 21_600, room
        assert int(r.hget(meta_key(room), "bytes")) > 0, room

    result = {"timestamp": "peer", "profile": "smoke", "params": params, "machine": run.machine_description(),
              "results": results, "elapsed_s": 1.0}
    report.write(result, tmp_path, latest=False)
    summary = (tmp_path / "peer.md").read_text()
    assert "## Against Centrifugo" in summary
    assert "fan-out stage (publish -> every reader): capacity" in summary


def test_many_small_rooms_search_both_pipelines(stack, centrifugo, tmp_path):
    """Many rooms of two readers, ours and Centrifugo's whole pipelines: every step of the
    search delivers each acknowledged message to both readers of its room, once, in order,
    and the summary compares the two."""
    r = redis.Redis.from_url(stack.settings.redis_url)
    wait_history_ready(r, stack.settings.partitions, print, timeout=120)
    params = copy.deepcopy(run.PROFILES["smoke"])
    sr = params["small_rooms"]
    systems = [
        run.System("ours", loadgen.Target("ours", stack.settings.gateway_url, "ours"),
                   {name: stack.pid(name) for name in ("nginx", "ingest", "bridge", "stream")},
                   [stack.pid("stream")], r, "benchsmall-o", stack.settings.service_url("stream")),
        run.System("centrifugo", loadgen.Target("centrifugo", centrifugo.gateway_url, "centrifugo-kafka"),
                   centrifugo.groups(), centrifugo.stream_pids(), r, "benchsmall-c", centrifugo.api_url),
    ]

    async def scenarios():
        return {system.name: {"small_rooms": await run.small_rooms_scenario(system, params, print)}
                for system in systems}

    try:
        results = asyncio.run(scenarios())
    finally:
        loadgen.stop()
    for name, res in results.items():
        small = res["small_rooms"]
        assert small["steps"] and small["readers_failed"] == 0, name
        for step in small["steps"]:
            assert step["acked"] > 0 and step["post_errors"] == 0, name
            assert step["received"] == step["expected_deliveries"] == step["acked"] * sr["clients"] // sr["rooms"]
        assert (small["lost"], small["duplicates"], small["reordered"]) == (0, 0, 0), name

    result = {"timestamp": "small", "profile": "smoke", "params": params, "machine": run.machine_description(),
              "results": results, "elapsed_s": 1.0}
    report.write(result, tmp_path, latest=False)
    summary = (tmp_path / "small.md").read_text()
    assert "## Many small rooms" in summary
    assert "many small rooms (20 clients / 10 rooms): capacity" in summary


def test_cold_start_measures_the_first_seconds_after_every_readyz(stack, tmp_path):
    """The services restarted, readiness taken from their /readyz, then the load: each of the
    first seconds of sending has its deliveries and its latency, cold and warm, nothing lost.
    It restarts the session's services, which are ready again when it ends."""
    r = redis.Redis.from_url(stack.settings.redis_url)
    wait_history_ready(r, stack.settings.partitions, print, timeout=120)
    params = copy.deepcopy(run.PROFILES["smoke"])
    cs = params["coldstart"]
    before = {name: stack.pid(name) for name in coldstart.RESTARTED}
    try:
        res = asyncio.run(coldstart.coldstart_scenario(
            stack, loadgen.Target("ours", stack.settings.gateway_url, "ours"), params, print, "benchcold"))
    finally:
        loadgen.stop()
    assert all(stack.pid(name) != pid for name, pid in before.items())  # fresh instances
    assert set(res["ready_after_start_s"]) == set(coldstart.RESTARTED)
    assert res["ready_s"] == max(res["ready_after_start_s"].values()) > 0
    for phase in ("cold", "warm"):
        step = res[phase]
        assert step["acked"] > 0 and step["post_errors"] == 0, phase
        assert step["received"] == step["acked"] * cs["readers"] // cs["rooms"], phase
        assert (step["lost"], step["duplicates"], step["reordered"]) == (0, 0, 0), phase
        assert [row["second"] for row in step["by_second"]] == list(range(cs["seconds"]))
        assert 0 < sum(row["count"] for row in step["by_second"]) <= step["received"], phase
        assert all(row["count"] > 0 and row["p99_ms"] >= row["p50_ms"] > 0 for row in step["by_second"]), phase
    assert res["warm_p99_ms"] > 0 and res["first_p99_over_warm_p99"] > 0

    result = {"timestamp": "cold", "profile": "smoke", "params": params, "machine": run.machine_description(),
              "results": {"ours": {"coldstart": res}}, "elapsed_s": 1.0}
    report.write(result, tmp_path, latest=False)
    assert "## Cold start (ours)" in (tmp_path / "cold.md").read_text()
