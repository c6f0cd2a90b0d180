"""The benchmark: the project's pipeline, the seed design and a peer (Centrifugo), same
machine, same run.

    python -m bench                 # the full set (make bench)
    python -m bench --profile quick # a short set (make bench-quick)
    python -m bench --only ours --scenarios fanout,ingest --set fanout.clients=500

Systems: ``ours`` and ``centrifugo`` (the whole pipeline: an acknowledged POST -> Kafka ->
every SSE reader), ``seed``, and the fan-out stage alone: ``ours-fanout`` (published into
Redis as the bridge does) and ``centrifugo-fanout`` (its publish API, its Redis engine).

Writes bench/results/<timestamp>.json (every figure and the machine; git-ignored), latest.json
(the same, committed), latest.md (the summary), and the plots (latest-*.png).
"""

import argparse
import asyncio
import copy
import dataclasses
import datetime
import json
import os
import platform
import subprocess
import time
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as package_version
from pathlib import Path
from typing import Any

import psutil
import redis

from bench import coldstart, report, scrollback
from bench.kit import hops, loadgen, stats
from bench.kit.cpu import Monitor, rss_bytes
from bench.kit.fanout import bridge_publisher
from bench.kit.stacks import ROOT, CentrifugoStack, OursStack, SeedStack, nginx_connections, raise_fd_limit
from bench.kit.systems import IDLE_SYSTEMS, SYSTEMS

RESULTS = ROOT / "bench" / "results"
SHARED_PROGRAMS = ("kafka", "redis")  # the broker and the Redis server every system uses


def _start_rates(rate: float, seed: float) -> dict[str, float]:
    """The capacity search's first rate (msg/s) per system: the seed saturates far lower."""
    return {**{name: rate for name in SYSTEMS}, "seed": seed}


PROFILES = {
    "full": {
        "warm_up_s": 8,
        "fanout": {"clients": 2000, "rooms": 20, "rate": 200, "duration": 20},
        "capacity": {"clients": 2000, "rooms": 20, "step_duration": 8, "factor": 1.5, "max_steps": 10,
                     "refine_steps": 2, "start_rate": _start_rates(25, seed=5),
                     "p99_limit_ms": 250},
        "idle": {"connections": 10000, "rooms": 100, "stages": 4, "settle_s": 3},
        "ingest": {"concurrency": 64, "rooms": 20, "duration": 15},
        "scrollback": {"noise_records": 1_000_000, "quiet_messages": 2000, "noise_rooms": 10, "readers": 20,
                       "limit": 50, "duration": 30, "live_clients": 200, "live_rooms": 4, "live_rate": 20},
        "small_rooms": {"clients": 2000, "rooms": 1000, "step_duration": 8, "factor": 1.5, "max_steps": 10,
                        "refine_steps": 2, "start_rate": 50, "p99_limit_ms": 250, "warm_up_s": 5},
        "coldstart": {"readers": 1000, "rooms": 10, "rate": 100, "duration": 10, "seconds": 5,
                      "ready_timeout_s": 180},
    },
    "quick": {
        "warm_up_s": 3,
        "fanout": {"clients": 200, "rooms": 4, "rate": 50, "duration": 4},
        "capacity": {"clients": 200, "rooms": 4, "step_duration": 3, "factor": 2.0, "max_steps": 3,
                     "start_rate": _start_rates(25, seed=6.25),
                     "p99_limit_ms": 250},
        "idle": {"connections": 1000, "rooms": 10, "stages": 2, "settle_s": 1},
        "ingest": {"concurrency": 32, "rooms": 4, "duration": 3},
        "scrollback": {"noise_records": 22_000, "quiet_messages": 1100, "noise_rooms": 4, "readers": 10,
                       "limit": 50, "duration": 5, "live_clients": 40, "live_rooms": 2, "live_rate": 10},
        "small_rooms": {"clients": 200, "rooms": 100, "step_duration": 3, "factor": 2.0, "max_steps": 3,
                        "start_rate": 25, "p99_limit_ms": 250, "warm_up_s": 2},
        "coldstart": {"readers": 200, "rooms": 4, "rate": 40, "duration": 6, "seconds": 5, "ready_timeout_s": 180},
    },
    "smoke": {
        "warm_up_s": 1,
        "fanout": {"clients": 20, "rooms": 2, "rate": 20, "duration": 2},
        "capacity": {"clients": 20, "rooms": 2, "step_duration": 1.5, "factor": 2.0, "max_steps": 2,
                     "start_rate": _start_rates(20, seed=20),
                     "p99_limit_ms": 250},
        "idle": {"connections": 50, "rooms": 2, "stages": 1, "settle_s": 0.5},
        "ingest": {"concurrency": 4, "rooms": 2, "duration": 1.5},
        "scrollback": {"noise_records": 5000, "quiet_messages": 60, "noise_rooms": 2, "readers": 2,
                       "limit": 20, "duration": 2, "live_clients": 4, "live_rooms": 1, "live_rate": 4},
        "small_rooms": {"clients": 20, "rooms": 10, "step_duration": 1.5, "factor": 2.0, "max_steps": 2,
                        "start_rate": 20, "p99_limit_ms": 250, "warm_up_s": 1},
        "coldstart": {"readers": 20, "rooms": 2, "rate": 10, "duration": 3, "seconds": 3, "ready_timeout_s": 120},
    },
}
SCENARIOS = ("fanout", "capacity", "idle", "ingest", "scrollback", "small_rooms", "coldstart")
SMALL_ROOMS_SYSTEMS = ("ours", "centrifugo")  # the whole pipelines compared in many small rooms


