"""The cluster's network and mount namespaces: held by one process (`sleep`, made by
`unshare`), recorded in the run directory's cluster.json with every program started in them
(with `nsenter`), and ended with all that runs in them and in the run's cgroup."""

import ctypes
import json
import os
import signal
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from cluster.cgroups import cgroup_pids, remove_cgroup
from cluster.layout import CGROUP_PREFIX, NODE_CIDR, ROOT, SERVICE_CIDR

State = dict[str, Any]  # cluster.json: holder, netns, processes {name: pid}, cgroup (with a node)


def netns(pid: int | str) -> int | None:
    """The identity (inode) of a process's network namespace, or None when it is gone."""
    try:
        return os.stat(f"/proc/{pid}/ns/net").st_ino
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None


def die_with_parent() -> None:
    """In a child before exec: be killed when the process that started it ends (prctl
    PR_SET_PDEATHSIG), so that a test run killed without its teardown leaves nothing behind."""
    PR_SET_PDEATHSIG = 1
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def _kill(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


def members(namespace: int, exclude: int | None = None) -> list[int]:
    """The processes whose network namespace is ``namespace``."""
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit() and int(entry) != exclude and netns(entry) == namespace:
            pids.append(int(entry))
    return pids


class Namespaces:
    def __init__(self, run_dir: Path, bin_dir: Path, kubeconfig: Path, die_with_me: bool = False):
        """die_with_me: every process started here is killed when this process ends."""
        self.run_dir = run_dir
        self.bin = bin_dir
        self.kubeconfig = kubeconfig
        self.logs = run_dir / "logs"
        self.state_file = run_dir / "cluster.json"
        self._preexec: Callable[[], None] | None = die_with_parent if die_with_me else None
        self._children: list[subprocess.Popen[bytes]] = []  # this process's starts, reaped by stop()

    def state(self) -> State | None:
        try:
            state: State = json.loads(self.state_file.read_text())
            return state
        except (FileNotFoundError, ValueError):
            return None

    def _save(self, state: State) -> None:
        self.state_file.write_text(json.dumps(state, indent=2) + "\n")

    def holder(self) -> int | None:
        """The pid holding the namespaces, if it is still the one this run made."""
        state = self.state()
        if state and netns(state["holder"]) == state["netns"] and state["netns"] != netns(os.getpid()):
            holder: int = state["holder"]
            return holder
        return None

    def inside(self, *args: object) -> list[str]:
        """The command line running args inside the cluster's network and mount namespaces."""
        pid = self.holder()
        if pid is None:
            raise RuntimeError(f"no cluster is running from {self.run_dir}")
        return ["nsenter", f"--target={pid}", "--net", "--mount", "--", *map(str, args)]

    def env(self) -> dict[str, str]:
        path = os.pathsep.join([str(self.bin), str(ROOT / ".cache" / "go" / "bin"), os.environ.get("PATH", ""),
                                "/usr/local/sbin", "/usr/sbin", "/sbin"])  # iptables, mount: kubelet, kube-proxy
        return {**os.environ, "KUBECONFIG": str(self.kubeconfig), "PATH": path}

    def run(self, *args: object, check: bool = True, input: str | None = None,
            timeout: float = 300) -> "subprocess.CompletedProcess[str]":
        """Runs a command inside the cluster's network (kubectl, helm: KUBECONFIG is set)."""
        result = subprocess.run(self.inside(*args), env=self.env(), input=input, capture_output=True,
                                text=True, timeout=timeout)
        if check and result.returncode != 0:
            raise RuntimeError(f"{' '.join(map(str, args))} failed ({result.returncode}):\n"
                               f"{result.stdout}\n{result.stderr}")
        return result

    def make(self, with_cgroup: bool) -> State:
        """Starts the holder: a process in a new network and mount namespace (mounts private),
        with the bridge cluster0 at NODE_CIDR, the route to SERVICE_CIDR through it; for a node,
        names the run's cgroup (Node makes it)."""
        holder = subprocess.Popen(
            ["unshare", "--net", "--mount", "--propagation", "private", "sleep", "infinity"],
            start_new_session=True, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL, preexec_fn=self._preexec)
        ours = netns(os.getpid())
        deadline = time.monotonic() + 10
        while netns(holder.pid) in (None, ours):
            if holder.poll() is not None or time.monotonic() > deadline:
                holder.kill()
                raise RuntimeError("unshare could not make a network namespace (root is needed)")
            time.sleep(0.05)
        state: State = {"holder": holder.pid, "netns": netns(holder.pid), "processes": {}}
        if with_cgroup:
            state["cgroup"] = f"{CGROUP_PREFIX}{holder.pid}"
        self._save(state)
        for cmd in (["ip", "link", "set", "lo", "up"],
                    ["ip", "link", "add", "cluster0", "type", "bridge"],
                    ["ip", "addr", "add", NODE_CIDR, "dev", "cluster0"],
                    ["ip", "link", "set", "cluster0", "up"],
                    # The Services' addresses are routed, as a node's default route routes them: a
                    # program on the node's network (kube-router's pod) reaches the API server at
                    # the Service `kubernetes` (kube-proxy's DNAT then sends it to NODE_IP).
                    ["ip", "route", "add", SERVICE_CIDR, "dev", "cluster0"]):
            subprocess.run(self.inside(*cmd), check=True)
        return state

    def spawn(self, name: str, args: Sequence[object]) -> "subprocess.Popen[bytes]":
        """Starts a program of the cluster inside the namespaces, logging to logs/<name>.log."""
        log = open(self.logs / f"{name}.log", "ab")
        proc = subprocess.Popen(self.inside(*args), stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True, env=self.env(),
                                preexec_fn=self._preexec)
        log.close()
        self._children.append(proc)
        state = self.state()
        assert state is not None, "spawn() after make()"
        state["processes"][name] = proc.pid
        self._save(state)
        return proc

    def stop(self, timeout: float = 30) -> State | None:
        """Ends every process in the cluster's network namespace, then what is left in the run's
        cgroup (the containers, in network namespaces of their own), then the holder; the
        namespaces (and the addresses and mounts in them) go with the last of them. Removes the
        run's cgroup and cluster.json; returns the state it ended (None: none was recorded)."""
        state = self.state()
        if state is None:
            return None
        namespace, holder = state["netns"], state["holder"]
        if namespace == netns(os.getpid()):
            raise RuntimeError("the recorded namespace is this process's own: refusing to stop")

        holder_alive = netns(holder) == namespace

        def in_namespace() -> list[int]:
            if holder_alive:
                return members(namespace, exclude=holder)
            # the holder is gone: only what this run started may be left
            return [pid for pid in state["processes"].values() if netns(pid) == namespace]

        cgroup = state.get("cgroup")

        def containers() -> list[int]:
            return cgroup_pids(cgroup) if cgroup else []

        # The containers first (a kubelet at work would restart some: they are ended again last).
        for group in (containers, in_namespace, containers):
            for sig, wait in ((signal.SIGTERM, timeout if group is in_namespace else 0), (signal.SIGKILL, 10)):
                for pid in group():
                    _kill(pid, sig)
                deadline = time.monotonic() + wait
                while group() and time.monotonic() < deadline:
                    time.sleep(0.2)
        if netns(holder) == namespace:
            _kill(holder, signal.SIGKILL)
            deadline = time.monotonic() + 10
            while netns(holder) == namespace and time.monotonic() < deadline:
                time.sleep(0.05)
        for child in self._children:
            child.poll()
        self._children.clear()
        left = in_namespace() + containers() + ([holder] if netns(holder) == namespace else [])
        if left:
            raise RuntimeError(f"processes left in the cluster's namespace or cgroup: {left}")
        if cgroup:
            remove_cgroup(cgroup)
        self.state_file.unlink()
        return state
