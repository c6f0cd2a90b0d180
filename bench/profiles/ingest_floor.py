"""The packages' floor under ingest's CPU per POST, and each worker model's cost, alternated.

    .venv/bin/python bench/profiles/ingest_floor.py [--posters 64] [--seconds 10] [--rounds 3] [--rate R]
                                                    [--variants APP/WORKER/PROCESSES[/NAME=VALUE+...],...]

Starts the local stack on free ports (in .run/ingest-floor/), with the benchmark's settings
(rate limits lifted), and stops its bridge, stream and ingest: the gateway (nginx, keep-alive
to its upstream as in the benchmark) then proxies ``/api/`` to whichever variant runs on
ingest's port. Each round starts every variant in turn (A B C ... A B C ...: the machine's
other load moves figures between minutes, so each variant samples the same moments), and
for each: its gunicorn started with the service's environment, a 3 s warm-up of closed-loop
posters, then ``--posters`` closed-loop posters (the benchmark's load generator, as its ingest
scenario) for ``--seconds``, reading the CPU time (user + system, /proc via psutil) of the
variant's gunicorn master and workers before and after: µs per acknowledged POST, POSTs/s per
core of it; then SIGTERM and the seconds its graceful stop took. ``--rate R`` measures each
variant at R messages/s from paced senders instead (the benchmark's, 2.5 msg/s each, one
request in flight each): where POSTs arrive one at a time and share nothing, each pays every
per-request cost of the packages alone.

A variant is ``APP/WORKER/PROCESSES``, optionally ``/NAME=VALUE+...`` (environment added):

- APP ``wsgi``: gunicorn alone, the same route as a bare WSGI callable (``floor_app.bare``);
  ``flask``: Flask on gunicorn alone, a POST parses the JSON body and answers 201
  (``floor_app.py``); ``kafka``: the same plus one kafka-python produce with the service's
  producer settings, waiting for its acknowledgement (one producer per process); ``admit``:
  the same plus the service's admission call before it (its Redis round trip, shared);
  ``ingest``: the service (its gunicorn.conf.py, the worker model overridden);
- WORKER ``gthread`` (16 threads per process with 2 processes, 32 with 1: the service's 32
  threads per instance either way) or ``gevent`` (gunicorn's gevent worker, 1,000
  connections per process, the Kafka client's sender thread a greenlet) or ``pywsgi``
  (gunicorn's gevent_pywsgi worker: gevent's own WSGI server in place of gunicorn's HTTP code).

Prints one JSON object: every round of every variant, and per variant the median and range
of µs per POST; the machine's load average before and after. A variant run with
``INGEST_KAFKA_CLIENT_METRICS=true`` also reports kafka-python's own producer metrics per
worker (records per produce request among them), read from the service's /metrics.
"""

import argparse
import asyncio
import json
import os
import signal
import subprocess
import time
import urllib.request
from pathlib import Path
from typing import Any

import psutil
from prometheus_client.parser import text_string_to_metric_families

from bench.kit import cpu, loadgen, stacks, stats
from bench.kit.ports import wait_port

ROOT = stacks.ROOT
ROOMS = 20
WARM_UP_S = 3.0
OTHERS = ("kafka", "redis", "nginx")
DEFAULT_VARIANTS = (
    "flask/gthread/2,kafka/gthread/2,ingest/gthread/2,"
    "flask/gevent/2,kafka/gevent/2,ingest/gevent/2,"
    "flask/gthread/1,kafka/gthread/1,ingest/gthread/1,"
    "flask/gevent/1,kafka/gevent/1,ingest/gevent/1"
)
THREADS_PER_INSTANCE = 32  # the service's 2 processes x 16 threads
GEVENT_CONNECTIONS = 1000
GRACEFUL_TIMEOUT_S = 20  # as the service's gunicorn.conf.py