# -- systems ------------------------------------------------------------------------


class System:
    """A system under test: its target (how to talk to it), its processes, its streams."""

    def __init__(self, name, target, groups, stream_pids, redis_client, room_prefix, stream_direct_url,
                 metrics_urls=None):
        self.name = name
        self.metrics_urls = metrics_urls  # service -> base URL of its /metrics (the project only)
        self.target = target
        # The idle scenario connects straight to the stream service: through the gateway,
        # 10,000 streams take 20,000 descriptors in nginx's one worker.
        self.direct_target = dataclasses.replace(target, base_url=stream_direct_url)
        self.groups = groups
        self.stream_pids = stream_pids
        self.redis = redis_client
        self.room_prefix = room_prefix
        self._rooms = 0

    def rooms(self, count, label):
        self._rooms += 1
        return [f"{self.room_prefix}-{label}{self._rooms}-{i}" for i in range(count)]

    def hops_before(self):
        return hops.snapshot(self.metrics_urls) if self.metrics_urls else None

    def hops_after(self, before):
        return hops.delta(before, hops.snapshot(self.metrics_urls)) if before is not None else None

    def subscribed_counter(self, rooms):
        async def count():
            pairs = self.redis.pubsub_numsub(*rooms)
            return sum(n for _, n in pairs)
        return count


# -- scenarios ------------------------------------------------------------------------


def _step_summary(step, monitor_result, stack_groups):
    lat_send = step.pop("latency_send_ms")
    lat_ts = step.pop("latency_ts_ms")
    step.pop("latency_by_second_ms", None)
    step.pop("_senders", None)
    post_ms = step.pop("post_ms")
    seconds = step["send_seconds"]
    step["acked_rate"] = step["acked"] / seconds if seconds > 0 else 0.0
    # Delivered over the whole step, the drain included: a backlog delivered late is not
    # throughput at the offered rate.
    step["deliveries_per_s"] = step["received"] / step["deliver_seconds"] if step["deliver_seconds"] > 0 else 0.0
    step["latency_send"] = stats.quantiles(lat_send)
    step["latency_ts"] = stats.quantiles(lat_ts) if len(lat_ts) else None
    step["post_latency"] = stats.quantiles(post_ms)
    step["resources"] = monitor_result
    stack_cores = sum(monitor_result["groups"][g]["cpu_cores_mean"] for g in stack_groups)
    step["stack_cores"] = stack_cores
    step["deliveries_per_core"] = step["deliveries_per_s"] / stack_cores if stack_cores > 0 else None
    step["loadgen_cores"] = monitor_result["groups"]["loadgen"]["cpu_cores_mean"]
    return step


