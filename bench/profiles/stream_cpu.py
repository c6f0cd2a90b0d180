"""Stream CPU per delivery, the stream service alone: Redis and the stream's gunicorn (its
production settings: 2 gevent workers), no Kafka, no gateway, no load generator in between.

    .venv/bin/python bench/profiles/stream_cpu.py [--readers 1000] [--rooms 10] [--rate 100]
        [--seconds 15] [--source DIR] [--py-spy OUT.svg]

Starts redis-server and the stream service on free ports (in a temporary directory), marks
the history ready as the bridge would, opens ``--readers`` raw-socket SSE readers over
``--rooms`` rooms (one process, epoll: its CPU is not counted), then publishes ``--rate``
messages/s into Redis in the bridge's format for ``--seconds`` and reads the CPU time
(user, system) of the stream's workers before and after: CPU per delivery (one message to
one reader). Every reader must count every message (else the run fails). ``--source`` runs
the services of another checkout (e.g. an export of an earlier commit: the same driver for
a before/after); ``--py-spy`` records each worker meanwhile (py-spy, non-blocking): flame
graphs, or with a .txt name the collapsed stacks.

Prints one JSON object. On a shared machine the figures move with its load (reported as
``loadavg``): compare runs taken close together, alternating.
"""

import argparse
import json
import multiprocessing
import os
import select
import socket
import subprocess
import tempfile
import time
from multiprocessing.sharedctypes import Synchronized
from multiprocessing.synchronize import Event
from pathlib import Path
from typing import Any

import psutil
import redis

from bench.kit import cpu, stacks
from chat_common.messages import Message, channel, live_payload


def readers_main(port: int, rooms: list[str], readers: int, ready: Event, stop: Event, counts: list[int],
                 total: "Synchronized[int]") -> None:
    """Open the readers, then count each one's message events until told to stop
    (``total``: all of them so far, for the driver to wait on)."""
    poller = select.epoll()
    socks, tails, seen = {}, {}, {}
    for i in range(readers):
        sock = socket.create_connection(("127.0.0.1", port))
        room = rooms[i % len(rooms)]
        sock.sendall(f"GET /stream/rooms/{room}?history=0 HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
        sock.setblocking(False)
        socks[sock.fileno()] = sock
        tails[sock.fileno()], seen[sock.fileno()] = b"", 0
        poller.register(sock.fileno(), select.EPOLLIN)
    opened: set[int] = set()
    openings = dict.fromkeys(socks, b"")
    while len(opened) < readers:  # every stream's opening read: its room is subscribed
        for fd, _ in poller.poll(1.0):
            data = socks[fd].recv(262144)
            if not data:
                raise ConnectionError("a stream closed before its opening")
            openings[fd] += data
            if b"retry:" in openings[fd]:
                opened.add(fd)
    ready.set()
    marker = b"event: message\n"
    while not stop.is_set():
        for fd, _ in poller.poll(0.2):
            try:
                data = socks[fd].recv(262144)
            except BlockingIOError:
                continue
            if not data:
                poller.unregister(fd)
                continue
            chunk = tails[fd] + data
            found = chunk.count(marker)
            if found:
                seen[fd] += found
                with total.get_lock():
                    total.value += found
            tails[fd] = chunk[-(len(marker) - 1):]
    counts.extend(seen.values())
    for sock in socks.values():
        sock.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--readers", type=int, default=1000)
    parser.add_argument("--rooms", type=int, default=10)
    parser.add_argument("--rate", type=int, default=100)
    parser.add_argument("--seconds", type=float, default=15)
    parser.add_argument("--burst", type=int, default=1, help="messages published back to back, then a pause")
    parser.add_argument("--source", default=str(stacks.ROOT), help="the checkout whose services run")
    parser.add_argument("--py-spy", dest="py_spy",
                        help="record each worker: flame graphs (.svg) or collapsed stacks (.txt)")
    args = parser.parse_args()
    source = Path(args.source).resolve()
    stacks.raise_fd_limit()
    with tempfile.TemporaryDirectory(prefix="stream-cpu-") as tmp:
        stack = stacks.StreamAlone(Path(tmp), source).start()
        try:
            result = measure(args, stack.redis(), stack.groups()["stream"], stack.stream_port)
        finally:
            stack.stop()
        result["log_lines"] = stack.log_lines()
    result["source"] = str(source)
    print(json.dumps(result))


def measure(args: argparse.Namespace, r: redis.Redis, master: int, port: int) -> dict[str, Any]:
    rooms = [f"cpu-{i}" for i in range(args.rooms)]
    ctx = multiprocessing.get_context("fork")
    ready, stop, counts, total = ctx.Event(), ctx.Event(), ctx.Manager().list(), ctx.Value("q", 0)
    reader = ctx.Process(target=readers_main, args=(port, rooms, args.readers, ready, stop, counts, total))
    reader.start()
    if not ready.wait(120):
        raise TimeoutError("the readers did not open their streams")
    pids = [child.pid for child in psutil.Process(master).children()]  # the workers
    spies = []
    if args.py_spy:  # each worker: OUT-1.svg, OUT-2.svg, ...
        out = Path(args.py_spy)
        for n, pid in enumerate(pids, 1):
            spies.append(subprocess.Popen(
                [str(stacks.VENV_BIN / "py-spy"), "record", "-p", str(pid), "-d", str(int(args.seconds)), "-r", "100",
                 "--nonblocking", "-o", str(out.with_name(f"{out.stem}-{n}{out.suffix}"))]
                + (["--format", "raw"] if out.suffix == ".txt" else []),
                stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT))
    load = os.getloadavg()
    before = cpu.times(pids, children=False)
    started = time.monotonic()
    sent, next_id, interval = 0, 0, 1.0 / args.rate
    text = "x" * 80
    while time.monotonic() - started < args.seconds:
        room = rooms[sent % len(rooms)]
        next_id += 1
        data = Message(room=room, user="bench", text=text, ts=int(time.time() * 1000), id=str(next_id)).to_json()
        r.publish(channel(room), live_payload(data, "message", str(next_id)))
        sent += 1
        delay = started + sent * interval - time.monotonic()
        if delay > 0 and sent % args.burst == 0:
            time.sleep(delay)
    expected = sent * args.readers // args.rooms
    deadline = time.monotonic() + 10
    while total.value < expected and time.monotonic() < deadline:  # what is in flight arrives
        time.sleep(0.1)
    used = cpu.times(pids, children=False) - before
    wall = time.monotonic() - started
    stop.set()
    reader.join(30)
    for spy in spies:
        spy.wait()
    received = sum(counts)
    return {
        "readers": args.readers, "rooms": args.rooms, "rate": args.rate, "seconds": args.seconds,
        "published": sent, "deliveries": received, "expected": expected, "complete": received == expected,
        "short_readers": sum(1 for j, n in enumerate(counts) if n != len(range(j % args.rooms, sent, args.rooms))),
        "us_per_delivery": round(used.cpu / max(received, 1) * 1e6, 2),
        "user_us": round(used.user / max(received, 1) * 1e6, 2),
        "cores": round(used.cpu / wall, 3), "system_us": round(used.system / max(received, 1) * 1e6, 2),
        "loadavg_start": [round(x, 2) for x in load], "loadavg_end": [round(x, 2) for x in os.getloadavg()],
    }


if __name__ == "__main__":
    main()
