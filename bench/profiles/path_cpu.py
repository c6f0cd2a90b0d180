"""CPU per message of the per-message path: ingest, the bridge, Kafka and Redis.

    .venv/bin/python bench/profiles/path_cpu.py [--rate 200] [--seconds 20] [--posters 64] [--env NAME=VALUE ...]

Starts the local stack on free ports (in .run/path-cpu/), with the benchmark's settings
(rate limits lifted), opens one SSE reader per room, then:

1. waits ``--idle-seconds`` with nothing posted: each process's cores when idle;
2. posts ``--rate`` messages/s for ``--seconds`` with the benchmark's load generator (paced
   senders, one request in flight each) and reads each process's CPU time (user + system,
   the process and its children, from /proc through psutil) before and after: CPU per
   acknowledged message for ingest, the bridge, Kafka, Redis (and the stream and nginx);
3. runs ``--posters`` closed-loop posters for ``--closed-seconds``: acknowledged POSTs/s,
   ingest's CPU per POST and POSTs/s per ingest core.

Each part also reports the broker's side (``broker``): the requests it answered per message,
by type (from its metrics: the chart's JMX exporter agent), and the µs per message its JIT
compiler took, which is part of Kafka's CPU on a broker started a minute before.

Prints one JSON object. ``--env`` sets a service's environment variable for the run (e.g.
``INGEST_KAFKA_MAX_IN_FLIGHT=1``). The machine's other load inflates CPU counters less than
wall times, but it does: compare runs taken close together, alternating.
"""

import argparse
import asyncio
import json
import os
import time
from typing import Any

from bench.kit import cpu, loadgen, stacks, stats

PROGRAMS = ("ingest", "bridge", "kafka", "redis", "stream", "nginx")
PATH = ("ingest", "bridge", "kafka", "redis")  # what every message goes through once
ROOMS = 20


async def measure(stack: stacks.OursStack, args: argparse.Namespace) -> dict[str, Any]:
    pids = {name: stack.pid(name) for name in PROGRAMS}
    target = loadgen.Target("ours", stack.settings.gateway_url, "ours")
    rooms = [f"path-{i}" for i in range(ROOMS)]
    readers = loadgen.Readers(target, rooms, ROOMS)
    await readers.open()
    await loadgen.run_step(target, readers, 50, 3, 1)  # warm up: connections, JIT, subscriptions
    await loadgen.quiesce(readers, quiet_s=1.0)

    before, started = cpu.snapshot(pids), time.monotonic()
    await asyncio.sleep(args.idle_seconds)  # what each process costs with nothing to do
    used, wall = cpu.used(before, cpu.snapshot(pids)), time.monotonic() - started
    idle = {name: round(used[name] / wall, 4) for name in PROGRAMS}

    marks = broker_marks(stack, pids["kafka"])  # before the CPU is read: a scrape costs the broker CPU
    before, started = cpu.snapshot(pids), time.monotonic()
    step = await loadgen.run_step(target, readers, args.rate, args.seconds, 100_000)
    await loadgen.quiesce(readers, quiet_s=1.0)
    used, wall = cpu.used(before, cpu.snapshot(pids)), time.monotonic() - started
    acked = step["acked"]
    broker = broker_per_message(stack, pids["kafka"], marks, acked)
    paced = {
        "rate": args.rate, "seconds": args.seconds, "acked": acked, "received": step["received"],
        "lost": step["lost"], "duplicates": step["duplicates"], "reordered": step["reordered"],
        "ts_p50_ms": round(stats.nearest_rank(step["latency_ts_ms"], 0.5), 1),
        "ts_p99_ms": round(stats.nearest_rank(step["latency_ts_ms"], 0.99), 1),
        "cpu_us_per_message": {name: round(used[name] / acked * 1e6) for name in PROGRAMS},
        "path_us_per_message": round(sum(used[n] for n in PATH) / acked * 1e6),
        "cores": {name: round(used[name] / wall, 3) for name in PROGRAMS},
        "broker": broker,
    }
    await readers.close()

    marks = broker_marks(stack, pids["kafka"])
    before, started = cpu.snapshot(pids), time.monotonic()
    closed = await loadgen.ingest_closed_loop(target, rooms, args.posters, args.closed_seconds)
    used, wall = cpu.used(before, cpu.snapshot(pids)), time.monotonic() - started
    posts = closed["acked"]
    closed_loop = {
        "posters": args.posters, "acked": posts, "errors": closed["errors"],
        "posts_per_s": round(posts / closed["seconds"]),
        "post_p50_ms": round(stats.nearest_rank(closed["post_ms"], 0.5), 1),
        "ingest_us_per_post": round(used["ingest"] / posts * 1e6),
        "posts_per_ingest_core": round(posts / used["ingest"]),
        "cpu_us_per_message": {name: round(used[name] / posts * 1e6) for name in PROGRAMS},
        "cores": {name: round(used[name] / wall, 3) for name in PROGRAMS},
        "broker": broker_per_message(stack, pids["kafka"], marks, posts),
    }
    return {"idle_cores": idle, "paced": paced, "closed_loop": closed_loop}


def broker_marks(stack: stacks.OursStack, kafka_pid: int) -> tuple[dict[str, float], float]:
    """The broker's request counters and its compiler threads' CPU seconds, now."""
    return stacks.kafka_requests(stack.settings.kafka_metrics_port), cpu.jit_seconds(kafka_pid)


def broker_per_message(stack: stacks.OursStack, kafka_pid: int, marks: tuple[dict[str, float], float],
                       messages: int) -> dict[str, Any]:
    """Since ``marks``, per message: the requests the broker answered, by type, and the µs of
    CPU its JIT compiler took (part of Kafka's figure: it falls to nearly nothing once the
    broker has run a minute or two at the rate; bench/README.md)."""
    requests, jit = broker_marks(stack, kafka_pid)
    return {
        "requests_per_message": {name: round((count - marks[0].get(name, 0)) / messages, 3)
                                 for name, count in sorted(requests.items()) if count > marks[0].get(name, 0)},
        "jit_us_per_message": round((jit - marks[1]) / messages * 1e6),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--rate", type=int, default=200)
    parser.add_argument("--seconds", type=int, default=20)
    parser.add_argument("--posters", type=int, default=64)
    parser.add_argument("--closed-seconds", type=int, default=15)
    parser.add_argument("--idle-seconds", type=int, default=10)
    parser.add_argument("--env", action="append", default=[], help="NAME=VALUE for the services")
    args = parser.parse_args()
    with stacks.ours(stacks.run_dir("path-cpu"), nginx_connections=4096, env=stacks.parse_env(args.env),
                     kafka_metrics=True) as stack:
        result = asyncio.run(measure(stack, args))
    result["env"] = args.env
    result["machine_load"] = os.getloadavg()
    print(json.dumps(result))


if __name__ == "__main__":
    main()