async def _warm_up(system, readers, sender_base, rate=None):
    """One message per room until every reader has it: the pipeline's consumers have
    their partitions and every subscription is in place before anything is measured.
    ``rate``: messages/s (by default one second for all the rooms)."""
    for attempt in range(5):
        step = await loadgen.run_step(system.target, readers, rate=rate or len(readers.rooms), duration=1,
                                      sender_base=sender_base + attempt * 1000, drain_timeout=15)
        if step["received"] >= step["expected_deliveries"] and step["expected_deliveries"] > 0 and step["lost"] == 0:
            loadgen.reset_reader_counters(readers)
            return attempt + 1
    loadgen.reset_reader_counters(readers)
    return None


async def capacity_search(system, readers, cap, log, base, label="capacity"):
    """From ``cap["start_rate"]`` up by ``cap["factor"]`` per step until a step fails (p99 from
    the send over ``cap["p99_limit_ms"]``, anything lost, duplicated, reordered or dropped,
    fewer than 90% of the offered POSTs acknowledged), a failure tried once more, then
    refinement steps between the last pass and the stop. Returns the search's figures and the
    next free sender id."""
    steps = []
    stack_groups = list(system.groups)

    async def run_step(rate, index, kind):
        nonlocal base
        hops0 = system.hops_before()
        monitor = Monitor(system.groups, loadgen_pid=loadgen.pid()).start()
        step = await loadgen.run_step(system.target, readers, rate, cap["step_duration"], base)
        step = _step_summary(step, monitor.stop(), stack_groups)
        step["hops"] = system.hops_after(hops0)
        base += 100_000
        loadgen.reset_reader_counters(readers)
        p99 = step["latency_send"]["p99"] if step["latency_send"] else float("inf")
        step["passed"] = (step["lost"] == 0 and step["duplicates"] == 0 and step["reordered"] == 0
                          and step["readers_dropped"] == 0
                          and p99 <= cap["p99_limit_ms"] and step["post_errors"] == 0
                          and step["acked_rate"] >= 0.9 * rate)
        steps.append(step)
        log(f"[{system.name}] {label} {kind} {index + 1}: offered {rate:.0f} msg/s, acked "
            f"{step['acked_rate']:.0f}/s, {step['deliveries_per_s']:.0f} deliveries/s, lost {step['lost']}, "
            f"dup {step['duplicates']}, reord {step['reordered']}, dropped {step['readers_dropped']}, "
            f"p99 {p99:.1f} ms, stack {step['stack_cores']:.2f} cores, loadgen "
            f"{step['loadgen_cores']:.2f} -> {'pass' if step['passed'] else 'FAIL'}")
        return step

    start_rate = cap["start_rate"]
    rate = start_rate[system.name] if isinstance(start_rate, dict) else start_rate
    retried = False
    for index in range(cap["max_steps"] + 1):
        step = await run_step(rate, index, "step")
        if not step["passed"]:
            # One failure may be a pause elsewhere on the machine: the same rate
            # once more, after a quiet period, before the search stops.
            if retried or index + 1 >= cap["max_steps"]:
                break
            retried = True
            step["retry_follows"] = True
            await loadgen.quiesce(readers)
            loadgen.reset_reader_counters(readers)
            continue
        if index + 1 >= cap["max_steps"] + (1 if retried else 0):
            break
        rate *= cap["factor"]
        await asyncio.sleep(0.5)
    # The ladder's factor is the resolution of what it finds: between the last rate that
    # passed and the one that stopped it, a few more steps, each halving the gap (on a
    # log scale), so two systems a step apart are not taken for a factor apart.
    passed = [s["offered_rate"] for s in steps if s["passed"]]
    if passed and not steps[-1]["passed"]:
        low, high = max(passed), steps[-1]["offered_rate"]
        for index in range(cap.get("refine_steps", 0)):
            await loadgen.quiesce(readers)
            loadgen.reset_reader_counters(readers)
            step = await run_step((low * high) ** 0.5, index, "refinement")
            step["refinement"] = True
            if step["passed"]:
                low = step["offered_rate"]
            else:
                high = step["offered_rate"]
    passing = [s for s in steps if s["passed"]]
    best = max(passing, key=lambda s: s["deliveries_per_s"]) if passing else None
    failed = report.stopping_step(steps)
    return {
        "params": dict(cap),
        "steps": steps,
        "capacity_deliveries_per_s": best["deliveries_per_s"] if best else 0.0,
        "capacity_messages_per_s": best["acked_rate"] if best else 0.0,
        "capacity_step": steps.index(best) if best else None,
        "deliveries_per_core_at_capacity": best["deliveries_per_core"] if best else None,
        "stack_cores_at_capacity": best["stack_cores"] if best else None,
        "first_failure": {
            "offered_rate": failed["offered_rate"], "lost": failed["lost"],
            # None: nothing arrived
            "p99_ms": failed["latency_send"]["p99"] if failed["latency_send"] else None,
            "acked_rate": failed["acked_rate"], "post_errors": failed["post_errors"],
        } if failed else None,
        "retried_steps": sum(1 for s in steps if s.get("retry_follows")),
        # Summed over every step: what the search lost, duplicated or reordered anywhere.
        "lost": sum(s["lost"] for s in steps),
        "duplicates": sum(s["duplicates"] for s in steps),
        "reordered": sum(s["reordered"] for s in steps),
    }, base


