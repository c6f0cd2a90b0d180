"""Ingest's CPU per acknowledged POST, with ingest alone doing the work.

    .venv/bin/python bench/profiles/ingest_cpu.py [--posters 64] [--seconds 15] [--rounds 3]
                                                  [--rates 50,200,2000] [--record OUT.svg]
                                                  [--record-rate R] [--env NAME=VALUE ...]

Starts the local stack on free ports (in .run/ingest-cpu/), with the benchmark's settings
(rate limits lifted), then stops the bridge and the stream service so that the machine's
cores go to ingest, Kafka, Redis and the gateway. ``--posters`` closed-loop posters (the
benchmark's load generator: each posts again as soon as its last POST is answered) post
through the gateway for ``--seconds``, ``--rounds`` times after a warm-up; each round reads
ingest's CPU time (user + system, the gunicorn master and its workers, /proc via psutil)
before and after: acknowledged POSTs/s, ingest's CPU per POST and POSTs/s per ingest core.
``--rates`` first posts at each of these paced rates for ``--seconds`` (the benchmark's
paced senders, 2.5 msg/s each, one request in flight each): ingest's CPU per acknowledged
POST and the POSTs' latency where records have fewer chances to share a produce request.

``--record OUT.svg`` adds one more round, not counted, in which py-spy records one ingest
worker (only threads holding the GIL, none idle, without pausing it) into a flame graph;
``--record-rate R`` records a round paced at R msg/s instead of the closed loop (where a
POST shares nothing with the others). ``--record OUT.txt`` records into py-spy's raw
collapsed stacks (one line per stack with its count),
and the round's figures then say where a POST's CPU goes (``parts_us_per_post``): each
sample is given to the library whose code it was running (the frame nearest the leaf that
belongs to one; the standard library's frames go to their caller), or to kafka-python's
sender thread as a whole, and each part's share of the samples is scaled by the round's
ingest CPU per POST. The samples are those holding the GIL, so system calls made without it
are spread over the parts in proportion: a breakdown, not a second measurement.
Prints one JSON object, with the machine's load average before and after.
"""

import argparse
import asyncio
import json
import os
import subprocess
import time
from typing import Any

import psutil

from bench.kit import cpu, loadgen, stacks, stats

PROGRAMS = ("ingest", "kafka", "redis", "nginx")
ROOMS = 20
# (part, what a frame's file path contains): the first library found from the leaf up takes the sample
LIBRARIES = (
    ("log line", ("/logging/", "/pythonjsonlogger/")),
    ("metrics", ("/prometheus_client/",)),
    ("redis-py", ("/redis/",)),
    ("kafka-python: send and wait", ("/kafka/",)),
    ("ingest and chat_common", ("/ingest/", "/chat_common/")),
    ("flask and werkzeug", ("/flask/", "/werkzeug/")),
    ("gunicorn", ("/gunicorn/",)),
)
SENDER_THREAD = "Sender.run (kafka/producer/sender.py"


def parts(raw_stacks: str) -> dict[str, float]:
    """Each part's share of the samples in py-spy's raw output ("frame;frame;... count")."""
    counts: dict[str, int] = {}
    for line in raw_stacks.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack:
            continue
        frames = stack.split(";")
        part = "other (thread pool, interpreter)"
        if any(frame.startswith(SENDER_THREAD) for frame in frames):
            part = "kafka-python: sender thread"
        else:
            for frame in reversed(frames):
                where = frame[frame.find("(") + 1:]
                found = next((name for name, paths in LIBRARIES if any(p in "/" + where for p in paths)), None)
                if found:
                    part = found
                    break
        counts[part] = counts.get(part, 0) + int(count)
    total = sum(counts.values()) or 1
    return {part: n / total for part, n in sorted(counts.items(), key=lambda item: -item[1])}


async def closed_round(target: loadgen.Target, rooms: list[str], pids: dict[str, int],
                       args: argparse.Namespace) -> dict[str, Any]:
    before, started = cpu.snapshot(pids), time.monotonic()
    closed = await loadgen.ingest_closed_loop(target, rooms, args.posters, args.seconds)
    wall = time.monotonic() - started
    after = cpu.snapshot(pids)
    used = cpu.used(before, after)
    ingest = after["ingest"] - before["ingest"]
    posts = closed["acked"]
    return {
        "acked": posts, "errors": closed["errors"], "posts_per_s": round(posts / closed["seconds"]),
        "post_p50_ms": round(stats.nearest_rank(closed["post_ms"], 0.5), 1),
        "post_p99_ms": round(stats.nearest_rank(closed["post_ms"], 0.99), 1),
        "ingest_us_per_post": round(used["ingest"] / posts * 1e6),
        "posts_per_ingest_core": round(posts / used["ingest"]),
        "ingest_system_share": round(ingest.system / used["ingest"], 2),
        "ingest_switches_per_post": round(ingest.switches / posts, 1),
        "cpu_us_per_post": {n: round(used[n] / posts * 1e6) for n in PROGRAMS},
        "cores": {n: round(used[n] / wall, 3) for n in PROGRAMS},
        "load": [round(x, 2) for x in os.getloadavg()],
    }


