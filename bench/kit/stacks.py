"""The systems under test, started and stopped: the project's local stack, the seed design and
Centrifugo on one Kafka broker and one Redis server, and the stream service alone.

``OursStack`` is the local stack (local/stack.py) on free ports, with its gateway allowed
more connections than the default (the idle scenario holds 10,000 streams, each two nginx
connections); ``ours(run_dir)`` starts it, waits until the bridge holds every partition and
stops it (and the load generator) at the end. ``SeedStack`` runs the seed design
(bench/baselines/seed/) on the same Kafka and Redis, with the same worker counts and an nginx
gateway with the same settings; ``CentrifugoStack`` the peer (bench/baselines/centrifugo/),
likewise. ``StreamAlone`` is Redis and the stream service's gunicorn, nothing else.
"""

import contextlib
import datetime
import json
import os
import resource
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from string import Template
from typing import IO, Any

import redis
from prometheus_client.parser import text_string_to_metric_families

from bench.kit import loadgen
from bench.kit.ports import free_port, listening, wait_port
from bench.kit.tools import tool
from chat_common.messages import STATE_KEY  # the bridge marks each partition it holds ready:<partition> there
from local.kafka_node import create_topic
from local.stack import Settings, Stack

ROOT = Path(__file__).resolve().parents[2]
SEED_DIR = ROOT / "bench" / "baselines" / "seed"
CENTRIFUGO_DIR = ROOT / "bench" / "baselines" / "centrifugo"
VENV_BIN = Path(sys.executable).parent
STACK_PROGRAMS = ("nginx", "ingest", "kafka", "bridge", "redis", "stream")

Log = Callable[[str], None]


def raise_fd_limit() -> tuple[int, int]:
    """Soft limit up to the hard one, for the harness and every process it starts."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or hard > 1_000_000:
        hard = 1_000_000
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))
    return resource.getrlimit(resource.RLIMIT_NOFILE)


def nginx_connections(fd_soft: int) -> int:
    """A gateway's ``worker_connections``: nginx holds two descriptors per proxied stream,
    within the same per-process limit."""
    return max(8192, min(40000, fd_soft - 1000))


def run_dir(name: str) -> Path:
    """A new run directory of a driver: ``.run/<name>/<UTC timestamp>``."""
    return ROOT / ".run" / name / datetime.datetime.now(datetime.UTC).strftime("%Y%m%dT%H%M%SZ")


def parse_env(assignments: Sequence[str]) -> dict[str, str]:
    """``NAME=VALUE`` items (a driver's ``--env``) as a mapping."""
    return dict(item.split("=", 1) for item in assignments)


def bench_service_env() -> dict[str, str]:
    """Production settings, except the per-user and per-address limits: every benchmark
    client posts (and pages back) from 127.0.0.1, and the seed has no limits either."""
    unlimited = "1000000000000"
    return {name: unlimited for name in (
        "RATE_LIMIT_USER", "RATE_LIMIT_IP", "RATE_LIMIT_IP_BYTES", "RATE_LIMIT_IP_TYPING", "RATE_LIMIT_IP_DELETES",
        "RATE_LIMIT_IP_ROOMS", "RATE_LIMIT_IP_DAY", "RATE_LIMIT_IP_BYTES_DAY", "STREAM_OPENS_PER_IP",
        "STREAM_CONNECTIONS_PER_IP", "STREAM_SCROLLBACK_CLIENT_RECORDS")}


class OursStack(Stack):
    def __init__(self, run_dir: Path, nginx_connections: int = 40000, env: Mapping[str, str] | None = None,
                 kafka_metrics: bool = False):
        """``kafka_metrics``: the broker serves its metrics (the chart's JMX exporter agent) on
        ``settings.kafka_metrics_port`` (read by ``kafka_requests``)."""
        settings = Settings(
            gateway_port=free_port(), ingest_port=free_port(), stream_port=free_port(), bridge_port=free_port(),
            kafka_port=free_port(), kafka_controller_port=free_port(), redis_port=free_port(),
            kafka_metrics_port=free_port() if kafka_metrics else 0,
            run_dir=Path(run_dir), service_env={**bench_service_env(), **(env or {})},
            stream_connections_per_ip=0,  # every benchmark client connects from 127.0.0.1
            api_connections_per_ip=0,
        )
        super().__init__(settings, supervisor_log=str(Path(run_dir) / "supervisord.log"))
        self.nginx_connections = nginx_connections
        self._pids: dict[str, int] = {}

    def prepare(self) -> None:
        super().prepare()
        conf = self.run_dir / "nginx" / "nginx.conf"
        text = conf.read_text()
        text = text.replace("worker_connections 8192;", f"worker_connections {self.nginx_connections};")
        text = text.replace("worker_processes 1;",
                            f"worker_processes 1;\nworker_rlimit_nofile {self.nginx_connections + 1000};")
        conf.write_text(text)

    def groups(self) -> dict[str, int]:
        """Program name -> root pid (gunicorn masters, the nginx master, java, redis-server)."""
        if not self._pids:
            self._pids = {name: self.pid(name) for name in STACK_PROGRAMS}
        return dict(self._pids)

    def stream_pids(self) -> list[int]:
        return [self.groups()["stream"]]

    def redis(self) -> redis.Redis:
        return redis.Redis.from_url(self.settings.redis_url)

    def wait_partitions(self, log: Log = print) -> None:
        """Until the bridge holds every partition. Seen once: the bridge joined its group
        before the topic existed and was left with no partitions after the next rebalance;
        a restart gets them."""
        r = self.redis()
        try:
            wait_history_ready(r, self.settings.partitions, log, timeout=60)
        except TimeoutError:
            log("the bridge holds no partitions after 60 s: restarting it")
            self.ctl("restart", "bridge")
            wait_history_ready(r, self.settings.partitions, log, timeout=120)


def kafka_requests(metrics_port: int) -> dict[str, float]:
    """Requests a broker answered so far, by type (``Produce``, ``FetchConsumer``, ...), from
    its metrics on ``metrics_port`` (the chart's JMX exporter rules: a stack started with
    ``kafka_metrics``)."""
    with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5) as response:
        text = response.read().decode()
    counts: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        if family.name.startswith("kafka_network_requestmetrics_requests"):  # with or without _total
            for sample in family.samples:
                if sample.name.endswith("_total"):
                    request = sample.labels["request"]
                    counts[request] = counts.get(request, 0.0) + sample.value  # every version together
    return counts