async def delivery_scenarios(system, params, wanted, log):
    """The capacity search from a low rate up, then (once nothing is arriving any more)
    the fan-out, on one set of connections."""
    out: dict[str, Any] = {}
    fan = params["fanout"]
    cap = params["capacity"]
    clients, rooms_n = (fan["clients"], fan["rooms"]) if "fanout" in wanted else (cap["clients"], cap["rooms"])
    rooms = system.rooms(rooms_n, "f")
    readers = loadgen.Readers(system.target, rooms, clients)
    stack_groups = list(system.groups)
    log(f"[{system.name}] opening {clients} SSE connections over {rooms_n} rooms")
    open_s = await readers.open(subscribed=system.subscribed_counter(rooms))
    log(f"[{system.name}] opened in {open_s:.1f} s ({readers.failed} failed)")
    warm = await _warm_up(system, readers, 1_000_000)
    log(f"[{system.name}] warm-up: {'ok after ' + str(warm) if warm else 'FAILED'}")
    base = 2_000_000
    try:
        if "capacity" in wanted:
            out["capacity"], base = await capacity_search(system, readers, cap, log, base)
            out["capacity"]["params"].update(clients=clients, rooms=rooms_n)
        if "fanout" in wanted:
            waited = await loadgen.quiesce(readers)
            loadgen.reset_reader_counters(readers)
            log(f"[{system.name}] quiet after {waited:.1f} s")
            hops0 = system.hops_before()
            monitor = Monitor(system.groups, loadgen_pid=loadgen.pid()).start()
            step = await loadgen.run_step(system.target, readers, fan["rate"], fan["duration"], base)
            out["fanout"] = {"params": {**fan}, "open_seconds": open_s, "warm_up_tries": warm,
                             **_step_summary(step, monitor.stop(), stack_groups),
                             "hops": system.hops_after(hops0)}
            f = out["fanout"]
            log(f"[{system.name}] fan-out: {f['deliveries_per_s']:.0f} deliveries/s, lost {f['lost']}, "
                f"dup {f['duplicates']}, reordered {f['reordered']}, dropped {f['readers_dropped']}, "
                f"p50 {stats.pick(f['latency_send'], 'p50'):.1f} ms, "
                f"p99 {stats.pick(f['latency_send'], 'p99'):.1f} ms, stack {f['stack_cores']:.2f} cores, "
                f"loadgen {f['loadgen_cores']:.2f} cores")
            base += 100_000
            loadgen.reset_reader_counters(readers)
    finally:
        await readers.close()
    return out


