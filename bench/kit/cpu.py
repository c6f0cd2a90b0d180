"""CPU time and memory of processes, read from /proc through psutil: one process or a process
with its descendants (a gunicorn master and its workers, nginx and its worker), read once
(``times``, before and after what is measured) or sampled while a scenario runs (``Monitor``).

CPU time is user + system, in seconds; a process that exits between two readings drops out
of the later one (the monitor keeps its last reading)."""

import os
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import psutil


def tree(pid: int) -> list[psutil.Process]:
    """A process and all its descendants (a gunicorn master and its workers, nginx and its worker)."""
    try:
        root = psutil.Process(pid)
        return [root] + root.children(recursive=True)
    except psutil.NoSuchProcess:
        return []


@dataclass(frozen=True)
class Times:
    """CPU seconds (user, system) and context switches (voluntary + involuntary)."""

    user: float = 0.0
    system: float = 0.0
    switches: int = 0

    @property
    def cpu(self) -> float:
        return self.user + self.system

    def __add__(self, other: "Times") -> "Times":
        return Times(self.user + other.user, self.system + other.system, self.switches + other.switches)

    def __sub__(self, other: "Times") -> "Times":
        return Times(self.user - other.user, self.system - other.system, self.switches - other.switches)


def process_times(proc: psutil.Process) -> Times:
    """One process's CPU seconds and context switches (zero if it is gone)."""
    try:
        with proc.oneshot():
            cpu, ctx = proc.cpu_times(), proc.num_ctx_switches()
    except psutil.NoSuchProcess:
        return Times()
    return Times(cpu.user, cpu.system, ctx.voluntary + ctx.involuntary)


def times(pids: Iterable[int], children: bool = True) -> Times:
    """The CPU seconds of ``pids``, each with its descendants unless ``children`` is false."""
    total = Times()
    for pid in pids:
        for proc in tree(pid) if children else [psutil.Process(pid)]:
            total += process_times(proc)
    return total


def snapshot(groups: Mapping[str, int]) -> dict[str, Times]:
    """``times`` of each group (name -> root pid)."""
    return {name: times([pid]) for name, pid in groups.items()}


def used(before: Mapping[str, Times], after: Mapping[str, Times]) -> dict[str, float]:
    """CPU seconds each group used between two snapshots."""
    return {name: (after[name] - before[name]).cpu for name in before}


def jit_seconds(pid: int) -> float:
    """CPU seconds a JVM's compiler threads used so far (HotSpot's "C1/C2 CompilerThread<n>",
    cut to 15 characters in /proc): a broker started a minute ago spends about half of its CPU
    at 200 msg/s compiling (bench/README.md, the broker's cost per message)."""
    total = 0.0
    try:
        for thread in psutil.Process(pid).threads():
            with open(f"/proc/{pid}/task/{thread.id}/comm") as comm:
                if comm.read().startswith(("C1 CompilerThre", "C2 CompilerThre")):
                    total += thread.user_time + thread.system_time
    except (psutil.NoSuchProcess, FileNotFoundError):
        pass
    return total


def rss_bytes(pids: Iterable[int]) -> int:
    """Resident memory of ``pids`` and their descendants."""
    total = 0
    for pid in pids:
        for proc in tree(pid):
            try:
                total += proc.memory_info().rss
            except psutil.NoSuchProcess:
                pass
    return total


