"""The cold-start scenario: the first seconds of a fresh instance of each service.

Every instance of ingest, the bridge and the stream service is stopped, then started again
(Kafka, Redis and the gateway stay up, as they do in a rollout); from the moment every one of
them answers 200 on its ``/readyz`` (polled every 50 ms, whatever each service's readiness
checks), ``readers`` SSE readers open over ``rooms`` rooms through the gateway and senders post
``rate`` messages/s for ``duration`` s. The delivery latency (from the send) is reported for
each of the first ``seconds`` seconds of sending, then the same step is run again on the now
warm stack, for comparison. It replaces the services' processes, so it runs after every other
scenario of the stack.
"""

import asyncio
import time
import urllib.error
import urllib.request
from typing import Any

from bench.kit import loadgen, stats
from local.stack import Stack

RESTARTED = ("ingest", "bridge", "stream")  # the services a rollout replaces
POLL_S = 0.05
FIRST_S = 3  # the target's window: the first seconds after ready, against the warm p99
TARGET_RATIO = 2.0  # p99 of the first FIRST_S seconds within this many times the warm p99


def _ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as answer:
            return bool(answer.status == 200)
    except (urllib.error.URLError, OSError):
        return False


async def _wait_ready(urls: dict[str, str], since: float, timeout: float) -> dict[str, float]:
    """Each instance's seconds from ``since`` to its first 200 on /readyz."""
    ready: dict[str, float] = {}
    deadline = since + timeout
    while len(ready) < len(urls):
        for name, url in urls.items():
            if name not in ready and await asyncio.to_thread(_ready, url):
                ready[name] = time.monotonic() - since
        if time.monotonic() > deadline:
            missing = sorted(set(urls) - set(ready))
            raise TimeoutError(f"not ready after {timeout} s: {', '.join(missing)}")
        if len(ready) < len(urls):
            await asyncio.sleep(POLL_S)
    return ready


def _seconds(by_second: list[list[float]], seconds: int) -> list[dict[str, Any]]:
    rows = []
    for s in range(seconds):
        q = stats.quantiles(by_second[s] if s < len(by_second) else [])
        rows.append({"second": s, "count": q["count"] if q else 0, "p50_ms": q["p50"] if q else None,
                     "p99_ms": q["p99"] if q else None, "max_ms": q["max"] if q else None})
    return rows


def _summary(step: dict[str, Any], seconds: int) -> dict[str, Any]:
    by_second = step.pop("latency_by_second_ms")
    latency = step.pop("latency_send_ms")
    step.pop("latency_ts_ms")
    step.pop("post_ms")
    first = stats.quantiles([v for s in by_second[:FIRST_S] for v in s])
    return {**step, "latency_send": stats.quantiles(latency), "by_second": _seconds(by_second, seconds),
            f"first_{FIRST_S}_s_p99_ms": first["p99"] if first else None}


