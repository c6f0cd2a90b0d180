"""What the local stack runs and the files it runs from: each program's command line and
environment, supervisord.conf, the gateway's nginx.conf, the Kafka node's configuration and
the session key, all in the run directory."""

import os
import secrets
import shlex
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from string import Template

from local.kafka_node import kafka_node_command
from local.redis_cluster import node_command, node_program
from local.settings import ROOT, SERVICES, TEMPLATES, VENV_BIN, Settings, instance_program

PRIVATE_FILE_MODE = 0o600  # the session key, and supervisord.conf, which passes it to the services


@dataclass
class Program:
    name: str
    command: str
    environment: dict[str, str] = field(default_factory=dict)
    priority: int = 10
    exitcodes: str = "0"


def stopped_with_parent(argv: list[str]) -> list[str]:
    """``argv`` run so that it gets SIGTERM when the thread that started it ends, however its
    process ends (util-linux's setpriv; left as it is where setpriv is missing): neither
    supervisord nor a program it runs outlives its parent and holds the stack's ports. So a
    ``Stack`` is started from a thread that lives as long as it (the main thread does)."""
    setpriv = shutil.which("setpriv")
    return [setpriv, "--pdeathsig", "TERM", "--", *argv] if setpriv else list(argv)


def write_private(path: Path, text: str) -> None:
    """Write ``text`` to ``path``, readable by its owner only from the first byte on."""
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, PRIVATE_FILE_MODE)
    os.fchmod(descriptor, PRIVATE_FILE_MODE)  # a file that existed keeps its mode through O_CREAT
    with os.fdopen(descriptor, "w") as file:
        file.write(text)


class StackFiles:
    def __init__(self, settings: Settings, supervisor_log: str | None = None):
        self.settings = settings
        self.run_dir = settings.run_dir
        self.supervisor_conf = self.run_dir / "supervisord.conf"
        self.supervisor_log = Path(supervisor_log or self.run_dir / "logs" / "supervisord.log")

    def _render(self, template: str, target: Path, **extra: object) -> Path:
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

    def service_command(self, name: str) -> str:
        """The command line that runs one of the three services (here and in the images)."""
        return f"{VENV_BIN}/gunicorn -c {ROOT}/services/{name}/gunicorn.conf.py {name}.wsgi:app"

    def service_environment(self, name: str, n: int = 1) -> dict[str, str]:
        """The environment of instance ``n`` (from 1) of a service."""
        s = self.settings
        program = instance_program(name, n)
        env = {
            "PYTHONPATH": f"{ROOT}/services/common:{ROOT}/services/{name}",
            "PROMETHEUS_MULTIPROC_DIR": str(self.run_dir / "metrics" / program),
            "KAFKA_BOOTSTRAP_SERVERS": s.kafka_bootstrap,
            "REDIS_URL": s.redis_url,
            "REDIS_MODE": "cluster" if s.redis_masters else "single",
            "KAFKA_TOPIC_PARTITIONS": str(s.partitions),
            f"{name.upper()}_BIND": f"{s.host}:{s.port(name, n)}",
        }
        if name == "bridge":
            env["BRIDGE_INSTANCE_ID"] = f"local-{program}"  # its own static member id, as a StatefulSet's pod name
        if name in ("ingest", "stream"):
            env["SESSION_SECRET"] = self.session_secret()
        return {**env, **s.service_env}

    def session_secret(self) -> str:
        """The key ingest and stream sign session cookies with: SESSION_SECRET, or one made
        once per run directory (so a restart keeps the browsers' sessions)."""
        if os.environ.get("SESSION_SECRET"):
            return os.environ["SESSION_SECRET"]
        path = self.run_dir / "session-secret"
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            write_private(path, secrets.token_urlsafe(32))
        return path.read_text().strip()

    def programs(self) -> list[Program]:
        """What supervisord runs, in start order (it stops them in reverse)."""
        s = self.settings
        programs = []
        if not s.external_redis and s.redis_masters:
            for n, (port, bus) in enumerate(s.redis_nodes(), 1):
                programs.append(Program(node_program(n), node_command(
                    s.host, port, bus, self.run_dir / "redis" / node_program(n), s.redis_maxmemory)))
        elif not s.external_redis:
            # A cache without persistence, so a restart brings it back empty (the bridge
            # rebuilds); bounded as the chart's, and when full it refuses writes rather than
            # evict what the services need to be correct (they answer 503, failing closed).
            programs.append(Program(
                "redis",
                f"redis-server --bind {s.host} --port {s.redis_port} --save '' --appendonly no "
                f"--maxmemory {s.redis_maxmemory} --maxmemory-policy noeviction "
                f"--dir {self.run_dir}/redis --protected-mode yes",
            ))
        if not s.external_kafka:
            programs.append(Program(
                "kafka",
                shlex.join(kafka_node_command(
                    s.kafka_home, self.run_dir / "kafka",
                    metrics=f"{s.host}:{s.kafka_metrics_port}" if s.kafka_metrics_port else None)),
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

    def write_all(self) -> None:
        """The run directory's folders and every configuration file."""
        for sub in ("logs", "redis", "kafka", "nginx", "metrics"):
            (self.run_dir / sub).mkdir(parents=True, exist_ok=True)
        for n in range(1, 2 * self.settings.redis_masters + 1):
            (self.run_dir / "redis" / node_program(n)).mkdir(exist_ok=True)
        if not self.settings.external_kafka:
            self._render("kafka.properties", self.run_dir / "kafka" / "server.properties")
            shutil.copy(TEMPLATES / "log4j2.properties", self.run_dir / "kafka" / "log4j2.properties")
        self.write_nginx_conf()
        self.write_supervisor_conf()

    def write_nginx_conf(self) -> None:
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
                     body_deadline_s=str(s.body_deadline_s),
                     clear_trusted_user_header=f'proxy_set_header {trusted} "";' if trusted else "",
                     ingest_servers=servers["ingest"], stream_servers=servers["stream"])

    def write_supervisor_conf(self) -> None:
        """supervisord.conf, readable by its owner only: it holds the services' environment,
        the session key among it."""
        lines = [
            "[supervisord]",
            "nodaemon=true",
            f"logfile={self.supervisor_log}",
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
        for program in self.programs():
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
        write_private(self.supervisor_conf, "\n".join(lines) + "\n")