async def paced_round(target: loadgen.Target, readers: loadgen.Readers, rate: float, pids: dict[str, int],
                      args: argparse.Namespace) -> dict[str, Any]:
    before = cpu.snapshot(pids)
    step = await loadgen.run_step(target, readers, rate, args.seconds, 100_000)
    used = cpu.used(before, cpu.snapshot(pids))
    posts = step["acked"]
    return {
        "rate": rate, "acked": posts, "errors": step["post_errors"],
        "posts_per_s": round(posts / step["send_seconds"]),  # below ``rate`` once ingest is saturated
        "post_p50_ms": round(stats.nearest_rank(step["post_ms"], 0.5), 1),
        "post_p99_ms": round(stats.nearest_rank(step["post_ms"], 0.99), 1),
        "ingest_us_per_post": round(used["ingest"] / posts * 1e6),
        "load": [round(x, 2) for x in os.getloadavg()],
    }


async def paced_rounds(target: loadgen.Target, rooms: list[str], rates: list[float], pids: dict[str, int],
                       args: argparse.Namespace) -> list[dict[str, Any]]:
    """A paced round at each of ``rates``, over senders opened once for them all."""
    if not rates:
        return []
    async with loadgen.senders(target, rooms) as senders:
        return [await paced_round(target, senders, rate, pids, args) for rate in rates]


async def measure(stack: stacks.OursStack, args: argparse.Namespace) -> dict[str, Any]:
    pids = {name: stack.pid(name) for name in PROGRAMS}
    target = loadgen.Target("ours", stack.settings.gateway_url, "ours")
    rooms = [f"ingest-{i}" for i in range(ROOMS)]
    await loadgen.ingest_closed_loop(target, rooms, args.posters, 3)  # warm up: connections, metadata
    rates = [float(rate) for rate in args.rates.split(",")] if args.rates else []
    result: dict[str, Any] = {"paced": await paced_rounds(target, rooms, rates, pids, args)}
    result["rounds"] = [await closed_round(target, rooms, pids, args) for _ in range(args.rounds)]
    if args.record:
        worker = psutil.Process(pids["ingest"]).children()[0].pid
        spy = subprocess.Popen([str(stacks.VENV_BIN / "py-spy"), "record", "-p", str(worker), "-d",
                                str(args.seconds), "-r", "100", "--gil", "--nonblocking", "-o", args.record,
                                "--format", "raw" if args.record.endswith(".txt") else "flamegraph"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        if args.record_rate:
            result["recorded"] = (await paced_rounds(target, rooms, [args.record_rate], pids, args))[0]
        else:
            result["recorded"] = await closed_round(target, rooms, pids, args)
        spy.wait()
        if args.record.endswith(".txt"):
            per_post = result["recorded"]["ingest_us_per_post"]
            with open(args.record) as raw:
                result["recorded"]["parts_us_per_post"] = {part: round(share * per_post)
                                                           for part, share in parts(raw.read()).items()}
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--posters", type=int, default=64)
    parser.add_argument("--seconds", type=int, default=15)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--rates", default="", help="paced rates (msg/s, comma-separated) measured first")
    parser.add_argument("--record", help="also record one ingest worker: a flame graph (.svg) or raw stacks (.txt)")
    parser.add_argument("--record-rate", type=float, default=0.0,
                        help="the recorded round paced at this rate (msg/s) instead of the closed loop")
    parser.add_argument("--env", action="append", default=[], help="NAME=VALUE for the services")
    args = parser.parse_args()
    load_before = [round(x, 2) for x in os.getloadavg()]
    with stacks.ours(stacks.run_dir("ingest-cpu"), nginx_connections=4096, env=stacks.parse_env(args.env)) as stack:
        stack.ctl("stop", "bridge", "stream")  # their cores go to ingest
        result = asyncio.run(measure(stack, args))
    result.update(env=args.env, load_before=load_before, load_after=[round(x, 2) for x in os.getloadavg()])
    if result["rounds"]:
        result["ingest_us_per_post_median"] = stats.nearest_rank([r["ingest_us_per_post"] for r in result["rounds"]],
                                                                 0.5)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
