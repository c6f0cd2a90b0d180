"""Flame graphs of ingest, the bridge and a stream worker under the fan-out load (py-spy).

    .venv/bin/python bench/profiles/record.py [OUT_DIR]   # default: bench/profiles/

Starts the local stack on free ports (in .run/profile/), opens 1,000 SSE readers over 10
rooms through the gateway, posts 100 messages/s for 25 s with the benchmark's load generator
and records one worker of each service for 20 s of it (py-spy, 50 samples/s, without
pausing the process), then stops everything.
"""

import asyncio
import subprocess
import sys
from pathlib import Path

import psutil

from bench.kit import loadgen, stacks

CLIENTS, ROOMS, RATE, SECONDS = 1000, 10, 100, 25


def main() -> None:
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else stacks.ROOT / "bench" / "profiles"
    out.mkdir(parents=True, exist_ok=True)
    with stacks.ours(stacks.run_dir("profile"), nginx_connections=8192) as stack:
        asyncio.run(_record(stack, out))


async def _record(stack: stacks.OursStack, out: Path) -> None:
    target = loadgen.Target("ours", stack.settings.gateway_url, "ours")
    readers = loadgen.Readers(target, [f"profile-{i}" for i in range(ROOMS)], CLIENTS)
    await readers.open()
    await loadgen.run_step(target, readers, ROOMS, 1, 1)  # every subscription in place

    def worker(name: str) -> int:
        root = psutil.Process(stack.pid(name))
        return (root.children() or [root])[0].pid

    spies = [subprocess.Popen([str(stacks.VENV_BIN / "py-spy"), "record", "-p", str(worker(name)), "-d",
                               str(SECONDS - 5), "-r", "50", "--nonblocking", "-o", str(out / f"{name}-fanout.svg")],
                              stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
             for name in ("ingest", "bridge", "stream")]
    step = await loadgen.run_step(target, readers, RATE, SECONDS, 100_000)
    for spy in spies:
        spy.wait()
    await readers.close()
    print({key: step[key] for key in ("acked", "received", "lost", "duplicates", "reordered")})


if __name__ == "__main__":
    main()