async def small_rooms_scenario(system, params, log):
    """Many small rooms (direct messages and small groups): the capacity search over
    ``clients`` readers in ``rooms`` rooms (two per room in the full profile). A message
    reaches two readers, so what it costs before the fan-out is nearly all it costs."""
    sr = params["small_rooms"]
    rooms = system.rooms(sr["rooms"], "m")
    readers = loadgen.Readers(system.target, rooms, sr["clients"])
    log(f"[{system.name}] small rooms: opening {sr['clients']} SSE connections over {sr['rooms']} rooms")
    open_s = await readers.open(subscribed=system.subscribed_counter(rooms))
    log(f"[{system.name}] opened in {open_s:.1f} s ({readers.failed} failed)")
    try:
        # A message per room, at the search's lowest rate spread over a few seconds at most.
        warm = await _warm_up(system, readers, 1_000_000, rate=max(len(rooms) / sr["warm_up_s"], 1))
        log(f"[{system.name}] warm-up: {'ok after ' + str(warm) if warm else 'FAILED'}")
        result, _ = await capacity_search(system, readers, sr, log, 2_000_000, label="small rooms")
    finally:
        await readers.close()
    log(f"[{system.name}] small rooms: capacity {result['capacity_deliveries_per_s']:.0f} deliveries/s "
        f"({result['capacity_messages_per_s']:.0f} msg/s); lost {result['lost']}, dup {result['duplicates']}, "
        f"reordered {result['reordered']} over every step")
    return {**result, "open_seconds": open_s, "readers_failed": readers.failed, "warm_up_tries": warm}


async def idle_scenario(system, params, log):
    idle = params["idle"]
    rooms = system.rooms(idle["rooms"], "i")
    total = idle["connections"]
    stages = max(1, idle["stages"])
    await asyncio.sleep(idle["settle_s"])
    base_stream = rss_bytes(system.stream_pids)
    base_groups = {name: rss_bytes([pid]) for name, pid in system.groups.items()}
    base_loadgen = psutil.Process(loadgen.pid()).memory_info().rss
    points = [{"connections": 0, "stream_rss_bytes": base_stream}]
    readers_sets = []
    opened = 0
    failed = 0
    started = time.monotonic()
    try:
        for stage in range(stages):
            n = total * (stage + 1) // stages - opened
            readers = loadgen.Readers(system.direct_target, rooms, n)
            readers_sets.append(readers)
            counter = system.subscribed_counter(rooms)
            if system.target.greets_on_connect:
                await readers.open(concurrency=500)
            else:
                async def cumulative(c=counter, before=opened):
                    return await c() - before
                await readers.open(concurrency=500, subscribed=cumulative)
            opened += n
            failed = sum(r.failed for r in readers_sets)
            await asyncio.sleep(idle["settle_s"])
            points.append({"connections": opened - failed, "stream_rss_bytes": rss_bytes(system.stream_pids)})
            log(f"[{system.name}] idle: {opened - failed} open ({failed} failed), stream RSS "
                f"{points[-1]['stream_rss_bytes'] / 2**20:.1f} MiB")
        groups_after = {name: rss_bytes([pid]) for name, pid in system.groups.items()}
        open_now = opened - failed
        delta = points[-1]["stream_rss_bytes"] - base_stream
        result = {
            "params": dict(idle),
            "open_seconds": time.monotonic() - started,
            "connections": open_now,
            "failed": failed,
            "errors": sorted({e for rs in readers_sets for e in rs.errors})[:5],
            "stream_rss_before_bytes": base_stream,
            "stream_rss_after_bytes": points[-1]["stream_rss_bytes"],
            "bytes_per_connection_before_after": delta / open_now if open_now else None,
            # The slope of RSS against connections (least squares over the stages): the
            # marginal cost, unaffected by memory an earlier scenario left free in the heap.
            "bytes_per_connection_slope": _slope(points),
            "bytes_per_connection": max(delta / open_now, _slope(points) or 0.0) if open_now else None,
            "points": points,
            "rss_delta_by_group_bytes": {n: groups_after[n] - base_groups[n] for n in base_groups},
            "loadgen_rss_delta_bytes": psutil.Process(loadgen.pid()).memory_info().rss - base_loadgen,
            "redis_clients": system.redis.info("clients").get("connected_clients"),
        }
    finally:
        for readers in readers_sets:
            await readers.close()
    await asyncio.sleep(1)
    return result


