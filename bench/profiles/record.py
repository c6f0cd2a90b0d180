"""Flame graphs of ingest, the bridge and a stream worker under the fan-out load (py-spy).

    .venv/bin/python bench/profiles/record.py [OUT_DIR]   # default: bench/profiles/

Starts the local stack on free ports (in .run/profile/), opens 1,000 SSE readers over 10
rooms through the gateway, posts 100 messages/s for 25 s with the benchmark's load generator
and records one worker of each service for 20 s of it (py-spy, 50 samples/s, without
pausing the process), then stops everything.
"""

import asyncio
import datetime
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

import psutil  # noqa: E402
import redis  # noqa: E402

from bench import loadgen, run  # noqa: E402
from bench.stacks import OursStack  # noqa: E402

CLIENTS, ROOMS, RATE, SECONDS = 1000, 10, 100, 25
PY_SPY = Path(sys.executable).parent / "py-spy"


def main():
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "bench" / "profiles"
    out.mkdir(parents=True, exist_ok=True)
    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y%m%dT%H%M%SZ")
    stack = OursStack(ROOT / ".run" / "profile" / stamp, nginx_connections=8192)
    stack.start(timeout=240)
    try:
        r = redis.Redis.from_url(stack.settings.redis_url)
        run._wait_history_ready(r, stack.settings.partitions, print, timeout=120)
        asyncio.run(_record(stack, out))
    finally:
        loadgen.stop()
        stack.stop()


async def _record(stack, out):
    target = loadgen.Target("ours", stack.settings.gateway_url, "ours")
    readers = loadgen.Readers(target, [f"profile-{i}" for i in range(ROOMS)], CLIENTS)
    await readers.open()
    await loadgen.run_step(target, readers, ROOMS, 1, 1)  # every subscription in place

    def worker(name):
        root = psutil.Process(stack.pid(name))
        return (root.children() or [root])[0].pid

    spies = [subprocess.Popen([str(PY_SPY), "record", "-p", str(worker(name)), "-d", str(SECONDS - 5), "-r", "50",
                               "--nonblocking", "-o", str(out / f"{name}-fanout.svg")],
                              stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
             for name in ("ingest", "bridge", "stream")]
    step = await loadgen.run_step(target, readers, RATE, SECONDS, 100_000)
    for spy in spies:
        spy.wait()
    await readers.close()
    print({key: step[key] for key in ("acked", "received", "lost", "duplicates", "reordered")})


if __name__ == "__main__":
    main()
