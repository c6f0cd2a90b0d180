"""The load generator's CPU per delivery, in the fan-out stage through the gateway: the
local stack (bench/stacks.py), the bridge's own script publishing into Redis (as
``ours-fanout`` in the benchmark), the stream service, nginx, and one or more load
generator binaries, measured in turn against the same stack.

    .venv/bin/python bench/profiles/loadgen_cpu.py [--binary PATH ...] [--pairs 3]
        [--readers 2000] [--rooms 20] [--rate 200] [--seconds 20] [--cpuprofile DIR]
        [--gateway URL]

Each ``--binary`` (default: the one bench/tools.sh builds from this checkout) runs as its own
process with its own readers in rooms of its own, all opened first; then the steps alternate
binary by binary, ``--pairs`` rounds, each the benchmark's fan-out step (``--rate``
messages/s over the rooms for ``--seconds``, then the wait until every reader has them).
Per step: the process's CPU time (user + system) over the step, the deliveries, CPU per
delivery, lost / duplicate / reordered, latency p50 / p99 and the load average.
``--cpuprofile DIR`` has each binary write a Go CPU profile of its run
(``LOADGEN_CPUPROFILE``; read it with ``go tool pprof``). ``--gateway URL`` drives a system
already running there instead (the project's HTTP API: readers and POSTs through it).

Prints one JSON object per step as it goes, then a summary. On a shared machine the figures
move with its load: compare binaries within a round, over several rounds.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil
import redis

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from bench import loadgen, report  # noqa: E402
from bench.run import _bridge_publish, _wait_history_ready, raise_fd_limit  # noqa: E402
from bench.stacks import OursStack  # noqa: E402


class Generator:
    """One load generator process, driven as bench/loadgen.py drives it."""

    def __init__(self, binary, profile=None):
        env = dict(os.environ)
        if profile:
            env["LOADGEN_CPUPROFILE"] = profile
        self.binary = binary
        self.proc = subprocess.Popen([binary], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                                     bufsize=1, env=env)
        self.ps = psutil.Process(self.proc.pid)

    def call(self, cmd, **arg):
        self.proc.stdin.write(json.dumps({"cmd": cmd, "arg": arg}) + "\n")
        self.proc.stdin.flush()
        reply = json.loads(self.proc.stdout.readline())
        if not reply["ok"]:
            raise RuntimeError(f"{self.binary}: {cmd}: {reply['error']}")
        return reply.get("result")

    def cpu(self):
        t = self.ps.cpu_times()
        return t.user + t.system

    def stop(self):
        try:
            self.call("stop")
        finally:
            self.proc.wait(timeout=60)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--binary", action="append", help="a load generator binary (repeat to compare)")
    ap.add_argument("--pairs", type=int, default=3)
    ap.add_argument("--readers", type=int, default=2000)
    ap.add_argument("--rooms", type=int, default=20)
    ap.add_argument("--rate", type=float, default=200)
    ap.add_argument("--seconds", type=float, default=20)
    ap.add_argument("--cpuprofile", help="a directory: each binary writes <index>.pprof there")
    ap.add_argument("--gateway", help="a running system's base URL (kind ours) instead of a stack of its own")
    args = ap.parse_args()
    binaries = args.binary or [loadgen.binary()]
    fd_soft = raise_fd_limit()[0]
    stack = None
    if args.gateway:
        target = loadgen.Target("ours", args.gateway, "ours").as_json()
    else:
        run_dir = Path(tempfile.mkdtemp(prefix="loadgen-cpu-"))
        nginx_connections = max(8192, min(40000, fd_soft - 1000))
        stack = OursStack(run_dir / "stack", nginx_connections=nginx_connections)
        stack.start(timeout=240)
    generators = []
    steps = []
    try:
        if stack is not None:
            r = redis.Redis.from_url(stack.settings.redis_url)
            _wait_history_ready(r, stack.settings.partitions, lambda m: print(m, file=sys.stderr), timeout=120)
            target = loadgen.Target("ours-fanout", stack.settings.gateway_url, "ours-redis",
                                    redis=_bridge_publish(stack.settings)).as_json()
        sets = []
        for i, binary in enumerate(binaries):
            profile = str(Path(args.cpuprofile) / f"{i}.pprof") if args.cpuprofile else None
            if profile:
                Path(args.cpuprofile).mkdir(parents=True, exist_ok=True)
            g = Generator(binary, profile)
            generators.append(g)
            rooms = [f"lg{i}-{k}" for k in range(args.rooms)]
            status = g.call("open", target=target, rooms=rooms, clients=args.readers, concurrency=200)
            if status["failed"]:
                raise RuntimeError(f"{binary}: {status['failed']} readers failed: {status['errors']}")
            sets.append(status["set"])
            # Warm up: one message per room until every reader has it.
            g.call("step", set=status["set"], rate=args.rooms, duration=1, sender_base=1_000_000)
            g.call("quiesce", set=status["set"], quiet_s=1, timeout=30)
            g.call("reset", set=status["set"])
        base = 2_000_000
        for round_ in range(args.pairs):
            for i, g in enumerate(generators):
                g.call("quiesce", set=sets[i], quiet_s=1, timeout=30)
                g.call("reset", set=sets[i])
                cpu0, t0 = g.cpu(), time.monotonic()
                step = g.call("step", set=sets[i], rate=args.rate, duration=args.seconds, sender_base=base)
                cpu = g.cpu() - cpu0
                wall = time.monotonic() - t0
                base += 100_000
                latency = report.quantiles(step["latency_send_ms"])
                row = {
                    "round": round_, "binary": g.binary, "cpu_s": round(cpu, 3), "wall_s": round(wall, 2),
                    "received": step["received"], "expected": step["expected_deliveries"],
                    "us_per_delivery": round(cpu / step["received"] * 1e6, 2) if step["received"] else None,
                    "cores": round(cpu / wall, 3),
                    "lost": step["lost"], "duplicates": step["duplicates"], "reordered": step["reordered"],
                    "dropped": step["readers_dropped"],
                    # (binaries from before these counters have none)
                    "batches": step.get("poll_batches"), "reads": step.get("socket_reads"),
                    "stamped": step.get("stamped_reads"),
                    "p50_ms": latency and latency["p50"], "p99_ms": latency and latency["p99"],
                    "loadavg": os.getloadavg(),
                }
                steps.append(row)
                print(json.dumps(row), flush=True)
    finally:
        for g in generators:
            try:
                g.stop()
            except Exception as exc:  # noqa: BLE001 - report and go on stopping the rest
                print(f"stopping {g.binary}: {exc}", file=sys.stderr)
        if stack is not None:
            stack.stop()
    summary = {}
    for binary in binaries:
        mine = [s["us_per_delivery"] for s in steps if s["binary"] == binary and s["us_per_delivery"]]
        summary[binary] = {"us_per_delivery": mine, "mean": round(sum(mine) / len(mine), 2) if mine else None}
    print(json.dumps({"summary": summary}, indent=1))


if __name__ == "__main__":
    main()
