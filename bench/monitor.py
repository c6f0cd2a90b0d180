"""CPU and memory of every process of a stack, sampled while a scenario runs (psutil)."""

import os
import threading
import time

import psutil


def tree(pid):
    """A process and all its descendants (a gunicorn master and its workers, nginx and its worker)."""
    try:
        root = psutil.Process(pid)
        return [root] + root.children(recursive=True)
    except psutil.NoSuchProcess:
        return []


def rss_bytes(pids):
    total = 0
    for pid in pids:
        for proc in tree(pid):
            try:
                total += proc.memory_info().rss
            except psutil.NoSuchProcess:
                pass
    return total


def _cpu_seconds(proc):
    times = proc.cpu_times()
    return times.user + times.system


class Monitor:
    """Samples ``groups`` (name -> root pid) every ``interval`` s in a thread.

    The result gives, per group: CPU seconds used during the window (summed over the
    processes of the group, including ones that started meanwhile), mean and peak CPU
    (in cores), mean and peak RSS; the same for the load generator; and the whole
    machine's busy cores, so that load from anything else shows up.
    """

    def __init__(self, groups, interval=0.5, loadgen_pid=None):
        self.groups = dict(groups)
        # The load generator: its own process (bench/loadgen.py starts it), or this one.
        self.groups["loadgen"] = loadgen_pid or os.getpid()
        self.interval = interval
        self.rescan_s = 5.0
        self._scanned_at = 0.0
        self._procs = {}  # (group, pid) -> Process
        self._start_cpu = {}
        self._last_cpu = {}
        self.samples = []  # (t, {group: (cores, rss)}, machine busy cores)
        self._stop = threading.Event()
        self._thread = None

    def _scan(self):
        # Listing children reads all of /proc: do it every few seconds, not every sample
        # (a gunicorn worker that is replaced shows up at the next scan).
        now = time.monotonic()
        if self._procs and now - self._scanned_at < self.rescan_s:
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

    def _read(self):
        cpu, rss = {}, {}
        for (name, pid), proc in list(self._scan().items()):
            try:
                with proc.oneshot():
                    c = _cpu_seconds(proc)
                    m = proc.memory_info().rss
            except psutil.NoSuchProcess:
                continue
            self._last_cpu[(name, pid)] = c
            cpu[(name, pid)] = c
            rss[name] = rss.get(name, 0) + m
        return cpu, rss

    def start(self):
        self._t0 = time.monotonic()
        self._machine0 = psutil.cpu_times()
        self._load0 = os.getloadavg()
        cpu, _ = self._read()
        self._start_cpu = dict(cpu)
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def _run(self):
        prev_cpu, prev_t = dict(self._start_cpu), time.monotonic()
        prev_machine = psutil.cpu_times()
        while not self._stop.wait(self.interval):
            cpu, rss = self._read()
            now = time.monotonic()
            dt = max(now - prev_t, 1e-6)
            per_group = {}
            for key, c in cpu.items():
                name = key[0]
                per_group[name] = per_group.get(name, 0.0) + (c - prev_cpu.get(key, 0.0)) / dt
            machine = psutil.cpu_times()
            busy = _busy(machine) - _busy(prev_machine)
            total = sum(machine) - sum(prev_machine)
            self.samples.append((now - self._t0, {n: (per_group.get(n, 0.0), rss.get(n, 0)) for n in self.groups},
                                 psutil.cpu_count() * busy / total if total > 0 else 0.0))
            prev_cpu, prev_t, prev_machine = cpu, now, machine

    def stop(self):
        self._stop.set()
        if self._thread:
            self._thread.join()
        cpu, rss_now = self._read()
        elapsed = time.monotonic() - self._t0
        machine = psutil.cpu_times()
        busy = _busy(machine) - _busy(self._machine0)
        total = sum(machine) - sum(self._machine0)
        result = {"seconds": elapsed, "groups": {}, "load_avg_start": self._load0, "load_avg_end": os.getloadavg(),
                  "machine_busy_cores": psutil.cpu_count() * busy / total if total > 0 else 0.0}
        for name in self.groups:
            used = sum(c - self._start_cpu.get(key, 0.0) for key, c in self._last_cpu.items() if key[0] == name)
            cores = [s[1][name][0] for s in self.samples if name in s[1]]
            rss = [s[1][name][1] for s in self.samples if name in s[1]] or [rss_now.get(name, 0)]
            result["groups"][name] = {
                "cpu_seconds": used,
                "cpu_cores_mean": used / elapsed if elapsed > 0 else 0.0,
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


def _busy(times):
    return sum(times) - times.idle - getattr(times, "iowait", 0.0)
