"""Ingest's CPU per acknowledged POST, with ingest alone doing the work.

    .venv/bin/python bench/profiles/ingest_cpu.py [--posters 64] [--seconds 15] [--rounds 3]
                                                  [--record OUT.svg] [--env NAME=VALUE ...]

Starts the local stack on free ports (in .run/ingest-cpu/), with the benchmark's settings
(rate limits lifted), then stops the bridge and the stream service so that the machine's
cores go to ingest, Kafka, Redis and the gateway. ``--posters`` closed-loop posters (the
benchmark's load generator: each posts again as soon as its last POST is answered) post
through the gateway for ``--seconds``, ``--rounds`` times after a warm-up; each round reads
ingest's CPU time (user + system, the gunicorn master and its workers, /proc via psutil)
before and after: acknowledged POSTs/s, ingest's CPU per POST and POSTs/s per ingest core.

``--record OUT.svg`` adds one more round, not counted, in which py-spy records one ingest
worker (only threads holding the GIL, none idle, without pausing it) into a flame graph.
Prints one JSON object, with the machine's load average before and after.
"""

import argparse
import asyncio
import datetime
import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

import psutil  # noqa: E402

from bench import loadgen, monitor  # noqa: E402
from bench.stacks import OursStack  # noqa: E402

PROGRAMS = ("ingest", "kafka", "redis", "nginx")
ROOMS = 20
PY_SPY = Path(sys.executable).parent / "py-spy"


def counters(pid):
    """CPU time (user, system, in seconds) and context switches of a process and its
    children (gunicorn's master and workers)."""
    user = system = switches = 0.0
    for proc in monitor.tree(pid):
        try:
            with proc.oneshot():
                times, ctx = proc.cpu_times(), proc.num_ctx_switches()
        except psutil.NoSuchProcess:
            continue
        user, system, switches = user + times.user, system + times.system, switches + ctx.voluntary + ctx.involuntary
    return user, system, switches


async def closed_round(target, rooms, pids, args):
    before, started = {n: counters(p) for n, p in pids.items()}, time.monotonic()
    closed = await loadgen.ingest_closed_loop(target, rooms, args.posters, args.seconds)
    wall = time.monotonic() - started
    after = {n: counters(p) for n, p in pids.items()}
    used = {n: after[n][0] + after[n][1] - before[n][0] - before[n][1] for n in pids}
    system = after["ingest"][1] - before["ingest"][1]
    switches = after["ingest"][2] - before["ingest"][2]
    posts = closed["acked"]
    post_ms = sorted(closed["post_ms"] or [0])
    return {
        "acked": posts, "errors": closed["errors"], "posts_per_s": round(posts / closed["seconds"]),
        "post_p50_ms": round(post_ms[len(post_ms) // 2], 1),
        "ingest_us_per_post": round(used["ingest"] / posts * 1e6),
        "posts_per_ingest_core": round(posts / used["ingest"]),
        "ingest_system_share": round(system / used["ingest"], 2),
        "ingest_switches_per_post": round(switches / posts, 1),
        "cpu_us_per_post": {n: round(used[n] / posts * 1e6) for n in PROGRAMS},
        "cores": {n: round(used[n] / wall, 3) for n in PROGRAMS},
        "load": [round(x, 2) for x in psutil.getloadavg()],
    }


async def measure(stack, args):
    pids = {name: stack.pid(name) for name in PROGRAMS}
    target = loadgen.Target("ours", stack.settings.gateway_url, "ours")
    rooms = [f"ingest-{i}" for i in range(ROOMS)]
    await loadgen.ingest_closed_loop(target, rooms, args.posters, 3)  # warm up: connections, metadata
    rounds = [await closed_round(target, rooms, pids, args) for _ in range(args.rounds)]
    result = {"rounds": rounds}
    if args.record:
        worker = psutil.Process(pids["ingest"]).children()[0].pid
        spy = subprocess.Popen([str(PY_SPY), "record", "-p", str(worker), "-d", str(args.seconds), "-r", "100",
                                "--gil", "--nonblocking", "-o", args.record],
                               stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        result["recorded"] = await closed_round(target, rooms, pids, args)
        spy.wait()
    return result


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--posters", type=int, default=64)
    parser.add_argument("--seconds", type=int, default=15)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--record", help="also record one ingest worker into this flame graph (svg)")
    parser.add_argument("--env", action="append", default=[], help="NAME=VALUE for the services")
    args = parser.parse_args()
    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y%m%dT%H%M%SZ")
    stack = OursStack(ROOT / ".run" / "ingest-cpu" / stamp, nginx_connections=4096)
    stack.settings.service_env.update(dict(item.split("=", 1) for item in args.env))
    load_before = [round(x, 2) for x in psutil.getloadavg()]
    stack.start(timeout=240)
    try:
        stack.ctl("stop", "bridge", "stream")  # their cores go to ingest
        result = asyncio.run(measure(stack, args))
    finally:
        loadgen.stop()
        stack.stop()
    result.update(env=args.env, load_before=load_before, load_after=[round(x, 2) for x in psutil.getloadavg()])
    if result["rounds"]:
        per_post = sorted(r["ingest_us_per_post"] for r in result["rounds"])
        result["ingest_us_per_post_median"] = per_post[len(per_post) // 2]
    print(json.dumps(result))


if __name__ == "__main__":
    main()