def _slope(points):
    """Bytes per connection: the slope of RSS against connections, over at least three points."""
    if len(points) < 3:
        return None
    fitted = stats.line([(p["connections"], p["stream_rss_bytes"]) for p in points])
    return fitted[1] if fitted else None


async def ingest_scenario(system, params, log):
    ing = params["ingest"]
    rooms = system.rooms(ing["rooms"], "p")
    await loadgen.ingest_closed_loop(system.target, rooms, 4, 1.0)  # warm the producers
    monitor = Monitor(system.groups, loadgen_pid=loadgen.pid()).start()
    res = await loadgen.ingest_closed_loop(system.target, rooms, ing["concurrency"], ing["duration"])
    mon = monitor.stop()
    stack_cores = sum(mon["groups"][g]["cpu_cores_mean"] for g in system.groups)
    ingest_group = "ingest" if "ingest" in system.groups else "seed-app"
    rate = res["acked"] / res["seconds"]
    result = {
        "params": dict(ing),
        "acked": res["acked"], "errors": res["errors"], "seconds": res["seconds"],
        "acked_per_s": rate,
        "post_latency": stats.quantiles(res["post_ms"]),
        "stack_cores": stack_cores,
        "acked_per_stack_core": rate / stack_cores if stack_cores else None,
        "ingest_cores": mon["groups"][ingest_group]["cpu_cores_mean"],
        "acked_per_ingest_core": rate / mon["groups"][ingest_group]["cpu_cores_mean"]
        if mon["groups"][ingest_group]["cpu_cores_mean"] else None,
        "loadgen_cores": mon["groups"]["loadgen"]["cpu_cores_mean"],
        "resources": mon,
    }
    log(f"[{system.name}] ingest: {rate:.0f} acked/s, {result['errors']} errors, stack {stack_cores:.2f} cores "
        f"({result['acked_per_stack_core']:.0f}/core), ingest {result['ingest_cores']:.2f} cores, "
        f"loadgen {result['loadgen_cores']:.2f}, p99 {result['post_latency']['p99']:.1f} ms")
    return result


# -- the run ------------------------------------------------------------------------------


def machine_description():
    def version(cmd):
        try:
            out = subprocess.run(cmd, capture_output=True, text=True, timeout=10)
            return (out.stdout or out.stderr).strip().splitlines()[0]
        except (OSError, IndexError, subprocess.TimeoutExpired):
            return None

    cpu_model = None
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    packages: dict[str, str | None] = {}
    for name in ("psutil", "matplotlib", "flask", "flask-sse", "gunicorn", "gevent",
                 "kafka-python", "redis"):
        try:
            packages[name] = package_version(name)
        except PackageNotFoundError:
            packages[name] = None
    kafka_jars = sorted(p.name for p in (ROOT / ".cache" / "kafka" / "libs").glob("kafka_*.jar"))
    commit = version(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"])
    dirty = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "--untracked-files=no"],
                           capture_output=True, text=True).stdout.strip() != ""
    return {
        "hostname": platform.node(), "platform": platform.platform(), "python": platform.python_version(),
        "cpu_model": cpu_model, "logical_cpus": psutil.cpu_count(), "physical_cpus": psutil.cpu_count(False),
        "memory_bytes": psutil.virtual_memory().total, "load_avg_at_start": os.getloadavg(),
        "nginx": version(["nginx", "-v"]), "redis": version(["redis-server", "--version"]),
        "java": version(["java", "-version"]), "kafka_jars": kafka_jars[:2], "packages": packages,
        "git_commit": commit, "git_dirty": dirty,
    }


