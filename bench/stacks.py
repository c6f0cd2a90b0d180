"""The systems under test, on one Kafka broker and one Redis server.

``OursStack`` is the local stack (local/stack.py) on free ports, with its gateway allowed
more connections than the default (the idle scenario holds 10,000 streams, each two nginx
connections). ``SeedStack`` runs the seed design (bench/baselines/seed/) on the same Kafka
and Redis, with the same worker counts and an nginx gateway with the same settings;
``CentrifugoStack`` the peer (bench/baselines/centrifugo/), likewise.
"""

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from string import Template

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "local"))
# The bridge's publish script, which the fan-out stage runs as the bridge does (bench/run.py).
sys.path[1:1] = [str(ROOT / "services" / "common"), str(ROOT / "services" / "bridge")]

from kafka.admin import KafkaAdminClient, NewTopic  # noqa: E402
from kafka.errors import TopicAlreadyExistsError  # noqa: E402
from stack import Settings, Stack  # noqa: E402

SEED_DIR = ROOT / "bench" / "baselines" / "seed"
CENTRIFUGO_DIR = ROOT / "bench" / "baselines" / "centrifugo"
VENV_BIN = Path(sys.executable).parent
STACK_PROGRAMS = ("nginx", "ingest", "kafka", "bridge", "redis", "stream")


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def bench_service_env():
    """Production settings, except the per-user and per-address limits: every benchmark
    client posts (and pages back) from 127.0.0.1, and the seed has no limits either."""
    return {"RATE_LIMIT_USER": "1000000000", "RATE_LIMIT_IP": "1000000000",
            "STREAM_SCROLLBACK_CLIENT_RECORDS": "1000000000"}


class OursStack(Stack):
    def __init__(self, run_dir, nginx_connections=40000):
        settings = Settings(
            gateway_port=free_port(), ingest_port=free_port(), stream_port=free_port(), bridge_port=free_port(),
            kafka_port=free_port(), kafka_controller_port=free_port(), redis_port=free_port(),
            run_dir=Path(run_dir), service_env=bench_service_env(),
            stream_connections_per_ip=0,  # every benchmark client connects from 127.0.0.1
        )
        super().__init__(settings, supervisor_log=str(Path(run_dir) / "supervisord.log"))
        self.nginx_connections = nginx_connections
        self._pids = {}

    def prepare(self):
        super().prepare()
        conf = self.run_dir / "nginx" / "nginx.conf"
        text = conf.read_text()
        text = text.replace("worker_connections 8192;", f"worker_connections {self.nginx_connections};")
        text = text.replace("worker_processes 1;",
                            f"worker_processes 1;\nworker_rlimit_nofile {self.nginx_connections + 1000};")
        conf.write_text(text)

    def groups(self):
        """Program name -> root pid (gunicorn masters, the nginx master, java, redis-server)."""
        if not self._pids:
            self._pids = {name: self.pid(name) for name in STACK_PROGRAMS}
        return dict(self._pids)

    def stream_pids(self):
        return [self.groups()["stream"]]


class SeedStack:
    PROGRAMS = ("seed-nginx", "seed-app", "seed-consumer", "seed-stream")

    def __init__(self, run_dir, kafka_bootstrap, redis_url, nginx_connections=40000, topic="seed.chat"):
        self.run_dir = Path(run_dir)
        self.kafka_bootstrap = kafka_bootstrap
        self.redis_url = redis_url
        self.topic = topic
        self.nginx_connections = nginx_connections
        self.gateway_port, self.app_port, self.stream_port = free_port(), free_port(), free_port()
        self.processes = {}

    @property
    def gateway_url(self):
        return f"http://127.0.0.1:{self.gateway_port}"

    def _spawn(self, name, args, env=None):
        log = open(self.run_dir / f"{name}.log", "ab")
        self.processes[name] = subprocess.Popen(
            args, cwd=SEED_DIR, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            env={**os.environ, "PYTHONPATH": str(SEED_DIR), "KAFKA_BOOTSTRAP_SERVERS": self.kafka_bootstrap,
                 "REDIS_URL": self.redis_url, "SEED_TOPIC": self.topic, **(env or {})},
        )

    def start(self, timeout=60):
        self.run_dir.mkdir(parents=True, exist_ok=True)
        # The blog's topic was created by the broker on first use: one partition, Kafka's default.
        admin = KafkaAdminClient(bootstrap_servers=self.kafka_bootstrap, client_id="seed-bench")
        try:
            admin.create_topics([NewTopic(self.topic, 1, 1)])
        except TopicAlreadyExistsError:
            pass
        finally:
            admin.close()
        values = {"run_dir": self.run_dir, "nofile": self.nginx_connections + 1000,
                  "worker_connections": self.nginx_connections, "app_port": self.app_port,
                  "stream_port": self.stream_port, "gateway_port": self.gateway_port}
        conf = Template((SEED_DIR / "nginx.conf").read_text()).substitute(values)
        if os.geteuid() == 0:
            conf = "user root;\n" + conf
        (self.run_dir / "nginx.conf").write_text(conf)
        gunicorn = str(VENV_BIN / "gunicorn")
        self._spawn("seed-app", [gunicorn, "-c", "gunicorn_app.py", "app:app"],
                    {"SEED_APP_BIND": f"127.0.0.1:{self.app_port}"})
        self._spawn("seed-stream", [gunicorn, "-c", "gunicorn_stream.py", "app:app"],
                    {"SEED_STREAM_BIND": f"127.0.0.1:{self.stream_port}"})
        self._spawn("seed-consumer", [sys.executable, "consumer.py"],
                    {"SEED_BROADCAST_URL": f"http://127.0.0.1:{self.app_port}/broadcast"})
        self._spawn("seed-nginx", ["nginx", "-c", str(self.run_dir / "nginx.conf"), "-e", "stderr"])
        _wait_ports(self.processes, (self.app_port, self.stream_port, self.gateway_port), timeout, self.run_dir)
        return self

    def groups(self):
        return {name: proc.pid for name, proc in self.processes.items()}

    def stream_pids(self):
        return [self.processes["seed-stream"].pid]

    def stop(self):
        _stop(self.processes, self.PROGRAMS)


