"""The redis chart's cluster-mode scripts, run as rendered against six local redis-server
nodes: start.sh (config, password, announced name, nodes.conf rewrite) and create.sh (the
Job's create-once). Each node stands for a pod: its own loopback address as its pod IP, its
own directories for /data, /etc/valkey and /run/valkey, and a `getent` that resolves the
pods' DNS names to the current addresses. The same port everywhere, as in the pods."""

import os
import random
import shutil
import signal
import socket
import subprocess
import time

import pytest
import yaml
from k8s_manifests import HELM_DIR, helm_template

NODES = 6
PASSWORD = "s3cret"
CLUSTER_OK_TIMEOUT_S = 20

pytestmark = pytest.mark.skipif(shutil.which("redis-server") is None, reason="needs redis-server")


def free_port_pair():
    """A port free on loopback with its bus port (port + 10000) free too."""
    for _ in range(50):
        port = random.randint(20000, 29999)
        try:
            for p in (port, port + 10000):
                with socket.socket() as s:
                    s.bind(("127.0.0.1", p))
        except OSError:
            continue
        return port
    raise AssertionError("no free port pair")


def alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


class Nodes:
    def __init__(self, root, port):
        self.root, self.port = root, port
        config = yaml.safe_load(helm_template(HELM_DIR / "redis", "redis", [
            "-f", "helm/redis/values-cluster.yaml", "--set", "image.repository=redis",
            "--set", f"port={port},cluster.busPort={port + 10000},cluster.nodeTimeoutMs=1000",
            "--show-only", "templates/cluster-configmap.yaml"]))["data"]
        self.bin = root / "bin"
        self.bin.mkdir()
        # The pods' DNS: redis-<n>.redis-headless... -> this run's address of node n.
        (self.bin / "getent").write_text(
            '#!/bin/sh\ncase "$2" in\n  redis-[0-9]*.*) n="${2#redis-}"; n="${n%%.*}"; '
            f'echo "$(cat {root}/net).$((n + 1)) $2";;\n  *) exit 2;;\nesac\n')
        # The image's server, daemonized here; its outgoing bus connections from its own address.
        (self.bin / "server").write_text(
            '#!/bin/sh\nsed -i "/^bind-source-addr/d; s/^bind .*/bind $MYIP\\nbind-source-addr $MYIP/" "$1"\n'
            'exec redis-server "$1" --daemonize yes --pidfile "$NODE_DIR/pid" --logfile "$NODE_DIR/log"\n')
        for tool in ("getent", "server"):
            (self.bin / tool).chmod(0o755)
        for n in range(NODES):
            node = root / f"node{n}"
            for sub in ("data", "run", "etc"):
                (node / sub).mkdir(parents=True)
            paths = {"/data": f"{node}/data", "/run/valkey": f"{node}/run", "/etc/valkey": f"{node}/etc"}
            (node / "etc" / "valkey.conf").write_text(self.localize(config["valkey.conf"], paths))
            start = self.localize(config["start.sh"], paths).replace("exec redis-server", f"exec {self.bin}/server")
            (node / "start.sh").write_text(start)
        (root / "create.sh").write_text(config["create.sh"])

    @staticmethod
    def localize(text, paths):
        for old, new in paths.items():
            text = text.replace(old, new)
        return text

    def env(self, **extra):
        return {**os.environ, "PATH": f"{self.bin}:{os.environ['PATH']}", "REDISCLI_AUTH": PASSWORD, **extra}

    def start(self, net):
        self.net = net
        (self.root / "net").write_text(net)
        for n in range(NODES):
            node = self.root / f"node{n}"
            subprocess.run(["sh", str(node / "start.sh")], check=True, timeout=10,
                           env=self.env(POD_NAME=f"redis-{n}", MYIP=f"{net}.{n + 1}", NODE_DIR=str(node)))

    def stop(self, sig=signal.SIGTERM):
        """All nodes at once (a primary told to stop waits up to 10 s for its replicas)."""
        pids = []
        for n in range(NODES):
            pid_file = self.root / f"node{n}" / "pid"
            if pid_file.exists():
                pid = int(pid_file.read_text())
                try:
                    os.kill(pid, sig)
                    pids.append(pid)
                except ProcessLookupError:
                    pass
        deadline = time.monotonic() + 15
        while pids and time.monotonic() < deadline:
            pids = [pid for pid in pids if alive(pid)]
            time.sleep(0.05)
        assert not pids, f"still running: {pids}"

    def cli(self, n, *args):
        return subprocess.run(["redis-cli", "-h", f"{self.net}.{n + 1}", "-p", str(self.port), *args],
                              capture_output=True, text=True, timeout=10, env=self.env()).stdout

    def on_owner(self, *command):
        """The command's answer from the node that serves its key (the others answer MOVED, to a
        DNS name this machine does not resolve)."""
        answers = [self.cli(n, *command).strip() for n in range(NODES)]
        return [a for a in answers if a and not a.startswith(("MOVED", "READONLY"))]

    def create(self):
        return subprocess.run(["sh", str(self.root / "create.sh")], capture_output=True, text=True,
                              timeout=60, env=self.env(), check=True).stdout

    def wait_ok(self):
        deadline = time.monotonic() + CLUSTER_OK_TIMEOUT_S
        while time.monotonic() < deadline:
            if all("cluster_state:ok" in self.cli(n, "cluster", "info") for n in range(NODES)):
                return
            time.sleep(0.1)
        raise AssertionError(f"cluster not ok after {CLUSTER_OK_TIMEOUT_S} s:\n{self.cli(0, 'cluster', 'nodes')}")


@pytest.fixture
def nodes(tmp_path):
    cluster = Nodes(tmp_path, free_port_pair())
    yield cluster
    cluster.stop(signal.SIGKILL)


def test_created_once_named_by_dns_and_back_after_every_pod_ip_changed(nodes):
    base = f"127.{random.randint(100, 250)}.{random.randint(0, 200)}"
    nodes.start(base)
    assert "All 16384 slots covered" in nodes.create()
    nodes.wait_ok()
    shards = nodes.cli(0, "cluster", "shards")
    assert "redis-0.redis-headless.chatroom.svc.cluster.local" in shards
    assert nodes.on_owner("set", "{p3}room", "kept") == ["OK"]
    # A second run (an upgrade's hook) creates nothing.
    assert "already knows other nodes: nothing to create" in nodes.create()
    # Without the password nothing answers; replicas authenticated to their primaries (masterauth).
    assert "NOAUTH" in subprocess.run(["redis-cli", "-h", f"{base}.1", "-p", str(nodes.port), "get", "x"],
                                      capture_output=True, text=True, env={"PATH": os.environ["PATH"]}).stdout
    roles = [nodes.cli(n, "role").split()[0] for n in range(NODES)]
    assert sorted(roles) == ["master"] * 3 + ["slave"] * 3
    # Every pod restarts with a new IP: same identities, the cluster forms again, data kept.
    ids = {nodes.cli(n, "cluster", "myid").strip() for n in range(NODES)}
    time.sleep(1.1)  # appendfsync everysec
    nodes.stop()
    nodes.start(f"{base[:-len(base.split('.')[-1])]}{int(base.split('.')[-1]) + 1}")
    nodes.wait_ok()
    assert {nodes.cli(n, "cluster", "myid").strip() for n in range(NODES)} == ids
    assert nodes.on_owner("get", "{p3}room") == ["kept"]