async def run_all(profile_name, params, only, wanted, log):
    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y%m%dT%H%M%SZ")
    run_dir = ROOT / ".run" / "bench" / stamp
    fd_limit = raise_fd_limit()
    result = {"timestamp": stamp, "profile": profile_name, "params": params, "scenarios": list(wanted),
              "systems": list(only), "machine": machine_description(), "fd_limit": fd_limit, "results": {}}
    log(f"load average at start: {result['machine']['load_avg_at_start']}")
    started = time.monotonic()
    gateway_connections = nginx_connections(fd_limit[0])
    ours = OursStack(run_dir / "stack", nginx_connections=gateway_connections)
    log("starting the stack (Kafka, Redis, ingest, bridge, stream, nginx)")
    ours.start(timeout=240)
    seed = centrifugo = None
    try:
        r = redis.Redis.from_url(ours.settings.redis_url)
        # flask-sse holds one Redis connection per open stream: let Redis take the idle
        # scenario's (as far as the descriptor limit allows).
        r.config_set("maxclients", max(10000, min(50000, fd_limit[0] - 1000)))
        ours.wait_partitions(log)
        groups = ours.groups()
        shared = {name: groups[name] for name in SHARED_PROGRAMS}
        tag = stamp[-7:-1].lower()
        systems = []
        if "ours" in only:
            systems.append(System("ours", loadgen.Target("ours", ours.settings.gateway_url, "ours"), groups,
                                  ours.stream_pids(), r, f"b{tag}", ours.settings.service_url("stream"),
                                  {name: ours.settings.service_url(name) for name in ("ingest", "bridge", "stream")}))
        if "ours-fanout" in only:
            # The fan-out stage: published into Redis as the bridge does; ingest, Kafka and the
            # bridge have nothing to do, so only what carries the stage is counted.
            target = loadgen.Target("ours-fanout", ours.settings.gateway_url, "ours-redis",
                                    redis=bridge_publisher(ours.settings))
            systems.append(System("ours-fanout", target, {n: groups[n] for n in ("nginx", "stream", "redis")},
                                  ours.stream_pids(), r, f"r{tag}", ours.settings.service_url("stream"),
                                  {"stream": ours.settings.service_url("stream")}))
        if {"centrifugo", "centrifugo-fanout"} & set(only):
            log("starting Centrifugo (built once into the per-user cache: a first build takes minutes)")
            centrifugo = CentrifugoStack(run_dir / "centrifugo", ours.settings.kafka_bootstrap, ours.settings.redis_url,
                                         ours.settings.partitions, nginx_connections=gateway_connections).start()
            c_groups = centrifugo.groups()
            if "centrifugo" in only:
                systems.append(System("centrifugo", loadgen.Target("centrifugo", centrifugo.gateway_url,
                                                                   "centrifugo-kafka"),
                                      {**c_groups, **shared}, centrifugo.stream_pids(), r, f"c{tag}",
                                      centrifugo.api_url))
            if "centrifugo-fanout" in only:
                target = loadgen.Target("centrifugo-fanout", centrifugo.gateway_url, "centrifugo",
                                        publish_url=centrifugo.api_url, api_key=centrifugo.API_KEY)
                systems.append(System("centrifugo-fanout", target,
                                      {"centrifugo-nginx": c_groups["centrifugo-nginx"],
                                       "centrifugo": c_groups["centrifugo"], "redis": groups["redis"]},
                                      centrifugo.stream_pids(), r, f"d{tag}", centrifugo.api_url))
        if "seed" in only:
            seed = SeedStack(run_dir / "seed", ours.settings.kafka_bootstrap, ours.settings.redis_url,
                             nginx_connections=gateway_connections).start()
            systems.append(System("seed", loadgen.Target("seed", seed.gateway_url, "seed"),
                                  {**seed.groups(), **shared}, seed.stream_pids(), r, f"s{tag}",
                                  f"http://127.0.0.1:{seed.stream_port}"))
        log(f"stacks up in {time.monotonic() - started:.0f} s")
        # Warm the broker's JIT (and a pipeline) before anything is measured, so that the
        # system measured first does not pay for a cold JVM. Not the seed's: its /sendmsg
        # answers before Kafka has the message, and its consumer would still be draining
        # the backlog while ours is measured; its delivery warm-up comes before its own steps.
        for system in [s for s in systems if s.name in ("ours", "centrifugo")][:1]:
            rooms = system.rooms(4, "w")
            warm = await loadgen.ingest_closed_loop(system.target, rooms, 8, params["warm_up_s"])
            log(f"[{system.name}] warm-up: {warm['acked']} messages posted in {warm['seconds']:.1f} s")
        # Idle first, on freshly started stream services: their "before" is not memory
        # that an earlier scenario's connections left in the heap.
        for system in systems:
            res = result["results"].setdefault(system.name, {})
            if "idle" in wanted and system.name in IDLE_SYSTEMS:
                res["idle"] = await idle_scenario(system, params, log)
        # The seed last: a seed left with a backlog (its consumer keeps draining Kafka
        # after the readers are gone) must not run next to a measurement of another system.
        for system in systems:
            if {"fanout", "capacity"} & set(wanted):
                result["results"][system.name].update(await delivery_scenarios(system, params, wanted, log))
            if "ingest" in wanted and system.name == "ours":
                result["results"][system.name]["ingest"] = await ingest_scenario(system, params, log)
            if "scrollback" in wanted and system.name == "ours":  # the seed has no history
                result["results"][system.name]["scrollback"] = await scrollback.scrollback_scenario(
                    system, params, log, ours.settings.kafka_bootstrap, "chat.messages", ours.settings.partitions)
            if "small_rooms" in wanted and system.name in SMALL_ROOMS_SYSTEMS:
                result["results"][system.name]["small_rooms"] = await small_rooms_scenario(system, params, log)
        # Cold start last: it replaces the services' processes, whose pids the others monitor.
        if "coldstart" in wanted and "ours" in only:
            result["results"]["ours"]["coldstart"] = await coldstart.coldstart_scenario(
                ours, loadgen.Target("ours", ours.settings.gateway_url, "ours"), params, log, f"k{tag}")
        result["stack_logs"] = str(run_dir)
    finally:
        loadgen.stop()
        for peer in (seed, centrifugo):
            if peer is not None:
                peer.stop()
        ours.stop()
    result["elapsed_s"] = time.monotonic() - started
    return result


