"""Redis Cluster for the local stack (``STACK_REDIS=cluster:<masters>``): ``masters`` primaries
with one replica each, Debian's redis-server in cluster mode, each a supervisord program
(``redis-1`` ... ``redis-<2 * masters>``), formed into one cluster by ``redis-cli --cluster
create`` once they run. Without persistence, as the single node: a node that comes back
empty rejoins (its nodes.conf keeps who it is) as the replica of the one that took over.
"""

import shlex
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

# A primary not heard from for this long is failed, and its replica elected (about 1 s more:
# Redis waits 500 ms plus up to 500 ms at random, plus 1 s per replica rank, before an election).
# 1 s locally, so a failover is over within 3 s; the chart's default is Redis's own 15 s.
NODE_TIMEOUT_MS = 1000
FORM_TIMEOUT_S = 60.0
# A node started again (its nodes.conf is there) waits this long first, as a restarted pod
# takes seconds: by then its replica has taken its slots over, and it joins as the replica.
# Back sooner, it would take its slots back empty (no persistence): its partitions' history
# would be rebuilt from Kafka rather than kept by the replica.
RESTART_DELAY_S = 3


def parse_mode(text: str | None) -> int:
    """The number of primaries ``STACK_REDIS`` asks for: 0 for one node (``single``, unset),
    else ``cluster:<masters>`` with at least 3 (Redis Cluster's minimum for a majority)."""
    if not text or text == "single":
        return 0
    kind, _, count = text.partition(":")
    if kind != "cluster" or not count.isdigit() or int(count) < 3:
        raise ValueError(f"STACK_REDIS: {text!r} is neither 'single' nor 'cluster:<masters>' with at least 3")
    return int(count)


def node_program(n: int) -> str:
    return f"redis-{n}"


def node_command(host: str, port: int, bus_port: int, folder: Path, maxmemory: str) -> str:
    server = _server_command(host, port, bus_port, folder, maxmemory)
    return shlex.join(["sh", "-c", f"if [ -s {folder}/nodes.conf ]; then sleep {RESTART_DELAY_S}; fi; exec {server}"])


def _server_command(host: str, port: int, bus_port: int, folder: Path, maxmemory: str) -> str:
    """One node: as the single one (no persistence, bounded, refusing writes when full), in
    cluster mode. ``cluster-require-full-coverage no``: while a shard has no primary, the
    others keep answering for their slots (their rooms do not pause).
    ``rdb-del-sync-files yes``: a replica's full sync leaves the primary's snapshot in its
    folder as dump.rdb, and without it a node restarted after it was promoted loaded that
    snapshot, seconds or hours old: its partitions looked applied up to an old offset, the
    messages since missing from history, and no rebuild from Kafka."""
    return (f"redis-server --bind {host} --port {port} --save '' --appendonly no --rdb-del-sync-files yes "
            f"--maxmemory {maxmemory} --maxmemory-policy noeviction --dir {folder} --protected-mode yes "
            f"--cluster-enabled yes --cluster-port {bus_port} --cluster-config-file {folder}/nodes.conf "
            f"--cluster-node-timeout {NODE_TIMEOUT_MS} --cluster-require-full-coverage no "
            f"--cluster-allow-reads-when-down no")


def _cli(host: str, port: int, *args: str) -> str:
    return subprocess.run(["redis-cli", "-h", host, "-p", str(port), *args], capture_output=True, text=True,
                          timeout=30, check=False).stdout


def cluster_ok(host: str, ports: list[int]) -> bool:
    """Every node sees the cluster whole: all slots served, and as many nodes as started."""
    for port in ports:
        info = _cli(host, port, "cluster", "info")
        if "cluster_state:ok" not in info or f"cluster_known_nodes:{len(ports)}" not in info:
            return False
    return True


def form(host: str, ports: list[int], check_alive: Callable[[], None], timeout: float = FORM_TIMEOUT_S) -> None:
    """Join the nodes on ``ports`` into one cluster (primaries first, one replica each), unless
    they are one already (a stack started again on its run directory), and wait until every
    node sees all slots served."""
    deadline = time.monotonic() + timeout
    while any(_cli(host, port, "ping").strip() != "PONG" for port in ports):  # create needs every one
        check_alive()
        if time.monotonic() > deadline:
            raise TimeoutError("the Redis cluster's nodes did not start")
        time.sleep(0.1)
    if "cluster_state:ok" not in _cli(host, ports[0], "cluster", "info"):
        created = subprocess.run(
            ["redis-cli", "--cluster", "create", *(f"{host}:{p}" for p in ports), "--cluster-replicas", "1",
             "--cluster-yes"], capture_output=True, text=True, timeout=timeout, check=False)
        if created.returncode != 0:
            raise RuntimeError(f"redis-cli --cluster create failed: {created.stdout}{created.stderr}")
    wait_whole(host, ports, check_alive, deadline)


def wait_whole(host: str, ports: list[int], check_alive: Callable[[], None], deadline: float) -> None:
    """Wait until every node on ``ports`` sees the cluster whole (``cluster_ok``), at the latest
    until ``deadline`` (``time.monotonic()``)."""
    started = time.monotonic()
    while not cluster_ok(host, ports):
        check_alive()
        if time.monotonic() > deadline:
            raise TimeoutError(f"the Redis cluster on {ports} is not whole after {time.monotonic() - started:.0f} s")
        time.sleep(0.1)