class Monitor:
    """Samples ``groups`` (name -> root pid) every ``interval`` s in a thread.

    The result gives, per group: CPU seconds used during the window (summed over the
    processes of the group, including ones that started meanwhile), mean and peak CPU
    (in cores), mean and peak RSS; the same for the load generator; and the whole
    machine's busy cores, so that load from anything else shows up.
    """

    RESCAN_S = 5.0

    def __init__(self, groups: Mapping[str, int], interval: float = 0.5, loadgen_pid: int | None = None):
        self.groups = dict(groups)
        # The load generator: its own process (kit/loadgen.py starts it), or this one.
        self.groups["loadgen"] = loadgen_pid or os.getpid()
        self.interval = interval
        self._scanned_at = 0.0
        self._procs: dict[tuple[str, int], psutil.Process] = {}
        self._start_cpu: dict[tuple[str, int], float] = {}
        self._last_cpu: dict[tuple[str, int], float] = {}
        self.samples: list[tuple[float, dict[str, tuple[float, int]], float]] = []  # (t, {group: (cores, rss)}, busy)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._t0 = 0.0
        self._machine0: Any = None
        self._load0 = (0.0, 0.0, 0.0)

    def _scan(self) -> dict[tuple[str, int], psutil.Process]:
        # Listing children reads all of /proc: do it every few seconds, not every sample
        # (a gunicorn worker that is replaced shows up at the next scan).
        now = time.monotonic()
        if self._procs and now - self._scanned_at < self.RESCAN_S:
            return self._procs
        self._scanned_at = now
        seen = {}
        for name, pid in self.groups.items():
            procs = tree(pid) if name != "loadgen" else [psutil.Process(pid)]
            for proc in procs:
                key = (name, proc.pid)
                seen[key] = self._procs.get(key, proc)
        self._procs = seen
        return seen

    def _read(self) -> tuple[dict[tuple[str, int], float], dict[str, int]]:
        cpu: dict[tuple[str, int], float] = {}
        rss: dict[str, int] = {}
        for (name, pid), proc in list(self._scan().items()):
            try:
                with proc.oneshot():
                    times_ = proc.cpu_times()
                    c = times_.user + times_.system
                    m = proc.memory_info().rss
            except psutil.NoSuchProcess:
                continue
            self._last_cpu[(name, pid)] = c
            cpu[(name, pid)] = c
            rss[name] = rss.get(name, 0) + m
        return cpu, rss

    def start(self) -> "Monitor":
        self._t0 = time.monotonic()
        self._machine0 = psutil.cpu_times()
        self._load0 = os.getloadavg()
        cpu, _ = self._read()
        self._start_cpu = dict(cpu)
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        prev_cpu, prev_t = dict(self._start_cpu), time.monotonic()
        prev_machine = psutil.cpu_times()
        while not self._stop.wait(self.interval):
            cpu, rss = self._read()
            now = time.monotonic()
            dt = max(now - prev_t, 1e-6)
            per_group: dict[str, float] = {}
            for key, c in cpu.items():
                name = key[0]
                per_group[name] = per_group.get(name, 0.0) + (c - prev_cpu.get(key, 0.0)) / dt
            machine = psutil.cpu_times()
            self.samples.append((now - self._t0, {n: (per_group.get(n, 0.0), rss.get(n, 0)) for n in self.groups},
                                 _busy_cores(prev_machine, machine)))
            prev_cpu, prev_t, prev_machine = cpu, now, machine

    def stop(self) -> dict[str, Any]:
        self._stop.set()
        if self._thread:
            self._thread.join()
        cpu, rss_now = self._read()
        elapsed = time.monotonic() - self._t0
        groups: dict[str, Any] = {}
        result = {"seconds": elapsed, "groups": groups, "load_avg_start": self._load0,
                  "load_avg_end": os.getloadavg(),
                  "machine_busy_cores": _busy_cores(self._machine0, psutil.cpu_times())}
        for name in self.groups:
            spent = sum(c - self._start_cpu.get(key, 0.0) for key, c in self._last_cpu.items() if key[0] == name)
            cores = [s[1][name][0] for s in self.samples if name in s[1]]
            rss = [s[1][name][1] for s in self.samples if name in s[1]] or [rss_now.get(name, 0)]
            groups[name] = {
                "cpu_seconds": spent,
                "cpu_cores_mean": spent / elapsed if elapsed > 0 else 0.0,
                "cpu_cores_peak": max(cores) if cores else 0.0,
                "rss_mean_bytes": sum(rss) / len(rss),
                "rss_peak_bytes": max(rss),
                "processes": sum(1 for key in self._last_cpu if key[0] == name),
            }
        result["timeline"] = [
            {"t": round(t, 2), "machine_cores": round(m, 3),
             **{n: {"cores": round(c, 3), "rss": r} for n, (c, r) in g.items()}}
            for t, g, m in self.samples
        ]
        return result


def _busy_cores(before: Any, after: Any) -> float:
    """The machine's busy cores between two ``psutil.cpu_times()`` readings."""
    busy = _busy(after) - _busy(before)
    total = sum(after) - sum(before)
    return (psutil.cpu_count() or 1) * busy / total if total > 0 else 0.0


def _busy(times_: Any) -> float:
    """The busy CPU seconds in a ``psutil.cpu_times()`` reading (neither idle nor waiting for I/O)."""
    return float(sum(times_) - times_.idle - getattr(times_, "iowait", 0.0))