def wait_history_ready(r: redis.Redis, partitions: int, log: Log = print, timeout: float = 240) -> None:
    """Until the bridge holds every partition (its consumer group formed, the history
    marked ready in Redis), the stream service answers 503 to a new stream."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        flags = r.hmget(STATE_KEY, [f"ready:{p}" for p in range(partitions)])
        if all(flags):
            log(f"bridge assigned and history ready after {time.monotonic() - started:.0f} s")
            return
        time.sleep(0.5)
    raise TimeoutError("the bridge did not take its partitions in time")


@contextlib.contextmanager
def ours(run_dir: Path, nginx_connections: int = 8192, env: Mapping[str, str] | None = None,
         log: Log = print, kafka_metrics: bool = False) -> Iterator[OursStack]:
    """The project's stack, started with every partition held by the bridge; the stack and
    the load generator stopped at the end."""
    stack = OursStack(run_dir, nginx_connections=nginx_connections, env=env, kafka_metrics=kafka_metrics)
    stack.start(timeout=240)
    try:
        stack.wait_partitions(log)
        yield stack
    finally:
        loadgen.stop()
        stack.stop()


class Processes:
    """Programs of a stack of our own making, each in its own session (so a stop reaches its
    children), logging to ``<run_dir>/<name>.log``; ``PROGRAMS`` in start order."""

    PROGRAMS: tuple[str, ...] = ()
    STREAM: str = ""  # the program that holds the streams

    def __init__(self, run_dir: Path):
        self.run_dir = Path(run_dir)
        self.processes: dict[str, subprocess.Popen[bytes]] = {}

    def spawn(self, name: str, args: Sequence[str], cwd: Path, env: Mapping[str, str] | None = None) -> None:
        log: IO[bytes] = open(self.run_dir / f"{name}.log", "ab")  # the child's, for as long as it runs
        self.processes[name] = subprocess.Popen(args, cwd=cwd, stdout=log, stderr=subprocess.STDOUT,
                                                start_new_session=True, env={**os.environ, **(env or {})})

    def render_nginx(self, template: Path, values: Mapping[str, Any]) -> Path:
        conf = Template(template.read_text()).substitute(values)
        if os.geteuid() == 0:
            conf = "user root;\n" + conf
        path = self.run_dir / "nginx.conf"
        path.write_text(conf)
        return path

    def wait_ports(self, ports: Sequence[int], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        for port in ports:
            while not listening(port):
                for name, proc in self.processes.items():
                    if proc.poll() is not None:
                        raise RuntimeError(f"{name} exited ({proc.returncode}); see {self.run_dir}/{name}.log")
                if time.monotonic() > deadline:
                    raise TimeoutError(f"port {port} not open after {timeout} s; see {self.run_dir}")
                time.sleep(0.2)

    def groups(self) -> dict[str, int]:
        return {name: proc.pid for name, proc in self.processes.items()}

    def stream_pids(self) -> list[int]:
        return [self.processes[self.STREAM].pid]

    def stop(self) -> None:
        for name in reversed(self.PROGRAMS):
            proc = self.processes.get(name)
            if proc is not None and proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + 3  # nothing to keep: a stream left open must not hold up the run
        for proc in self.processes.values():
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


class SeedStack(Processes):
    PROGRAMS = ("seed-nginx", "seed-app", "seed-consumer", "seed-stream")
    STREAM = "seed-stream"

    def __init__(self, run_dir: Path, kafka_bootstrap: str, redis_url: str, nginx_connections: int = 40000,
                 topic: str = "seed.chat"):
        super().__init__(run_dir)
        self.kafka_bootstrap = kafka_bootstrap
        self.redis_url = redis_url
        self.topic = topic
        self.nginx_connections = nginx_connections
        self.gateway_port, self.app_port, self.stream_port = free_port(), free_port(), free_port()

    @property
    def gateway_url(self) -> str:
        return f"http://127.0.0.1:{self.gateway_port}"

    def _spawn(self, name: str, args: Sequence[str], env: Mapping[str, str] | None = None) -> None:
        self.spawn(name, args, SEED_DIR, {"PYTHONPATH": str(SEED_DIR), "KAFKA_BOOTSTRAP_SERVERS": self.kafka_bootstrap,
                                          "REDIS_URL": self.redis_url, "SEED_TOPIC": self.topic, **(env or {})})

    def start(self, timeout: float = 60) -> "SeedStack":
        self.run_dir.mkdir(parents=True, exist_ok=True)
        # The blog's topic was created by the broker on first use: one partition, Kafka's default.
        create_topic(self.kafka_bootstrap, self.topic, 1, timeout, check_alive=lambda: None)
        conf = self.render_nginx(SEED_DIR / "nginx.conf", {
            "run_dir": self.run_dir, "nofile": self.nginx_connections + 1000,
            "worker_connections": self.nginx_connections, "app_port": self.app_port,
            "stream_port": self.stream_port, "gateway_port": self.gateway_port})
        gunicorn = str(VENV_BIN / "gunicorn")
        self._spawn("seed-app", [gunicorn, "-c", "gunicorn_app.py", "app:app"],
                    {"SEED_APP_BIND": f"127.0.0.1:{self.app_port}"})
        self._spawn("seed-stream", [gunicorn, "-c", "gunicorn_stream.py", "app:app"],
                    {"SEED_STREAM_BIND": f"127.0.0.1:{self.stream_port}"})
        self._spawn("seed-consumer", [sys.executable, "consumer.py"],
                    {"SEED_BROADCAST_URL": f"http://127.0.0.1:{self.app_port}/broadcast"})
        self._spawn("seed-nginx", ["nginx", "-c", str(conf), "-e", "stderr"])
        self.wait_ports((self.app_port, self.stream_port, self.gateway_port), timeout)
        return self


class CentrifugoStack(Processes):
    """Centrifugo (bench/tools.sh builds the pinned version) on the same Kafka broker and Redis
    server: its Redis engine (history in Redis, as the project keeps a resume window there),
    its unidirectional SSE transport for anonymous readers, its Kafka consumer in publication
    data mode on its own topic, the small producer that turns chat POSTs into that topic's
    records (bench/baselines/centrifugo/ingest-go) and an nginx gateway with the same settings."""

    PROGRAMS = ("centrifugo-nginx", "centrifugo-ingest", "centrifugo")
    STREAM = "centrifugo"
    API_KEY = "bench-key"

    def __init__(self, run_dir: Path, kafka_bootstrap: str, redis_url: str, partitions: int,
                 nginx_connections: int = 40000, topic: str = "centrifugo.chat"):
        super().__init__(run_dir)
        self.kafka_bootstrap = kafka_bootstrap
        self.redis_url = redis_url
        self.partitions = partitions
        self.topic = topic
        self.nginx_connections = nginx_connections
        self.gateway_port, self.centrifugo_port, self.ingest_port = free_port(), free_port(), free_port()

    @property
    def gateway_url(self) -> str:
        return f"http://127.0.0.1:{self.gateway_port}"

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.centrifugo_port}"

    def config(self) -> dict[str, Any]:
        return {
            "http_server": {"address": "127.0.0.1", "port": self.centrifugo_port},
            "log": {"level": "error"},
            "engine": {"type": "redis", "redis": {"address": [self.redis_url]}},
            "http_api": {"key": self.API_KEY},
            "uni_sse": {"enabled": True},
            "client": {"allow_anonymous_connect_without_token": True},
            "channel": {"without_namespace": {
                "allow_subscribe_for_client": True, "allow_subscribe_for_anonymous": True,
                "history_size": 1000, "history_ttl": "300s", "force_recovery": True}},
            "consumers": [{
                "name": "chat_kafka", "enabled": True, "type": "kafka",
                "kafka": {"brokers": [self.kafka_bootstrap], "topics": [self.topic],
                          "consumer_group": "centrifugo-bench", "publication_data_mode": {"enabled": True}},
            }],
        }

    def start(self, timeout: float = 60) -> "CentrifugoStack":
        self.run_dir.mkdir(parents=True, exist_ok=True)
        centrifugo, ingest = tool("centrifugo"), tool("centrifugo-ingest")
        # The topic as the project's: the same partition count, written with acks=all.
        create_topic(self.kafka_bootstrap, self.topic, self.partitions, timeout, check_alive=lambda: None)
        config = self.run_dir / "config.json"
        config.write_text(json.dumps(self.config(), indent=1))
        conf = self.render_nginx(CENTRIFUGO_DIR / "nginx.conf", {
            "run_dir": self.run_dir, "nofile": self.nginx_connections + 1000,
            "worker_connections": self.nginx_connections, "ingest_port": self.ingest_port,
            "centrifugo_port": self.centrifugo_port, "gateway_port": self.gateway_port})
        self.spawn("centrifugo", [centrifugo, "-c", str(config)], self.run_dir)
        self.spawn("centrifugo-ingest", [ingest], self.run_dir, {
            "INGEST_BIND": f"127.0.0.1:{self.ingest_port}", "KAFKA_BOOTSTRAP_SERVERS": self.kafka_bootstrap,
            "KAFKA_TOPIC": self.topic})
        self.spawn("centrifugo-nginx", ["nginx", "-c", str(conf), "-e", "stderr"], self.run_dir)
        self.wait_ports((self.centrifugo_port, self.ingest_port, self.gateway_port), timeout)
        return self


class StreamAlone(Processes):
    """redis-server and the stream service's gunicorn (its production settings) on free ports,
    the history marked ready as the bridge would: no Kafka, no bridge, no gateway. ``source``:
    the checkout whose stream service runs (another one's for a before / after)."""

    PROGRAMS = ("redis", "stream")
    STREAM = "stream"

    def __init__(self, run_dir: Path, source: Path = ROOT, partitions: int = 4):
        super().__init__(run_dir)
        self.source = Path(source)
        self.partitions = partitions
        self.redis_port, self.stream_port = free_port(), free_port()

    def start(self, timeout: float = 30) -> "StreamAlone":
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.spawn("redis", ["redis-server", "--bind", "127.0.0.1", "--port", str(self.redis_port), "--save", "",
                             "--appendonly", "no"], self.run_dir)
        wait_port(self.redis_port, timeout)
        self.redis().hset(STATE_KEY, mapping={"partitions": self.partitions,
                                               **{f"ready:{p}": 1 for p in range(self.partitions)}})
        (self.run_dir / "metrics").mkdir(exist_ok=True)
        # The other checkout's packages first: its services run, not this one's.
        self.spawn("stream", [str(VENV_BIN / "gunicorn"), "-c", f"{self.source}/services/stream/gunicorn.conf.py",
                              "stream.wsgi:app"], self.source, {
            "PYTHONPATH": f"{self.source}/services/common:{self.source}/services/stream",
            "PROMETHEUS_MULTIPROC_DIR": str(self.run_dir / "metrics"),
            "REDIS_URL": f"redis://127.0.0.1:{self.redis_port}/0", "KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:1",
            "STREAM_BIND": f"127.0.0.1:{self.stream_port}"})
        self.wait_ports((self.stream_port,), timeout)
        time.sleep(1.0)  # the workers' own start, after the master's socket opens
        return self

    def redis(self) -> redis.Redis:
        return redis.Redis(port=self.redis_port)

    def log_lines(self) -> int:
        with open(self.run_dir / "stream.log", "rb") as log:
            return sum(1 for _ in log)
