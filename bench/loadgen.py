"""The load generator: many SSE readers and paced senders on one asyncio loop (aiohttp).

Every message carries its sender, a per-sender sequence number and the send time in its
text, ``S:<sender>:<seq>:<send time, epoch microseconds>``, so that each reader checks
what it receives against what was sent, for either system under test: a missing sequence
number is lost (unless it turns up later: then it was reordered), a repeated one is a
duplicate. A sender posts one message at a time, so its sequence numbers are also the
order in which the pipeline accepted them.

Latency is receive time minus send time (both on this host's clock); for the project's
messages also receive time minus the message's ``ts`` (stamped by ingest).
"""

import asyncio
import re
import time
from array import array
from dataclasses import dataclass, field

import aiohttp

# One pattern for both systems: the text, then (only in the project's message JSON) its ts.
EVENT = re.compile(rb'S:(\d+):(\d+):(\d+)(?:","ts":(\d+))?')
MAX_PENDING_GAPS = 100_000  # per reader: bounds memory if a pipeline loses everything


@dataclass
class Target:
    """How the harness talks to one system under test through its gateway."""

    name: str
    base_url: str
    kind: str  # "ours" or "seed"

    def stream_url(self, room):
        if self.kind == "ours":
            return f"{self.base_url}/stream/rooms/{room}?history=0"
        return f"{self.base_url}/stream?channel={room}"

    def post_request(self, room, user, text):
        if self.kind == "ours":
            return f"{self.base_url}/api/rooms/{room}/messages", {"user": user, "text": text}
        return f"{self.base_url}/sendmsg", {"room": room, "user": user, "message": text}

    @property
    def ok_status(self):
        return 201 if self.kind == "ours" else 200

    @property
    def greets_on_connect(self):
        """The project writes a comment at once; flask-sse writes nothing before the first event."""
        return self.kind == "ours"


class Collector:
    """What the readers record during one measurement step."""

    def __init__(self):
        self.latency_send_ms = array("d")
        self.latency_ts_ms = array("d")
        self.received = 0


class Reader:
    """One SSE connection: reads, checks and records every event."""

    __slots__ = ("room", "url", "state", "opened", "connected", "error", "task", "bytes", "_expect", "_gaps",
                 "duplicates", "reordered", "received", "_collector_ref")

    def __init__(self, room, url, collector_ref):
        self.room = room
        self.url = url
        self.opened = asyncio.Event()
        self.connected = False
        self.error = None
        self.task = None
        self.bytes = 0
        self._expect = {}  # sender -> next sequence number expected
        self._gaps = {}  # sender -> set of sequence numbers skipped so far
        self.duplicates = 0
        self.reordered = 0
        self.received = 0
        self._collector_ref = collector_ref  # a one-item list: the step's Collector

    async def run(self, session):
        try:
            async with session.get(self.url, headers={"Accept": "text/event-stream"}) as response:
                if response.status != 200:
                    self.error = f"status {response.status}"
                    return
                self.connected = True
                buffer = b""
                async for chunk in response.content.iter_any():
                    if not self.opened.is_set():
                        self.opened.set()
                    self.bytes += len(chunk)
                    buffer += chunk
                    end = buffer.rfind(b"\n\n")
                    if end < 0:
                        continue
                    complete, buffer = buffer[: end + 2], buffer[end + 2 :]
                    self._consume(complete)
                self.error = "stream ended by the server"
        except asyncio.CancelledError:
            raise
        except Exception as error:  # a dropped connection is recorded, not raised
            self.error = f"{type(error).__name__}: {error}"
        finally:
            self.opened.set()
            self.connected = False

    def _consume(self, data):
        now_us = time.time() * 1e6
        collector = self._collector_ref[0]
        lat_send, lat_ts = collector.latency_send_ms, collector.latency_ts_ms
        expect, gaps = self._expect, self._gaps
        count = 0
        for match in EVENT.finditer(data):
            sender, seq, sent_us, ts = match.groups()
            sender, seq = int(sender), int(seq)
            count += 1
            lat_send.append((now_us - int(sent_us)) / 1000.0)
            if ts is not None:
                lat_ts.append(now_us / 1000.0 - int(ts))
            nxt = expect.get(sender, 0)
            if seq == nxt:
                expect[sender] = seq + 1
            elif seq > nxt:
                pending = gaps.setdefault(sender, set())
                if len(pending) < MAX_PENDING_GAPS:
                    pending.update(range(nxt, seq))
                expect[sender] = seq + 1
            else:
                pending = gaps.get(sender)
                if pending and seq in pending:
                    pending.discard(seq)
                    self.reordered += 1
                else:
                    self.duplicates += 1
        self.received += count
        collector.received += count

    def lost(self, senders):
        """Acknowledged messages of this room's senders that never arrived."""
        lost = 0
        for sender in senders:
            nxt = self._expect.get(sender.id, 0)
            pending = self._gaps.get(sender.id, ())
            lost += sum(1 for seq in pending if seq in sender.acked)
            lost += sum(1 for seq in range(nxt, sender.sent) if seq in sender.acked)
        return lost


