"""The local stack: Kafka (KRaft), Redis, the three services and an nginx gateway, kept
running by supervisord, which restarts any process that dies and logs that it did.

    python local/stack.py          # what `make run` does; Ctrl-C stops everything

Tests use the same code (``Stack``) with their own ports and run directory.
Every setting is an environment variable; see ``Settings`` and the README.
"""

import argparse
import os
import secrets
import shlex
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from string import Template

from kafka.admin import KafkaAdminClient, NewTopic
from kafka.errors import KafkaError, TopicAlreadyExistsError
from tenacity import Retrying, retry_if_exception_type, stop_after_delay, wait_fixed

ROOT = Path(__file__).resolve().parent.parent
TEMPLATES = ROOT / "local" / "templates"
KAFKA_HOME = ROOT / ".cache" / "kafka"  # the broker's jars, put there by scripts/install.sh
VENV_BIN = Path(sys.executable).parent
SERVICES = ("ingest", "bridge", "stream")
INSTANCE_PORT_STEP = 10  # instance n of a service listens on its port + 10 * (n - 1): 8001, 8011, ...


def stopped_with_parent(argv):
    """``argv`` run so that it gets SIGTERM when the thread that started it ends, however its
    process ends (util-linux's setpriv; left as it is where setpriv is missing): neither
    supervisord nor a program it runs outlives its parent and holds the stack's ports. So a
    ``Stack`` is started from a thread that lives as long as it (the main thread does)."""
    setpriv = shutil.which("setpriv")
    return [setpriv, "--pdeathsig", "TERM", "--", *argv] if setpriv else list(argv)


def instance_program(name, n):
    """The supervisord program (and log file) of instance ``n`` (from 1) of a service."""
    return name if n == 1 else f"{name}-{n}"


def _env(name, default):
    return os.environ.get(name) or default


def parse_replicas(text):
    """``STACK_REPLICAS``: how many instances of each service, e.g. ``ingest:2,bridge:3,stream:3``;
    a service not named runs once."""
    replicas = dict.fromkeys(SERVICES, 1)
    for part in filter(None, (p.strip() for p in (text or "").split(","))):
        name, _, count = part.partition(":")
        if name not in SERVICES or not count.isdigit() or int(count) < 1:
            raise ValueError(f"STACK_REPLICAS: {part!r} is not <service>:<count> with a service of "
                             f"{', '.join(SERVICES)} and a count of at least 1")
        replicas[name] = int(count)
    return replicas


@dataclass
class Settings:
    host: str = "127.0.0.1"
    gateway_port: int = 8080
    ingest_port: int = 8001
    stream_port: int = 8002
    bridge_port: int = 8003
    kafka_port: int = 9092
    kafka_controller_port: int = 9093
    redis_port: int = 6379
    run_dir: Path = ROOT / ".run" / "local"
    kafka_home: Path = KAFKA_HOME
    partitions: int = 6
    stream_connections_per_ip: int = 100  # the gateway's cap on open streams per client address; 0: none
    api_connections_per_ip: int = 20  # the gateway's cap on /api/ requests in progress per client address; 0: none
    replicas: dict = field(default_factory=lambda: dict.fromkeys(SERVICES, 1))  # instances per service
    instance_ports: dict = field(default_factory=dict)  # service -> a port per instance (else port + 10 * (n - 1))
    external_kafka: str | None = None  # KAFKA_BOOTSTRAP_SERVERS: use that cluster, start none
    external_redis: str | None = None  # REDIS_URL: use that server, start none
    service_env: dict = field(default_factory=dict)  # extra environment for the services

    @classmethod
    def from_env(cls):
        return cls(
            gateway_port=int(_env("GATEWAY_PORT", 8080)),
            ingest_port=int(_env("INGEST_PORT", 8001)),
            stream_port=int(_env("STREAM_PORT", 8002)),
            bridge_port=int(_env("BRIDGE_PORT", 8003)),
            kafka_port=int(_env("KAFKA_PORT", 9092)),
            kafka_controller_port=int(_env("KAFKA_CONTROLLER_PORT", 9093)),
            redis_port=int(_env("REDIS_PORT", 6379)),
            run_dir=Path(_env("RUN_DIR", ROOT / ".run" / "local")).resolve(),
            partitions=int(_env("KAFKA_TOPIC_PARTITIONS", 6)),
            stream_connections_per_ip=int(_env("GATEWAY_STREAM_CONNECTIONS_PER_IP", 100)),
            api_connections_per_ip=int(_env("GATEWAY_API_CONNECTIONS_PER_IP", 20)),
            replicas=parse_replicas(os.environ.get("STACK_REPLICAS")),
            external_kafka=os.environ.get("KAFKA_BOOTSTRAP_SERVERS") or None,
            external_redis=os.environ.get("REDIS_URL") or None,
        )

    @property
    def kafka_bootstrap(self):
        return self.external_kafka or f"{self.host}:{self.kafka_port}"

    @property
    def redis_url(self):
        return self.external_redis or f"redis://{self.host}:{self.redis_port}/0"

    @property
    def gateway_url(self):
        return f"http://{self.host}:{self.gateway_port}"

    def port(self, name, n=1):
        """The port of instance ``n`` (from 1) of a service."""
        if name in self.instance_ports:
            return self.instance_ports[name][n - 1]
        return getattr(self, name + "_port") + INSTANCE_PORT_STEP * (n - 1)

    def instances(self, name):
        """The supervisord program of each instance of a service: ``stream``, then
        ``stream-2``, ``stream-3``, ... (the names stay when the service is scaled)."""
        return [instance_program(name, n) for n in range(1, self.replicas[name] + 1)]

    def service_url(self, name, n=1):
        """The base URL of instance ``n`` (from 1) of a service."""
        return f"http://{self.host}:{self.port(name, n)}"

    def service_urls(self, name):
        return [self.service_url(name, n) for n in range(1, self.replicas[name] + 1)]