async def coldstart_scenario(stack: Stack, target: loadgen.Target, params: dict[str, Any], log: Any,
                             room_prefix: str) -> dict[str, Any]:
    cs = params["coldstart"]
    programs = [program for name in RESTARTED for program in stack.settings.instances(name)]
    urls = {program: stack.settings.service_url(name, n) + "/readyz"
            for name in RESTARTED for n, program in enumerate(stack.settings.instances(name), start=1)}
    log(f"[ours] cold start: stopping {', '.join(programs)}")
    await asyncio.to_thread(stack.ctl, "stop", *programs)
    started = time.monotonic()
    starting = asyncio.ensure_future(asyncio.to_thread(stack.ctl, "start", *programs))
    try:
        ready = await _wait_ready(urls, started, cs["ready_timeout_s"])
    finally:
        await starting
    ready_s = max(ready.values())
    log(f"[ours] cold start: every instance ready {ready_s:.1f} s after the start ("
        + ", ".join(f"{name} {s:.1f} s" for name, s in ready.items()) + ")")
    rooms = [f"{room_prefix}-k{i}" for i in range(cs["rooms"])]
    readers = loadgen.Readers(target, rooms, cs["readers"])
    opened_at = time.monotonic()
    await readers.open()
    open_s = time.monotonic() - opened_at
    try:
        cold = _summary(await loadgen.run_step(target, readers, cs["rate"], cs["duration"], 5_000_000,
                                               by_second=True), cs["seconds"])
        await loadgen.quiesce(readers)
        loadgen.reset_reader_counters(readers)
        warm = _summary(await loadgen.run_step(target, readers, cs["rate"], cs["duration"], 5_100_000,
                                               by_second=True), cs["seconds"])
    finally:
        await readers.close()
    warm_p99 = warm["latency_send"]["p99"] if warm["latency_send"] else None
    first_p99 = cold[f"first_{FIRST_S}_s_p99_ms"]
    result = {
        "params": dict(cs), "ready_after_start_s": ready, "ready_s": ready_s,
        "readers_open_s": open_s, "readers_failed": readers.failed,
        # The load generator starts sending 0.2 s after the step's command.
        "first_send_after_ready_s": open_s + 0.2,
        "cold": cold, "warm": warm, "warm_p99_ms": warm_p99,
        "first_p99_over_warm_p99": first_p99 / warm_p99 if first_p99 is not None and warm_p99 else None,
    }
    for name, step in (("cold", cold), ("warm", warm)):
        log(f"[ours] cold start, {name}: " + ", ".join(
            f"s{row['second']} p50 {_ms(row['p50_ms'])} / p99 {_ms(row['p99_ms'])}" for row in step["by_second"])
            + f"; lost {step['lost']}, dup {step['duplicates']}, reordered {step['reordered']}")
    return result


def _ms(value: float | None) -> str:
    return "—" if value is None else f"{value:.1f}"


def summary(res: dict[str, Any] | None) -> list[str]:
    """The scenario's lines of the run's summary (bench/report.py)."""
    if not res:
        return []
    p = res["params"]
    cold, warm = res["cold"], res["warm"]
    ratio = res["first_p99_over_warm_p99"]
    verdict = "n/a" if ratio is None else ("**met**" if ratio <= TARGET_RATIO else "**missed**")
    out = ["## Cold start (ours)", "",
           f"Every instance of {', '.join(RESTARTED)} stopped and started again (Kafka, Redis and the gateway "
           f"up); every /readyz answered 200 {res['ready_s']:.1f} s after the start ("
           + ", ".join(f"{name} {s:.1f} s" for name, s in res["ready_after_start_s"].items())
           + f"). From then: {p['readers']:,} SSE readers over {p['rooms']} rooms opened in "
           f"{res['readers_open_s']:.1f} s ({res['readers_failed']} failed), then {p['rate']} msg/s for "
           f"{p['duration']} s; the first message was sent {res['first_send_after_ready_s']:.1f} s after ready. "
           "The same step again once the stack is warm, for comparison. Latency from the send.", "",
           "| second of sending | cold: deliveries | cold p50 / p99 ms | warm p50 / p99 ms |",
           "|---|---|---|---|"]
    for c, w in zip(cold["by_second"], warm["by_second"], strict=True):
        out.append(f"| {c['second']} | {c['count']:,} | {_ms(c['p50_ms'])} / {_ms(c['p99_ms'])} | "
                   f"{_ms(w['p50_ms'])} / {_ms(w['p99_ms'])} |")
    lc, lw = cold["latency_send"] or {}, warm["latency_send"] or {}
    out += [f"| whole step | {cold['received']:,} | {_ms(lc.get('p50'))} / {_ms(lc.get('p99'))} | "
            f"{_ms(lw.get('p50'))} / {_ms(lw.get('p99'))} |", "",
            f"First {FIRST_S} s of sending, p99 {_ms(cold[f'first_{FIRST_S}_s_p99_ms'])} ms against the warm p99 "
            f"{_ms(res['warm_p99_ms'])} ms: "
            + ("n/a" if ratio is None else f"{ratio:.2f}x") + f" (target <= {TARGET_RATIO:.0f}x: {verdict}). "
            f"Lost / duplicated / reordered: cold {cold['lost']} / {cold['duplicates']} / {cold['reordered']}, "
            f"warm {warm['lost']} / {warm['duplicates']} / {warm['reordered']}; POST errors cold "
            f"{cold['post_errors']}, warm {warm['post_errors']}.", ""]
    return out