def _wait_ports(processes, ports, timeout, run_dir):
    deadline = time.monotonic() + timeout
    for port in ports:
        while True:
            for name, proc in processes.items():
                if proc.poll() is not None:
                    raise RuntimeError(f"{name} exited ({proc.returncode}); see {run_dir}/{name}.log")
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"port {port} not open after {timeout} s; see {run_dir}") from None
                time.sleep(0.2)


def _stop(processes, order):
    for name in reversed(order):
        proc = processes.get(name)
        if proc is not None and proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
    deadline = time.monotonic() + 3  # nothing to keep: a stream left open must not hold up the run
    for proc in processes.values():
        try:
            proc.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()

class CentrifugoStack:
    """Centrifugo (bench/tools.sh builds the pinned version) on the same Kafka broker and Redis
    server: its Redis engine (history in Redis, as the project keeps a resume window there),
    its unidirectional SSE transport for anonymous readers, its Kafka consumer in publication
    data mode on its own topic, the small producer that turns chat POSTs into that topic's
    records (bench/baselines/centrifugo/ingest-go) and an nginx gateway with the same settings."""

    PROGRAMS = ("centrifugo-nginx", "centrifugo-ingest", "centrifugo")
    API_KEY = "bench-key"

    def __init__(self, run_dir, kafka_bootstrap, redis_url, partitions, nginx_connections=40000,
                 topic="centrifugo.chat"):
        self.run_dir = Path(run_dir)
        self.kafka_bootstrap = kafka_bootstrap
        self.redis_url = redis_url
        self.partitions = partitions
        self.topic = topic
        self.nginx_connections = nginx_connections
        self.gateway_port, self.centrifugo_port, self.ingest_port = free_port(), free_port(), free_port()
        self.processes = {}

    @property
    def gateway_url(self):
        return f"http://127.0.0.1:{self.gateway_port}"

    @property
    def api_url(self):
        return f"http://127.0.0.1:{self.centrifugo_port}"

    def config(self):
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

    def _spawn(self, name, args, env=None):
        log = open(self.run_dir / f"{name}.log", "ab")
        self.processes[name] = subprocess.Popen(args, cwd=self.run_dir, stdout=log, stderr=subprocess.STDOUT,
                                                start_new_session=True, env={**os.environ, **(env or {})})

    def start(self, timeout=60):
        self.run_dir.mkdir(parents=True, exist_ok=True)
        tools = ROOT / "bench" / "tools.sh"
        centrifugo = subprocess.run([str(tools), "centrifugo"], check=True, capture_output=True,
                                    text=True).stdout.split()[-1]
        ingest = subprocess.run([str(tools), "centrifugo-ingest"], check=True, capture_output=True,
                                text=True).stdout.split()[-1]
        # The topic as the project's: the same partition count, written with acks=all.
        admin = KafkaAdminClient(bootstrap_servers=self.kafka_bootstrap, client_id="centrifugo-bench")
        try:
            admin.create_topics([NewTopic(self.topic, self.partitions, 1)])
        except TopicAlreadyExistsError:
            pass
        finally:
            admin.close()
        config = self.run_dir / "config.json"
        config.write_text(json.dumps(self.config(), indent=1))
        values = {"run_dir": self.run_dir, "nofile": self.nginx_connections + 1000,
                  "worker_connections": self.nginx_connections, "ingest_port": self.ingest_port,
                  "centrifugo_port": self.centrifugo_port, "gateway_port": self.gateway_port}
        conf = Template((CENTRIFUGO_DIR / "nginx.conf").read_text()).substitute(values)
        if os.geteuid() == 0:
            conf = "user root;\n" + conf
        (self.run_dir / "nginx.conf").write_text(conf)
        self._spawn("centrifugo", [centrifugo, "-c", str(config)])
        self._spawn("centrifugo-ingest", [ingest], {
            "INGEST_BIND": f"127.0.0.1:{self.ingest_port}", "KAFKA_BOOTSTRAP_SERVERS": self.kafka_bootstrap,
            "KAFKA_TOPIC": self.topic})
        self._spawn("centrifugo-nginx", ["nginx", "-c", str(self.run_dir / "nginx.conf"), "-e", "stderr"])
        _wait_ports(self.processes, (self.centrifugo_port, self.ingest_port, self.gateway_port), timeout,
                    self.run_dir)
        return self

    def groups(self):
        return {name: proc.pid for name, proc in self.processes.items()}

    def stream_pids(self):
        return [self.processes["centrifugo"].pid]

    def stop(self):
        _stop(self.processes, self.PROGRAMS)
