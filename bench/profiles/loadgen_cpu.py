"""The load generator's CPU per delivery, in the fan-out stage through the gateway: the
local stack (bench/kit/stacks.py), the bridge's own script publishing into Redis (as
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
import contextlib
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.kit import cpu, loadgen, stacks, stats
from bench.kit.fanout import bridge_publisher


def open_readers(generator: loadgen.Process, index: int, target: dict[str, Any], args: argparse.Namespace) -> int:
    """The generator's readers in rooms of its own, warmed up (one message per room until every
    reader has it); the id of their set."""
    rooms = [f"lg{index}-{k}" for k in range(args.rooms)]
    status = generator.call("open", target=target, rooms=rooms, clients=args.readers, concurrency=200)
    if status["failed"]:
        raise RuntimeError(f"{generator.binary}: {status['failed']} readers failed: {status['errors']}")
    readers: int = status["set"]
    generator.call("step", set=readers, rate=args.rooms, duration=1, sender_base=1_000_000)
    generator.call("quiesce", set=readers, quiet_s=1, timeout=30)
    generator.call("reset", set=readers)
    return readers


def measure_step(generator: loadgen.Process, readers: int, round_: int, base: int,
                 args: argparse.Namespace) -> dict[str, Any]:
    """One fan-out step: the generator's CPU over it, per delivery."""
    generator.call("quiesce", set=readers, quiet_s=1, timeout=30)
    generator.call("reset", set=readers)
    cpu0, t0 = cpu.times([generator.pid], children=False).cpu, time.monotonic()
    step = generator.call("step", set=readers, rate=args.rate, duration=args.seconds, sender_base=base)
    used = cpu.times([generator.pid], children=False).cpu - cpu0
    wall = time.monotonic() - t0
    latency = stats.quantiles(step["latency_send_ms"])
    return {
        "round": round_, "binary": generator.binary, "cpu_s": round(used, 3), "wall_s": round(wall, 2),
        "received": step["received"], "expected": step["expected_deliveries"],
        "us_per_delivery": round(used / step["received"] * 1e6, 2) if step["received"] else None,
        "cores": round(used / wall, 3),
        "lost": step["lost"], "duplicates": step["duplicates"], "reordered": step["reordered"],
        "dropped": step["readers_dropped"],
        # (binaries from before these counters have none)
        "batches": step.get("poll_batches"), "reads": step.get("socket_reads"),
        "stamped": step.get("stamped_reads"),
        "p50_ms": latency and latency["p50"], "p99_ms": latency and latency["p99"],
        "loadavg": os.getloadavg(),
    }


def main() -> None:
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
    if args.cpuprofile:
        Path(args.cpuprofile).mkdir(parents=True, exist_ok=True)
    gateway_connections = stacks.nginx_connections(stacks.raise_fd_limit()[0])
    steps: list[dict[str, Any]] = []
    with contextlib.ExitStack() as running:
        if args.gateway:
            target = loadgen.Target("ours", args.gateway, "ours").as_json()
        else:
            run_dir = Path(tempfile.mkdtemp(prefix="loadgen-cpu-"))
            stack = running.enter_context(stacks.ours(run_dir / "stack", nginx_connections=gateway_connections,
                                                      log=lambda m: print(m, file=sys.stderr)))
            target = loadgen.Target("ours-fanout", stack.settings.gateway_url, "ours-redis",
                                    redis=bridge_publisher(stack.settings)).as_json()
        generators = []
        for i, binary in enumerate(binaries):
            env = {"LOADGEN_CPUPROFILE": str(Path(args.cpuprofile) / f"{i}.pprof")} if args.cpuprofile else None
            generator = loadgen.Process(binary, env)
            running.callback(generator.stop)
            generators.append((generator, open_readers(generator, i, target, args)))
        base = 2_000_000
        for round_ in range(args.pairs):
            for generator, readers in generators:
                row = measure_step(generator, readers, round_, base, args)
                base += 100_000
                steps.append(row)
                print(json.dumps(row), flush=True)
    summary = {}
    for binary in binaries:
        mine = [s["us_per_delivery"] for s in steps if s["binary"] == binary and s["us_per_delivery"]]
        summary[binary] = {"us_per_delivery": mine, "mean": round(sum(mine) / len(mine), 2) if mine else None}
    print(json.dumps({"summary": summary}, indent=1))


if __name__ == "__main__":
    main()