@dataclass
class Sender:
    id: int
    room: str
    rate: float  # messages per second
    count: int  # messages to send
    sent: int = 0
    acked: set = field(default_factory=set)
    errors: int = 0
    post_ms: array = field(default_factory=lambda: array("d"))

    async def run(self, session, target, start_at):
        loop = asyncio.get_running_loop()
        for seq in range(self.count):
            due = start_at + seq / self.rate
            delay = due - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            sent_us = int(time.time() * 1e6)
            url, body = target.post_request(self.room, f"u{self.id}", f"S:{self.id}:{seq}:{sent_us}")
            self.sent = seq + 1
            started = loop.time()
            try:
                async with session.post(url, json=body) as response:
                    await response.read()
                    if response.status == target.ok_status:
                        self.acked.add(seq)
                    else:
                        self.errors += 1
            except (aiohttp.ClientError, asyncio.TimeoutError):
                self.errors += 1
            self.post_ms.append((loop.time() - started) * 1000)


class Readers:
    """A set of SSE readers spread round-robin over rooms, kept open across steps."""

    def __init__(self, target, rooms, clients):
        self.target = target
        self.rooms = rooms
        self.collector_ref = [Collector()]
        self.readers = [Reader(rooms[i % len(rooms)], target.stream_url(rooms[i % len(rooms)]), self.collector_ref)
                        for i in range(clients)]
        self.session = None

    async def open(self, concurrency=200, timeout=120.0, subscribed=None):
        """Open every connection; return the seconds it took. ``subscribed()`` (a count of
        subscribers seen by Redis) is how readiness is known for a stream that stays silent."""
        connector = aiohttp.TCPConnector(limit=0, force_close=True)
        self.session = aiohttp.ClientSession(
            connector=connector, timeout=aiohttp.ClientTimeout(total=None, sock_connect=30)
        )
        started = time.monotonic()
        gate = asyncio.Semaphore(concurrency)

        async def start(reader):
            async with gate:
                reader.task = asyncio.ensure_future(reader.run(self.session))
                if self.target.greets_on_connect:
                    await asyncio.wait_for(reader.opened.wait(), 60)
                else:
                    await asyncio.sleep(0.002)

        await asyncio.gather(*(start(r) for r in self.readers))
        deadline = time.monotonic() + timeout
        if not self.target.greets_on_connect and subscribed is not None:
            while await subscribed() < len(self.readers) and time.monotonic() < deadline:
                await asyncio.sleep(0.2)
        return time.monotonic() - started

    def new_step(self):
        self.collector_ref[0] = Collector()
        return self.collector_ref[0]

    @property
    def failed(self):
        return sum(1 for r in self.readers if r.error is not None)

    async def close(self):
        for reader in self.readers:
            if reader.task is not None:
                reader.task.cancel()
        await asyncio.gather(*(r.task for r in self.readers if r.task is not None), return_exceptions=True)
        if self.session is not None:
            await self.session.close()