@dataclass
class Program:
    name: str
    command: str
    environment: dict = field(default_factory=dict)
    priority: int = 10
    exitcodes: str = "0"


class Stack:
    def __init__(self, settings, supervisor_log=None, echo=False):
        self.settings = settings
        self.run_dir = settings.run_dir
        self.supervisor_log = supervisor_log  # None: logs/supervisord.log in the run directory
        self.echo = echo  # supervisord's log lines also on this process's stdout
        self._log_printer = None  # the thread that prints supervisord's log (echo)
        self.process = None

    # -- configuration -----------------------------------------------------------------

    def _render(self, template, target, **extra):
        values = {
            "root": ROOT,
            "run_dir": self.run_dir,
            "gateway_host": self.settings.host,
            "user_directive": "user root;" if os.geteuid() == 0 else "",
            **{k: v for k, v in vars(self.settings).items() if isinstance(v, (int, str, Path))},
            **extra,
        }
        text = Template((TEMPLATES / template).read_text()).substitute(values)
        target.write_text(text)
        return target

    def service_command(self, name):
        """The command line that runs one of the three services (here and in the images)."""
        return f"{VENV_BIN}/gunicorn -c {ROOT}/services/{name}/gunicorn.conf.py {name}.wsgi:app"

    def service_environment(self, name, n=1):
        """The environment of instance ``n`` (from 1) of a service."""
        s = self.settings
        program = instance_program(name, n)
        env = {
            "PYTHONPATH": f"{ROOT}/services/common:{ROOT}/services/{name}",
            "PROMETHEUS_MULTIPROC_DIR": str(self.run_dir / "metrics" / program),
            "KAFKA_BOOTSTRAP_SERVERS": s.kafka_bootstrap,
            "REDIS_URL": s.redis_url,
            f"{name.upper()}_BIND": f"{s.host}:{s.port(name, n)}",
        }
        if name == "bridge":
            env["BRIDGE_INSTANCE_ID"] = f"local-{program}"  # its own static member id, as a StatefulSet's pod name
        if name in ("ingest", "stream"):
            env["SESSION_SECRET"] = self.session_secret()
        return {**env, **s.service_env}

    def session_secret(self):
        """The key ingest and stream sign session cookies with: SESSION_SECRET, or one made
        once per run directory (so a restart keeps the browsers' sessions)."""
        if os.environ.get("SESSION_SECRET"):
            return os.environ["SESSION_SECRET"]
        path = self.run_dir / "session-secret"
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(secrets.token_urlsafe(32))
            path.chmod(0o600)
        return path.read_text().strip()

    def _programs(self):
        """What supervisord runs, in start order (it stops them in reverse)."""
        s = self.settings
        programs = []
        if not s.external_redis:
            # A cache: no persistence, so a restart brings it back empty (the bridge rebuilds).
            programs.append(Program(
                "redis",
                f"redis-server --bind {s.host} --port {s.redis_port} --save '' --appendonly no "
                f"--dir {self.run_dir}/redis --protected-mode yes",
            ))
        if not s.external_kafka:
            programs.append(Program(
                "kafka",
                shlex.join(kafka_node_command(s.kafka_home, self.run_dir / "kafka")),
                exitcodes="0,143",  # the JVM's status after a clean shutdown on SIGTERM
            ))
        for name in SERVICES:
            for n in range(1, s.replicas[name] + 1):
                programs.append(Program(
                    instance_program(name, n),
                    self.service_command(name),
                    environment=self.service_environment(name, n),
                    priority=20,
                ))
        programs.append(Program("nginx", f"nginx -c {self.run_dir}/nginx/nginx.conf -e stderr", priority=30))
        return programs

    def prepare(self):
        s = self.settings
        for sub in ("logs", "redis", "kafka", "nginx", "metrics"):
            (self.run_dir / sub).mkdir(parents=True, exist_ok=True)
        if not s.external_kafka:
            if not (s.kafka_home / "libs").is_dir():
                raise SystemExit("The Kafka broker is not installed: run scripts/install.sh (make run does).")
            self._render("kafka.properties", self.run_dir / "kafka" / "server.properties")
            shutil.copy(TEMPLATES / "log4j2.properties", self.run_dir / "kafka" / "log4j2.properties")
            if not (self.run_dir / "kafka" / "data" / "meta.properties").exists():
                cluster_id = kafka_cluster_id()
                subprocess.run(
                    kafka_format_command(s.kafka_home, self.run_dir / "kafka", cluster_id),
                    check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                )
        self._write_nginx_conf()
        self._write_supervisor_conf()

    def _write_nginx_conf(self):
        s = self.settings
        cap = s.stream_connections_per_ip
        # As a Service's endpoints: one server per instance, requests in turn. An ingest
        # instance that refuses connections is passed over for a few seconds; a stream
        # instance never is, since its connects move on by themselves (the template's
        # proxy_next_upstream), and counting its refusals as failures would take every
        # instance out at once while one drains.
        failures = {"ingest": "max_fails=1 fail_timeout=3s", "stream": "max_fails=0"}
        servers = {
            name: "\n        ".join(f"server {s.host}:{s.port(name, n)} {failures[name]};"
                                    for n in range(1, s.replicas[name] + 1))
            for name in ("ingest", "stream")
        }
        api_cap = s.api_connections_per_ip
        # The services' sign-in header is removed from client requests (proxy-headers.conf
        # removes the usual ones); a name that is not a header token could not be one.
        trusted = s.service_env.get("TRUSTED_USER_HEADER") or os.environ.get("TRUSTED_USER_HEADER") or ""
        if trusted and not (trusted.isascii() and trusted.replace("-", "").isalnum()):
            raise ValueError(f"TRUSTED_USER_HEADER: {trusted!r} is not a header name")
        self._render("nginx.conf", self.run_dir / "nginx" / "nginx.conf",
                     stream_connections_cap=f"limit_conn streams_per_ip {cap};" if cap else "",
                     api_connections_cap=f"limit_conn api_per_ip {api_cap};" if api_cap else "",
                     clear_trusted_user_header=f'proxy_set_header {trusted} "";' if trusted else "",
                     ingest_servers=servers["ingest"], stream_servers=servers["stream"])

    def _supervisor_log_path(self):
        return self.supervisor_log or f"{self.run_dir}/logs/supervisord.log"

    def _write_supervisor_conf(self):
        log = self._supervisor_log_path()
        lines = [
            "[supervisord]",
            "nodaemon=true",
            f"logfile={log}",
            "logfile_maxbytes=0",
            f"pidfile={self.run_dir}/supervisord.pid",
            f"childlogdir={self.run_dir}/logs",
            "",
            "[unix_http_server]",
            f"file={self.run_dir}/supervisor.sock",
            "",
            "[rpcinterface:supervisor]",
            "supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface",
            "",
            "[supervisorctl]",
            f"serverurl=unix://{self.run_dir}/supervisor.sock",
        ]
        for program in self._programs():
            env = ",".join(f'{k}="{v}"' for k, v in program.environment.items())
            lines += [
                "",
                f"[program:{program.name}]",
                f"command={shlex.join(stopped_with_parent(shlex.split(program.command)))}",
                f"directory={ROOT}",
                f"priority={program.priority}",
                "autorestart=true",
                f"exitcodes={program.exitcodes}",
                "startsecs=1",
                "startretries=1000",
                "stopasgroup=true",
                "killasgroup=true",
                "stopwaitsecs=30",
                "redirect_stderr=true",
                f"stdout_logfile={self.run_dir}/logs/{program.name}.log",
                "stdout_logfile_maxbytes=50MB",
                "stdout_logfile_backups=1",
            ] + ([f"environment={env}"] if env else [])
        (self.run_dir / "supervisord.conf").write_text("\n".join(lines) + "\n")

    # -- running ---------------------------------------------------------------------------

    def start(self, timeout=180):
        self.prepare()
        # supervisord logs to its file only, and (make run) the runner prints what it appends:
        # supervisord never writes to a terminal or pipe that may be gone (`make run | tee
        # run.log`, then Ctrl-C; the runner killed), which it does not survive.
        log = Path(self._supervisor_log_path())
        log.touch()
        self.process = subprocess.Popen(
            stopped_with_parent([str(VENV_BIN / "supervisord"), "-c", str(self.run_dir / "supervisord.conf")]),
            cwd=ROOT,
            start_new_session=True,  # Ctrl-C reaches the runner, which stops supervisord in order
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        if self.echo:
            self._log_printer = threading.Thread(target=_follow, args=(log, log.stat().st_size, self.process), daemon=True)
            self._log_printer.start()
        try:
            self.create_topic(timeout)
            self.wait_ready(timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def create_topic(self, timeout):
        for attempt in Retrying(stop=stop_after_delay(timeout), wait=wait_fixed(0.5),
                                retry=retry_if_exception_type(KafkaError), reraise=True):
            with attempt:
                self._check_alive()
                admin = KafkaAdminClient(bootstrap_servers=self.settings.kafka_bootstrap, client_id="chat-stack")
                try:
                    admin.create_topics([NewTopic(_env("KAFKA_TOPIC", "chat.messages"), self.settings.partitions, 1)])
                except TopicAlreadyExistsError:
                    pass
                finally:
                    admin.close()

    def wait_ready(self, timeout):
        deadline = time.monotonic() + timeout
        urls = [url + "/readyz" for name in SERVICES for url in self.settings.service_urls(name)]
        urls.append(self.settings.gateway_url + "/")
        for url in urls:
            while True:
                self._check_alive()
                if _answers_ok(url):
                    break
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{url} not ready after {timeout} s; see {self.run_dir}/logs/")
                time.sleep(0.2)

    def _check_alive(self):
        if self.process is not None and self.process.poll() is not None:
            raise RuntimeError(f"supervisord exited ({self.process.returncode}); see {self.run_dir}/logs/")

    def stop(self):
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(90)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        if self._log_printer is not None:
            self._log_printer.join(5)  # supervisord's last lines: what it stopped

    def ctl(self, *args):
        """Run a supervisorctl command (stop kafka, start redis, pid bridge, ...)."""
        result = subprocess.run(
            [str(VENV_BIN / "supervisorctl"), "-c", str(self.run_dir / "supervisord.conf"), *args],
            capture_output=True, text=True,
        )
        return result.stdout.strip()

    def pid(self, name):
        return int(self.ctl("pid", name))

    def kill(self, name, sig=signal.SIGKILL):
        """Kill a program's whole process group, as a crashed pod dies (supervisord restarts
        it). ``name``: a program, e.g. ``bridge``, or ``bridge-2`` for the second instance."""
        os.killpg(self.pid(name), sig)

    def kill_instance(self, name, n, sig=signal.SIGKILL):
        """Kill instance ``n`` (from 1) of a service (supervisord restarts it)."""
        self.kill(instance_program(name, n), sig)

    def lose(self, program, timeout=30):
        """Kill a program with SIGKILL and keep it down, as a lost node's pod: frozen first
        (SIGSTOP) so that it does nothing more, told to stop so that supervisord does not
        restart it, then killed. ``ctl("start", program)`` brings it back."""
        pid = self.pid(program)
        os.killpg(pid, signal.SIGSTOP)
        stopping = subprocess.Popen(
            [str(VENV_BIN / "supervisorctl"), "-c", str(self.run_dir / "supervisord.conf"), "stop", program],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + timeout
        while "STOPPING" not in self.ctl("status", program):  # its SIGTERM waits: the process is frozen
            if time.monotonic() > deadline:
                raise TimeoutError(f"supervisord did not begin to stop {program}")
            time.sleep(0.05)
        os.killpg(pid, signal.SIGKILL)
        stopping.wait(timeout)

    def restart_instance(self, name, n):
        """Stop instance ``n`` of a service as a pod is stopped (SIGTERM: it drains or leaves
        in order), then start it again: one step of a rolling restart."""
        program = instance_program(name, n)
        result = self.ctl("restart", program)
        if f"{program}: started" not in result:
            raise RuntimeError(f"restarting {program}: {result}")

    def scale(self, name, count, timeout=120):
        """Run ``count`` instances of a service from now on, as ``kubectl scale`` does: new
        instances start and join the gateway once ready; removed ones (the highest numbers)
        leave the gateway first, then stop with SIGTERM."""
        before = self.settings.replicas[name]
        self.settings.replicas[name] = count
        behind_gateway = name in ("ingest", "stream")
        if count < before and behind_gateway:
            self._reload_gateway()
        self._write_supervisor_conf()
        self.ctl("update")  # starts the programs added, stops and forgets the ones removed
        if count > before:
            self.wait_ready(timeout)
            if behind_gateway:
                self._reload_gateway()

    def _reload_gateway(self):
        """Render the gateway's configuration for the instances now wanted and have nginx load
        it; returns once a worker with the new upstreams runs (the old ones finish their
        open streams)."""
        self._write_nginx_conf()
        master = self.pid("nginx")
        before = _children(master)
        self.ctl("signal", "HUP", "nginx")
        deadline = time.monotonic() + 30
        while not _children(master) - before:
            if time.monotonic() > deadline:
                raise TimeoutError(f"nginx did not reload; see {self.run_dir}/logs/nginx-error.log")
            time.sleep(0.05)


def _children(pid):
    """The process ids of ``pid``'s children (Linux)."""
    return set(Path(f"/proc/{pid}/task/{pid}/children").read_text().split())


def _answers_ok(url):
    """Whether ``url`` answers 200 now (the runner needs only the standard library)."""
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status == 200
    except (OSError, urllib.error.URLError):
        return False


def kafka_node_command(kafka_home, node_dir, heap=("256m", "768m")):
    """Run one Kafka node from the jars in ``kafka_home``, configured by the
    server.properties and log4j2.properties in ``node_dir``; ``heap``: (-Xms, -Xmx).
    The serial collector: a small heap on a couple of cores, where G1's concurrent threads
    cost more CPU than they save in pauses (bench/README.md, the per-message path)."""
    return ["java", f"-Xms{heap[0]}", f"-Xmx{heap[1]}", "-XX:+UseSerialGC",
            f"-Dlog4j2.configurationFile={node_dir}/log4j2.properties",
            "-cp", f"{kafka_home}/libs/*", "kafka.Kafka", f"{node_dir}/server.properties"]


def kafka_format_command(kafka_home, node_dir, cluster_id):
    """Format the storage of the node configured in ``node_dir`` for ``cluster_id``."""
    return ["java", "-cp", f"{kafka_home}/libs/*", "kafka.tools.StorageTool", "format",
            f"--cluster-id={cluster_id}",  # "=": an id may start with "-"
            "--config", f"{node_dir}/server.properties"]


def kafka_cluster_id():
    """A KRaft cluster id: 16 random bytes, URL-safe base64 without padding (22 characters)."""
    import base64

    return base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")


def say(text):
    """Print, unless stdout is gone (a pipe whose reader has exited): stopping matters more."""
    try:
        print(text, flush=True)
    except OSError:
        sys.stdout = open(os.devnull, "w")  # nor fail again when Python flushes it at exit


def _follow(path, offset, process):
    """Print the lines appended to ``path`` from ``offset`` on, until ``process`` has exited
    and all it wrote is printed."""
    with open(path, "rb") as log:
        log.seek(offset)
        while True:
            line = log.readline()
            if line.endswith(b"\n"):
                say(line.decode(errors="replace").rstrip("\n"))
                continue
            log.seek(-len(line), os.SEEK_CUR)  # a line still being written: read it whole later
            if process.poll() is not None:
                return
            time.sleep(0.1)


def main():
    # No options: every setting is an environment variable (README). --help says so.
    argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter).parse_args()
    settings = Settings.from_env()
    stack = Stack(settings, echo=True)

    def on_sigterm(signum, frame):
        raise KeyboardInterrupt  # stop as on Ctrl-C

    signal.signal(signal.SIGTERM, on_sigterm)
    try:
        say(f"Starting the stack (logs in {stack.run_dir}/logs/)...")
        stack.start()
        say(f"\nChatroom is running: {settings.gateway_url}\n(Ctrl-C stops it)\n")
        stack.process.wait()
    except KeyboardInterrupt:
        # The interrupted wait has let go of the process; stop() may wait on it again.
        say("\nStopping the stack...")
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not cut the stop short
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        stack.stop()


if __name__ == "__main__":
    main()