def command(variant: str, bind: str) -> tuple[list[str], dict[str, str]]:
    """The gunicorn command line of a variant and the environment it adds."""
    app, worker, processes, *extra = variant.split("/")
    env = dict(item.split("=", 1) for item in extra[0].split("+")) if extra else {}
    gunicorn = str(stacks.VENV_BIN / "gunicorn")
    worker_class = {"gthread": "gthread", "gevent": "gevent", "pywsgi": "gevent_pywsgi"}[worker]
    model = ["--bind", bind, "--workers", processes, "--worker-class", worker_class]
    if worker == "gthread":
        model += ["--threads", str(THREADS_PER_INSTANCE // int(processes))]
    else:
        model += ["--worker-connections", str(GEVENT_CONNECTIONS)]
    if app == "ingest":
        return [gunicorn, "-c", str(ROOT / "services/ingest/gunicorn.conf.py"), *model, "ingest.wsgi:app"], env
    if app in ("wsgi", "flask", "kafka", "admit"):
        env["FLOOR_PRODUCE"] = "1" if app in ("kafka", "admit") else "0"
        env["FLOOR_ADMIT"] = "1" if app == "admit" else "0"
        target = "bench.profiles.floor_app:" + ("bare" if app == "wsgi" else "app")
        return [gunicorn, *model, "--keep-alive", "75", "--graceful-timeout", str(GRACEFUL_TIMEOUT_S),
                "--worker-tmp-dir", "/dev/shm", target], env
    raise SystemExit(f"unknown app {app!r} in {variant!r}")


class Variant:
    """One variant's gunicorn, on ingest's port behind the gateway, logging to the run directory."""

    def __init__(self, stack: stacks.OursStack, variant: str, run_dir: Path):
        self.stack = stack
        self.variant = variant
        self.log = run_dir / ("variant-" + variant.replace("/", "-").replace("+", "-") + ".log")
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> int:
        s = self.stack.settings
        args, extra = command(self.variant, f"127.0.0.1:{s.ingest_port}")
        env = {**os.environ, **self.stack.service_environment("ingest"), **extra,
               "PYTHONPATH": f"{ROOT}:{ROOT}/services/common:{ROOT}/services/ingest"}
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(args, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                                         start_new_session=True)
        wait_port(s.ingest_port, 60)
        return self.proc.pid

    def stop(self) -> float:
        """SIGTERM (gunicorn's graceful stop); the seconds until the master exited."""
        assert self.proc is not None
        started = time.monotonic()
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(GRACEFUL_TIMEOUT_S + 10)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        return round(time.monotonic() - started, 1)


async def measure_one(stack: stacks.OursStack, variant: str, run_dir: Path, others: dict[str, int],
                      args: argparse.Namespace) -> dict[str, Any]:
    target = loadgen.Target("ours", stack.settings.gateway_url, "ours")
    rooms = [f"floor-{i}" for i in range(ROOMS)]
    server = Variant(stack, variant, run_dir)
    pid = server.start()
    try:
        for _ in range(10):  # until its workers answer: they boot after the master listens
            warm = await loadgen.ingest_closed_loop(target, rooms, args.posters, WARM_UP_S)
            if warm["acked"] > warm["errors"]:
                break
        groups = {"variant": pid, **others}
        before, started = cpu.snapshot(groups), time.monotonic()
        if args.rate:
            closed = await paced(target, rooms, args.rate, args.seconds)
        else:
            closed = await loadgen.ingest_closed_loop(target, rooms, args.posters, args.seconds)
        wall = time.monotonic() - started
        after = cpu.snapshot(groups)
        workers = len(psutil.Process(pid).children())
        client = client_metrics(stack.settings.ingest_port) if "INGEST_KAFKA_CLIENT_METRICS=true" in variant else {}
    finally:
        stop_s = server.stop()
    used = cpu.used(before, after)
    posts = closed["acked"] or 1
    mine = after["variant"] - before["variant"]
    return {
        "variant": variant, "acked": closed["acked"], "errors": closed["errors"], "workers": workers,
        "posts_per_s": round(closed["acked"] / closed["seconds"]),
        "us_per_post": round(used["variant"] / posts * 1e6),
        "posts_per_core": round(posts / used["variant"]) if used["variant"] else None,
        "cores": round(used["variant"] / wall, 2),
        "system_share": round(mine.system / used["variant"], 2) if used["variant"] else None,
        "switches_per_post": round(mine.switches / posts, 1),
        "post_p50_ms": round(stats.nearest_rank(closed["post_ms"], 0.5), 1) if closed["post_ms"] else None,
        "post_p99_ms": round(stats.nearest_rank(closed["post_ms"], 0.99), 1) if closed["post_ms"] else None,
        "others_us_per_post": {n: round(used[n] / posts * 1e6) for n in OTHERS},
        "stop_s": stop_s, "load": [round(x, 2) for x in os.getloadavg()],
        **({"kafka_client": client} if client else {}),
    }


async def paced(target: loadgen.Target, rooms: list[str], rate: float, seconds: float) -> dict[str, Any]:
    """``rate`` POSTs/s for ``seconds`` from paced senders, nobody reading the rooms; the
    figures ``measure_one`` reads from a closed loop."""
    async with loadgen.senders(target, rooms) as senders:
        step = await loadgen.run_step(target, senders, rate, seconds, 100_000)
    return {"acked": step["acked"], "errors": step["post_errors"], "seconds": step["send_seconds"],
            "post_ms": step["post_ms"]}


def client_metrics(port: int) -> dict[str, list[float]]:
    """The service's copy of kafka-python's producer metrics (INGEST_KAFKA_CLIENT_METRICS=true),
    one value per worker: the last copy, taken during the round (every 10 s)."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text = response.read().decode()
    out: dict[str, list[float]] = {}
    for family in text_string_to_metric_families(text):
        if family.name == "chat_ingest_kafka_client":
            for sample in family.samples:
                out.setdefault(sample.labels["metric"], []).append(round(sample.value, 2))
    return out


async def measure(stack: stacks.OursStack, run_dir: Path, args: argparse.Namespace) -> list[dict[str, Any]]:
    others = {name: stack.pid(name) for name in OTHERS}
    rounds: list[dict[str, Any]] = []
    for n in range(args.rounds):
        for variant in args.variants.split(","):
            result = await measure_one(stack, variant, run_dir, others, args)
            result["round"] = n + 1
            print(json.dumps(result), flush=True)  # progress, and the figures if the run is cut short
            rounds.append(result)
    return rounds


def summary(rounds: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for variant in dict.fromkeys(r["variant"] for r in rounds):
        mine = [r for r in rounds if r["variant"] == variant]
        us, rate = [r["us_per_post"] for r in mine], [r["posts_per_s"] for r in mine]
        out[variant] = {"us_per_post_median": stats.nearest_rank(us, 0.5), "us_per_post_range": [min(us), max(us)],
                        "posts_per_s_median": stats.nearest_rank(rate, 0.5),
                        "stop_s": [r["stop_s"] for r in mine]}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--posters", type=int, default=64)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--rate", type=float, default=0, help="paced POSTs/s instead of closed-loop posters")
    parser.add_argument("--variants", default=DEFAULT_VARIANTS, help="comma-separated, alternated in this order")
    args = parser.parse_args()
    load_before = [round(x, 2) for x in os.getloadavg()]
    run_dir = stacks.run_dir("ingest-floor")
    with stacks.ours(run_dir, nginx_connections=4096) as stack:
        stack.ctl("stop", "bridge", "stream", "ingest")  # ingest's port is the variants' now
        rounds = asyncio.run(measure(stack, run_dir, args))
    print(json.dumps({"summary": summary(rounds), "rounds": rounds, "posters": args.posters, "rate": args.rate,
                      "seconds": args.seconds,
                      "load_before": load_before, "load_after": [round(x, 2) for x in os.getloadavg()]}))


if __name__ == "__main__":
    main()