async def run_step(target, readers, rate, duration, sender_base, per_sender_rate=2.5, drain_timeout=30.0,
                   stall_s=3.0):
    """Post ``rate`` messages/s for ``duration`` s over the readers' rooms and wait until
    every reader has received what was acknowledged, or ``drain_timeout`` passes, or
    nothing arrived for ``stall_s``. What has not arrived by then counts as lost."""
    rooms = readers.rooms
    n_senders = max(len(rooms), int(-(-rate // per_sender_rate)))
    n_senders = -(-n_senders // len(rooms)) * len(rooms)  # the same number in every room
    rate_each = rate / n_senders
    count_each = max(1, round(rate_each * duration))
    senders = [Sender(sender_base + i, rooms[i % len(rooms)], rate_each, count_each) for i in range(n_senders)]
    by_room = {}
    for sender in senders:
        by_room.setdefault(sender.room, []).append(sender)
    collector = readers.new_step()
    live = [r for r in readers.readers if r.error is None]  # open when the step starts
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=30)) as session:
        loop = asyncio.get_running_loop()
        start_at = loop.time() + 0.2
        # Spread the senders' phases so the posts of one period do not all leave at once.
        tasks = [s.run(session, target, start_at + (i / n_senders) / rate_each) for i, s in enumerate(senders)]
        wall_start = time.monotonic()
        await asyncio.gather(*tasks)
        send_seconds = time.monotonic() - wall_start - 0.2
    expected = sum(len(s.acked) * sum(1 for r in live if r.room == s.room) for s in senders)
    deadline = time.monotonic() + drain_timeout
    last_count, last_progress = collector.received, time.monotonic()
    while collector.received < expected and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
        if collector.received != last_count:
            last_count, last_progress = collector.received, time.monotonic()
        elif time.monotonic() - last_progress > stall_s:
            break
    deliver_seconds = time.monotonic() - wall_start - 0.2
    lost = sum(r.lost(by_room[r.room]) for r in live)
    return {
        "offered_rate": rate,
        "senders": n_senders,
        "duration_s": duration,
        "send_seconds": send_seconds,
        "deliver_seconds": deliver_seconds,
        "sent": sum(s.sent for s in senders),
        "acked": sum(len(s.acked) for s in senders),
        "post_errors": sum(s.errors for s in senders),
        "post_ms": [x for s in senders for x in s.post_ms],
        "expected_deliveries": expected,
        "received": collector.received,
        "lost": lost,
        "duplicates": sum(r.duplicates for r in live),
        "reordered": sum(r.reordered for r in live),
        "readers": len(live),
        "readers_failed": len(readers.readers) - len(live),
        "readers_dropped": sum(1 for r in live if r.error is not None),
        "drain_seconds": deliver_seconds - send_seconds,
        "latency_send_ms": collector.latency_send_ms,
        "latency_ts_ms": collector.latency_ts_ms,
        "_senders": senders,
    }


async def quiesce(readers, quiet_s=3.0, timeout=60.0):
    """Wait until nothing has arrived for ``quiet_s`` (a backlog from the last step is
    delivered or given up on), at most ``timeout``; return the seconds waited."""
    started = time.monotonic()
    collector = readers.new_step()
    last, since = collector.received, time.monotonic()
    while time.monotonic() - started < timeout:
        await asyncio.sleep(0.1)
        if collector.received != last:
            last, since = collector.received, time.monotonic()
        elif time.monotonic() - since >= quiet_s:
            break
    return time.monotonic() - started


def reset_reader_counters(readers):
    for reader in readers.readers:
        reader.duplicates = reader.reordered = reader.received = 0


async def ingest_closed_loop(target, rooms, concurrency, duration):
    """``concurrency`` posters, each posting again as soon as its last POST is answered."""
    acked = errors = 0
    post_ms = array("d")
    stop_at = time.monotonic() + duration
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=30)) as session:
        async def poster(index):
            nonlocal acked, errors
            room = rooms[index % len(rooms)]
            seq = 0
            loop = asyncio.get_running_loop()
            while time.monotonic() < stop_at:
                url, body = target.post_request(room, f"p{index}", f"S:{900000 + index}:{seq}:{int(time.time() * 1e6)}")
                seq += 1
                started = loop.time()
                try:
                    async with session.post(url, json=body) as response:
                        await response.read()
                        if response.status == target.ok_status:
                            acked += 1
                        else:
                            errors += 1
                except (aiohttp.ClientError, asyncio.TimeoutError):
                    errors += 1
                post_ms.append((loop.time() - started) * 1000)

        started = time.monotonic()
        await asyncio.gather(*(poster(i) for i in range(concurrency)))
        elapsed = time.monotonic() - started
    return {"acked": acked, "errors": errors, "seconds": elapsed, "post_ms": post_ms}
