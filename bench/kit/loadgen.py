"""The harness's side of the load generator (bench/loadgen-go, a compiled program).

One load generator process serves the whole run: the harness starts it on first use
(building it into the per-user cache if needed, bench/tools.sh) and sends it one JSON
command per line; it answers each with one JSON line. It holds the SSE readers (kept open
across steps), runs the paced senders and checks every event for loss, duplicates and
order; the functions here keep the harness's view of it:

- ``Readers(target, rooms, clients)``: ``await open()``, ``failed``, ``errors``, ``await close()``;
- ``async with senders(target, rooms)``: the rooms a step posts to with nobody reading them
  (ingest's side alone);
- ``await run_step(target, readers, rate, duration, sender_base)``: one measured step, as a
  dict (offered and acknowledged messages, deliveries, lost / duplicates / reordered,
  every latency in ms);
- ``await quiesce(readers)``, ``reset_reader_counters(readers)``;
- ``await ingest_closed_loop(target, rooms, concurrency, duration)``;
- ``pid()``: the process whose CPU the monitor books as the load generator's;
- ``Process(binary, env)``: a load generator of its own (another build, a CPU profile), for
  a driver that measures load generators side by side.

Every message carries its sender, a per-sender sequence number and the send time in its
text, ``S:<sender>:<seq>:<send time, epoch microseconds>``, the same for every system; see
bench/loadgen-go/main.go.
"""

import asyncio
import atexit
import contextlib
import json
import os
import subprocess
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

from bench.kit.tools import tool

Step = dict[str, Any]  # a step's figures, as the load generator reports them (bench/loadgen-go/state.go)


@dataclass(frozen=True)
class Target:
    """How the load generator talks to one system under test (kinds: bench/loadgen-go/target.go).

    ``base_url``: the gateway (readers, and the POSTs of ``ours``, ``seed`` and
    ``centrifugo-kafka``); ``publish_url`` and ``api_key``: Centrifugo's HTTP API (kind
    ``centrifugo``); ``redis``: where and how the bridge publishes (kind ``ours-redis``,
    kit/fanout.py).
    """

    name: str
    base_url: str
    kind: str
    publish_url: str = ""
    api_key: str = ""
    redis: dict[str, Any] | None = None

    @property
    def greets_on_connect(self) -> bool:
        """The project and Centrifugo write at once; flask-sse writes nothing before the first event."""
        return self.kind != "seed"

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


def binary() -> str:
    """The load generator's path, built first if its sources changed."""
    return tool("loadgen")


