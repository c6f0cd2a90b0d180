"""The local stack: Kafka (KRaft), Redis, the three services and an nginx gateway, kept
running by supervisord, which restarts any process that dies and logs that it did.

    python local/stack.py          # what `make run` does; Ctrl-C stops everything

Tests use the same code (``Stack``) with their own ports and run directory.
Every setting is an environment variable; see ``Settings`` and the README.
"""

import argparse
import signal
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import FrameType

from local import redis_cluster
from local.kafka_node import create_topic, format_storage, kafka_cluster_id, kafka_format_command, kafka_node_command
from local.rendering import StackFiles
from local.settings import (
    KAFKA_HOME,
    ROOT,
    SERVICES,
    TEMPLATES,
    VENV_BIN,
    Settings,
    env_or,
    instance_program,
    parse_replicas,
)
from local.supervision import Supervisor, say

# What the tests, the benchmark and local/prometheus.py take from here.
__all__ = ["KAFKA_HOME", "ROOT", "SERVICES", "TEMPLATES", "VENV_BIN", "Settings", "Stack", "instance_program",
           "kafka_cluster_id", "kafka_format_command", "kafka_node_command", "parse_replicas"]


class Stack:
    def __init__(self, settings: Settings, supervisor_log: str | None = None, echo: bool = False):
        self.settings = settings
        self.run_dir = settings.run_dir
        # supervisor_log, None: logs/supervisord.log in the run directory
        self.files = StackFiles(settings, supervisor_log)
        self.supervisor = Supervisor(self.files.supervisor_conf, self.files.supervisor_log, echo)

    # -- configuration -----------------------------------------------------------------

    def service_command(self, name: str) -> str:
        """The command line that runs one of the three services (here and in the images)."""
        return self.files.service_command(name)

    def service_environment(self, name: str, n: int = 1) -> dict[str, str]:
        """The environment of instance ``n`` (from 1) of a service."""
        return self.files.service_environment(name, n)

    def prepare(self) -> None:
        s = self.settings
        if not s.external_kafka and not (s.kafka_home / "libs").is_dir():
            raise SystemExit("The Kafka broker is not installed: run scripts/install.sh (make run does).")
        self.files.write_all()
        if not s.external_kafka:
            format_storage(s.kafka_home, self.run_dir / "kafka")

    # -- running ---------------------------------------------------------------------------

    def start(self, timeout: float = 180) -> "Stack":
        self.prepare()
        self.supervisor.start()
        try:
            if self.settings.redis_masters and not self.settings.external_redis:
                redis_cluster.form(self.settings.host, [port for port, _ in self.settings.redis_nodes()],
                                   self.supervisor.check_alive)
            self.create_topic(timeout)
            self.wait_ready(timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def create_topic(self, timeout: float) -> None:
        create_topic(self.settings.kafka_bootstrap, env_or("KAFKA_TOPIC", "chat.messages"), self.settings.partitions,
                     timeout, self.supervisor.check_alive)
        # Private rooms and their members: the latest record per key is the state (compacted),
        # one partition so that all of it has one order.
        create_topic(self.settings.kafka_bootstrap, env_or("KAFKA_ROOMS_TOPIC", "chat.rooms"), 1,
                     timeout, self.supervisor.check_alive, {"cleanup.policy": "compact"})

    def wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        urls = [url + "/readyz" for name in SERVICES for url in self.settings.service_urls(name)]
        urls.append(self.settings.gateway_url + "/")
        for url in urls:
            while True:
                self.supervisor.check_alive()
                if _answers_ok(url):
                    break
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{url} not ready after {timeout} s; see {self.run_dir}/logs/")
                time.sleep(0.2)

    def stop(self) -> None:
        self.supervisor.stop()

    # -- acting on programs, as Kubernetes acts on pods ---------------------------------------

    def ctl(self, *args: str) -> str:
        """Run a supervisorctl command (stop kafka, start redis, pid bridge, ...)."""
        return self.supervisor.ctl(*args)

    def pid(self, name: str) -> int:
        return self.supervisor.pid(name)

    def kill(self, name: str, sig: int = signal.SIGKILL) -> None:
        """Kill a program's whole process group, as a crashed pod dies (supervisord restarts
        it). ``name``: a program, e.g. ``bridge``, or ``bridge-2`` for the second instance."""
        self.supervisor.kill(name, sig)

    def kill_instance(self, name: str, n: int, sig: int = signal.SIGKILL) -> None:
        """Kill instance ``n`` (from 1) of a service (supervisord restarts it)."""
        self.kill(instance_program(name, n), sig)

    def lose(self, program: str, timeout: float = 30) -> None:
        """Kill a program and keep it down, as a lost node's pod (``Supervisor.lose``);
        ``ctl("start", program)`` brings it back."""
        self.supervisor.lose(program, timeout)

    def restart_instance(self, name: str, n: int) -> None:
        """Stop instance ``n`` of a service as a pod is stopped (SIGTERM: it drains or leaves
        in order), then start it again: one step of a rolling restart."""
        program = instance_program(name, n)
        result = self.ctl("restart", program)
        if f"{program}: started" not in result:
            raise RuntimeError(f"restarting {program}: {result}")

    def scale(self, name: str, count: int, timeout: float = 120) -> None:
        """Run ``count`` instances of a service from now on, as ``kubectl scale`` does: new
        instances start and join the gateway once ready; removed ones (the highest numbers)
        leave the gateway first, then stop with SIGTERM."""
        before = self.settings.replicas[name]
        self.settings.replicas[name] = count
        behind_gateway = name in ("ingest", "stream")
        if count < before and behind_gateway:
            self._reload_gateway()
        self.files.write_supervisor_conf()
        self.ctl("update")  # starts the programs added, stops and forgets the ones removed
        if count > before:
            self.wait_ready(timeout)
            if behind_gateway:
                self._reload_gateway()

    def _reload_gateway(self) -> None:
        """Render the gateway's configuration for the instances now wanted and have nginx load
        it; returns once a worker with the new upstreams runs (the old ones finish their
        open streams)."""
        self.files.write_nginx_conf()
        master = self.pid("nginx")
        before = _children(master)
        self.ctl("signal", "HUP", "nginx")
        deadline = time.monotonic() + 30
        while not _children(master) - before:
            if time.monotonic() > deadline:
                raise TimeoutError(f"nginx did not reload; see {self.run_dir}/logs/nginx-error.log")
            time.sleep(0.05)


def _children(pid: int) -> set[str]:
    """The process ids of ``pid``'s children (Linux)."""
    return set(Path(f"/proc/{pid}/task/{pid}/children").read_text().split())


def _answers_ok(url: str) -> bool:
    """Whether ``url`` answers 200 now (the runner needs only the standard library)."""
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return bool(response.status == 200)
    except (OSError, urllib.error.URLError):
        return False


def main() -> None:
    # No options: every setting is an environment variable (README). --help says so.
    argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter).parse_args()
    settings = Settings.from_env()
    stack = Stack(settings, echo=True)

    def on_sigterm(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt  # stop as on Ctrl-C

    signal.signal(signal.SIGTERM, on_sigterm)
    try:
        say(f"Starting the stack (logs in {stack.run_dir}/logs/)...")
        stack.start()
        say(f"\nChatroom is running: {settings.gateway_url}\n(Ctrl-C stops it)\n")
        stack.supervisor.wait()
    except KeyboardInterrupt:
        # The interrupted wait has let go of the process; stop() may wait on it again.
        say("\nStopping the stack...")
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not cut the stop short
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        stack.stop()


if __name__ == "__main__":
    main()