def _set(params, assignment):
    key, value = assignment.split("=", 1)
    node = params
    parts = key.split(".")
    for part in parts[:-1]:
        node = node[part]
    old = node.get(parts[-1])
    numeric = isinstance(old, (int, float)) and not isinstance(old, bool)
    node[parts[-1]] = type(old)(value) if numeric else json.loads(value)


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profile", choices=sorted(PROFILES), default="full")
    parser.add_argument("--only", default=",".join(SYSTEMS), help="systems: " + ",".join(SYSTEMS))
    parser.add_argument("--scenarios", default=",".join(SCENARIOS))
    parser.add_argument("--set", action="append", default=[], metavar="SCENARIO.KEY=VALUE",
                        help="override a parameter, e.g. fanout.clients=500")
    parser.add_argument("--out", default=str(RESULTS))
    parser.add_argument("--no-latest", action="store_true", help="do not update latest.md and latest-*.png")
    args = parser.parse_args(argv)
    params = copy.deepcopy(PROFILES[args.profile])
    for assignment in args.set:
        _set(params, assignment)
    only = [s for s in args.only.split(",") if s]
    wanted = [s for s in args.scenarios.split(",") if s]

    def log(text):
        print(f"{time.strftime('%H:%M:%S')} {text}", flush=True)

    result = asyncio.run(run_all(args.profile, params, only, wanted, log))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    paths = report.write(result, out, latest=not args.no_latest)
    for path in paths:
        log(f"wrote {path}")
    return result


if __name__ == "__main__":
    main()