class Process:
    """A running load generator: one command at a time. ``binary``: another build than this
    checkout's; ``env``: added to its environment (e.g. ``LOADGEN_CPUPROFILE``)."""

    def __init__(self, binary_path: str | None = None, env: Mapping[str, str] | None = None):
        self.binary = binary_path or binary()
        self.proc = subprocess.Popen([self.binary], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                                     bufsize=1, env={**os.environ, **(env or {})})
        self.lock = threading.Lock()

    @property
    def pid(self) -> int:
        return self.proc.pid

    def call(self, cmd: str, **arg: Any) -> Any:
        assert self.proc.stdin is not None and self.proc.stdout is not None  # both are pipes
        with self.lock:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the load generator exited ({self.proc.returncode})")
            self.proc.stdin.write(json.dumps({"cmd": cmd, "arg": arg}) + "\n")
            self.proc.stdin.flush()
            line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"the load generator exited ({self.proc.wait()})")
        reply = json.loads(line)
        if not reply["ok"]:
            raise RuntimeError(f"load generator {self.binary}: {cmd}: {reply['error']}")
        return reply.get("result")

    def stop(self) -> None:
        if self.proc.poll() is None:
            try:
                self.call("stop")
                self.proc.wait(10)
            except (OSError, RuntimeError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait()


_process: Process | None = None
_process_lock = threading.Lock()


def process() -> Process:
    """The run's load generator, started on first use."""
    global _process
    with _process_lock:
        if _process is None or _process.proc.poll() is not None:
            _process = Process()
        return _process


def pid() -> int:
    return process().pid


@atexit.register
def stop() -> None:
    """Ends the load generator (its readers close); the next call starts a new one."""
    global _process
    with _process_lock:
        if _process is not None:
            _process.stop()
            _process = None


async def _call(cmd: str, **arg: Any) -> Any:
    return await asyncio.to_thread(process().call, cmd, **arg)


class Readers:
    """A set of SSE readers spread round-robin over rooms, kept open across steps."""

    def __init__(self, target: Target, rooms: list[str], clients: int):
        self.target = target
        self.rooms = rooms
        self.clients = clients
        self.id: int | None = None
        self.failed = 0
        self.errors: list[str] = []

    async def open(self, concurrency: int = 200, timeout: float = 120.0,
                   subscribed: Callable[[], Awaitable[int]] | None = None) -> float:
        """Open every connection; return the seconds it took. ``subscribed()`` (a count of
        subscribers seen by Redis) is how readiness is known for a stream that stays silent."""
        started = time.monotonic()
        status = await _call("open", target=self.target.as_json(), rooms=self.rooms, clients=self.clients,
                             concurrency=concurrency)
        self.id = status["set"]
        deadline = time.monotonic() + timeout
        if not self.target.greets_on_connect and subscribed is not None:
            while await subscribed() < self.clients and time.monotonic() < deadline:
                await asyncio.sleep(0.2)
        await self.refresh()
        return time.monotonic() - started

    async def refresh(self) -> None:
        status = await _call("status", set=self.id)
        self.failed, self.errors = status["failed"], status["errors"]

    async def close(self) -> None:
        if self.id is not None:
            await _call("close", set=self.id)
            self.id = None


@contextlib.asynccontextmanager
async def senders(target: Target, rooms: list[str]) -> AsyncIterator[Readers]:
    """The rooms ``run_step`` posts to, with nobody reading them (POSTs only), closed at the end."""
    posters = Readers(target, rooms, 0)
    await posters.open()
    try:
        yield posters
    finally:
        await posters.close()


async def run_step(target: Target, readers: Readers, rate: float, duration: float, sender_base: int,
                   per_sender_rate: float = 2.5, drain_timeout: float = 30.0, stall_s: float = 3.0,
                   by_second: bool = False) -> Step:
    """Post ``rate`` messages/s for ``duration`` s over the readers' rooms and wait until
    every reader has received what was acknowledged, or ``drain_timeout`` passes, or
    nothing arrived for ``stall_s``. What has not arrived by then counts as lost.
    ``by_second``: also ``latency_by_second_ms``, the send latencies grouped by the second of
    the step (from its first send) in which each message was sent."""
    assert target == readers.target, "a step posts to the system its readers read"
    step: Step = await _call("step", set=readers.id, rate=rate, duration=duration, sender_base=sender_base,
                             per_sender_rate=per_sender_rate, drain_timeout=drain_timeout, stall_s=stall_s,
                             by_second=by_second)
    return step


async def quiesce(readers: Readers, quiet_s: float = 3.0, timeout: float = 60.0) -> float:
    """Wait until nothing has arrived for ``quiet_s`` (a backlog from the last step is
    delivered or given up on), at most ``timeout``; return the seconds waited."""
    waited: float = await _call("quiesce", set=readers.id, quiet_s=quiet_s, timeout=timeout)
    return waited


def reset_reader_counters(readers: Readers) -> None:
    process().call("reset", set=readers.id)


async def ingest_closed_loop(target: Target, rooms: list[str], concurrency: int, duration: float) -> Step:
    """``concurrency`` posters, each posting again as soon as its last POST is answered."""
    result: Step = await _call("ingest", target=target.as_json(), rooms=rooms, concurrency=concurrency,
                               duration=duration)
    return result
