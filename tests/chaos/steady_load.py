"""Steady chat traffic through the gateway, for faults under load: many readers on a few
rooms, paced senders, and the check that every reader saw every acknowledged message of
its room once, in Kafka order.

Everything runs on one asyncio loop (httpx, httpx-sse), so hundreds of open streams cost
little. Readers follow the browser's rules: a dropped stream is reopened after the
server's ``retry:`` hint with ``Last-Event-ID``; a refused reconnect (the gateway's 503
while the stream service restarts, the service's own 503 while history is rebuilt) is
tried again after ``Retry-After``. Senders post as the page does: a refused or failed
post is retried with the same ``client_id`` until it is acknowledged.
"""

import asyncio
import itertools
import json
import random
import time
from collections import Counter
from dataclasses import dataclass, field

import httpx
from httpx_sse import aconnect_sse
from support import longest_pause, stream_url

BACKOFF_S = (1, 2, 4, 8, 15)  # the page's backoff after a refused reconnect (web/live.js)
USER_NAMES_PER_SENDER = 10  # spreads a sender's posts over names: the per-user rate limit stays far away


def retry_after_s(response, default):
    try:
        return float(response.headers["Retry-After"])
    except (KeyError, ValueError):
        return default


class Reader:
    """One browser tab following a room from the moment it opens (no history)."""

    def __init__(self, client, base_url, room):
        self.client = client
        self.room = room
        self.url = stream_url(base_url, room, history=0)
        self.messages = []  # the chat messages shown, in arrival order
        self.arrived = []  # when each of those arrived (time.monotonic())
        self.last_id = None  # what a reconnect resumes after (Last-Event-ID)
        self.retry_s = 2.0  # the server's retry: hint, once it has sent one
        self.connects = 0  # streams opened (200)
        self.refused = 0  # reconnects answered with an error status
        self.resets = 0  # "reset" events: the reader's position had left the server's window
        self.subscribed = asyncio.Event()
        self.task = None

    def start(self):
        self.task = asyncio.ensure_future(self._run())

    async def _run(self):
        refused_in_a_row = 0
        while True:
            pause = self.retry_s
            headers = {"Last-Event-ID": self.last_id} if self.last_id else {}
            try:
                async with aconnect_sse(self.client, "GET", self.url, headers=headers) as source:
                    response = source.response
                    if response.status_code != 200:
                        await response.aread()
                        self.refused += 1
                        backoff = BACKOFF_S[min(refused_in_a_row, len(BACKOFF_S) - 1)]
                        pause = retry_after_s(response, backoff)
                        refused_in_a_row += 1
                    else:
                        refused_in_a_row = 0
                        self.connects += 1
                        self.subscribed.set()  # the service answers only once the room is subscribed
                        async for event in source.aiter_sse():
                            self._on_event(event)
            except httpx.HTTPError:
                pass  # the stream dropped: reconnect after the retry hint, as EventSource does
            await asyncio.sleep(pause * random.uniform(0.8, 1.2))

    def _on_event(self, event):
        if event.retry is not None:
            self.retry_s = event.retry / 1000
        if event.id:  # the browser's last event id: a message's, or the position a connect hands out
            self.last_id = event.id
        if event.event == "message" and event.data:
            self.messages.append(json.loads(event.data))
            self.arrived.append(time.monotonic())
        elif event.event == "reset":
            self.resets += 1

    @property
    def failure(self):
        """The error that ended this reader early, if any (a reader otherwise runs until stopped)."""
        if self.task.done() and not self.task.cancelled():
            return self.task.exception()
        return None

    async def stop(self):
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)


@dataclass
class Sender:
    """Posts into one room at a steady pace, one message at a time, each retried with its
    client_id until acknowledged."""

    client: httpx.AsyncClient
    base_url: str
    room: str
    name: str
    rate: float  # messages per second
    acked: list = field(default_factory=list)  # client_ids, in the order acknowledged
    refusals: list = field(default_factory=list)  # (status, time.monotonic()) per refused attempt; 0: no answer

    async def run(self, stopping):
        """Post until ``stopping`` is set; the message in hand is still retried until acknowledged."""
        loop = asyncio.get_running_loop()
        due = loop.time()
        seq = 0
        while not stopping.is_set():
            await asyncio.sleep(max(0.0, due - loop.time()))
            await self._post_until_acknowledged(seq)
            seq += 1
            due = max(due + 1 / self.rate, loop.time())  # after an outage, carry on at the same pace

    async def _post_until_acknowledged(self, seq):
        client_id = f"{self.name}-{seq}"
        body = {"user": f"{self.name}-u{seq % USER_NAMES_PER_SENDER}", "text": f"message {seq}", "client_id": client_id}
        while True:
            try:
                response = await self.client.post(f"{self.base_url}/api/rooms/{self.room}/messages", json=body)
                if response.status_code == 201:
                    self.acked.append(client_id)
                    return
                status, pause = response.status_code, min(retry_after_s(response, 1.0), 2.0)
            except httpx.HTTPError:
                status, pause = 0, 0.5
            self.refusals.append((status, time.monotonic()))
            await asyncio.sleep(pause)


@dataclass
class RoomCheck:
    """What one reader showed of its room, against what the room's senders got acknowledged."""

    lost: int = 0
    duplicated: int = 0
    out_of_order: int = 0
    unexpected: int = 0  # shown but never acknowledged


def check_reader(reader, acked):
    """Compare a reader's messages with the set of acknowledged client_ids of its room.

    Messages are matched by client_id: a retry whose first attempt was stored but not
    answered may be acknowledged with another record's id, and that record is never shown.
    Kafka order is the order of ids, which must increase."""
    shown = [m["client_id"] for m in reader.messages]
    ids = [int(m["id"]) for m in reader.messages]
    unique = set(shown)
    return RoomCheck(
        lost=len(acked - unique),
        duplicated=len(shown) - len(unique),
        out_of_order=sum(1 for a, b in itertools.pairwise(ids) if b < a),
        unexpected=len(unique - acked),
    )


class SteadyLoad:
    """``readers`` SSE readers spread round-robin over ``rooms`` new rooms, and senders
    posting ``rate`` messages/s in total, two per room."""

    def __init__(self, base_url, rooms, readers, rate, senders_per_room=2):
        self.base_url = base_url
        self.rooms = rooms
        self.reader_count = readers
        self.rate = rate
        self.senders_per_room = senders_per_room
        self.readers = []
        self.late_readers = []
        self.senders = []
        self.posted_aside = {room: set() for room in rooms}  # client_ids acknowledged to posts besides the senders'
        self._stopping = None
        self._sending = None
        self.sending_s = 0.0

    async def __aenter__(self):
        timeout = httpx.Timeout(10.0, read=30.0)  # heartbeats come every few seconds
        self._read_client = httpx.AsyncClient(timeout=timeout, limits=httpx.Limits(max_connections=None))
        self._post_client = httpx.AsyncClient(timeout=timeout, limits=httpx.Limits(max_connections=None))
        return self

    async def __aexit__(self, *exc):
        if self._sending is not None and not self._sending.done():
            self._stopping.set()
            self._sending.cancel()
            await asyncio.gather(self._sending, return_exceptions=True)
        await asyncio.gather(*(reader.stop() for reader in self.readers + self.late_readers))
        await self._read_client.aclose()
        await self._post_client.aclose()

    async def open_readers(self, timeout=90, late=0):
        """Open the load's readers, spread round-robin over the rooms; return them once every
        one is subscribed. ``late``: open that many more readers instead, after the first
        ones (``late_readers``: they see the rooms from the moment they open)."""
        count = late or self.reader_count
        opened = [Reader(self._read_client, self.base_url, self.rooms[i % len(self.rooms)]) for i in range(count)]
        if late:
            self.late_readers += opened
        else:
            self.readers += opened
        for reader in opened:
            reader.start()
        await asyncio.wait_for(asyncio.gather(*(r.subscribed.wait() for r in opened)), timeout)
        return opened

    def start_senders(self):
        count = len(self.rooms) * self.senders_per_room
        self.senders = [Sender(self._post_client, self.base_url, self.rooms[i % len(self.rooms)], f"s{i}",
                               self.rate / count)
                        for i in range(count)]
        self._stopping = asyncio.Event()
        self._started_at = time.monotonic()
        self._sending = asyncio.ensure_future(asyncio.gather(*(s.run(self._stopping) for s in self.senders)))

    async def stop_senders(self, timeout=120):
        """Stop posting new messages; wait until the ones in hand are acknowledged."""
        self._stopping.set()
        await asyncio.wait_for(asyncio.shield(self._sending), timeout)
        self.sending_s = time.monotonic() - self._started_at

    def acked(self, room):
        return {cid for sender in self.senders if sender.room == room for cid in sender.acked} | self.posted_aside[room]

    @property
    def acked_count(self):
        return sum(len(sender.acked) for sender in self.senders) + sum(map(len, self.posted_aside.values()))

    async def wait_delivered(self, timeout=90, stalled_s=20):
        """Wait until every reader holds as many messages as its room had acknowledged,
        or nothing new arrived for ``stalled_s``, or ``timeout`` passed."""
        wanted = {room: len(self.acked(room)) for room in self.rooms}
        deadline = time.monotonic() + timeout
        last_total, last_progress = -1, time.monotonic()
        while time.monotonic() < deadline:
            behind = [r for r in self.readers if len(r.messages) < wanted[r.room]]
            if not behind:
                behind = [r for r in self.late_readers if self._room_order(r.room)[-1:] != self._client_ids(r)[-1:]]
            if not behind:
                return
            total = sum(len(r.messages) for r in self.readers + self.late_readers)
            if total != last_total:
                last_total, last_progress = total, time.monotonic()
            elif time.monotonic() - last_progress > stalled_s:
                return
            await asyncio.sleep(0.2)

    def check(self):
        """Lost, duplicated, out-of-order and unexpected messages, summed over every reader."""
        acked = {room: self.acked(room) for room in self.rooms}
        total = RoomCheck()
        for reader in self.readers:
            one = check_reader(reader, acked[reader.room])
            total.lost += one.lost
            total.duplicated += one.duplicated
            total.out_of_order += one.out_of_order
            total.unexpected += one.unexpected
        return total

    def outcome(self):
        """The figures every fault test holds to 0 (but ``messages``), summed over the readers:
        each acknowledged message once, in order, with no reset of a reader's stream."""
        check = self.check()
        return {"messages": self.acked_count, "lost": check.lost, "duplicated": check.duplicated,
                "out_of_order": check.out_of_order, "unexpected": check.unexpected,
                "resets": sum(reader.resets for reader in self.readers)}

    def check_late(self):
        """The late readers, each against a first reader of its room (which ``check`` holds
        to every acknowledged message): every message from the first one it showed on,
        once, in order."""
        total = RoomCheck()
        for reader in self.late_readers:
            order, shown = self._room_order(reader.room), self._client_ids(reader)
            expected = order[order.index(shown[0]):] if shown and shown[0] in order else order
            one = check_reader(reader, set(expected))
            total.lost += one.lost
            total.duplicated += one.duplicated
            total.out_of_order += one.out_of_order
            total.unexpected += one.unexpected
        return total

    def _room_order(self, room):
        return next(self._client_ids(r) for r in self.readers if r.room == room)

    @staticmethod
    def _client_ids(reader):
        return [m["client_id"] for m in reader.messages]

    def refusals(self, since=0.0):
        """Post attempts refused or unanswered from ``since`` (time.monotonic()) on, by status."""
        return Counter(status for sender in self.senders for status, at in sender.refusals if at >= since)

    def failures(self):
        return [repr(reader.failure) for reader in self.readers + self.late_readers if reader.failure is not None]

    def longest_delay(self, since, rooms, until=float("inf")):
        """The longest wait, from ingest's stamp (``ts``) to a reader, of the messages of
        ``rooms`` that arrived after ``since`` (and before ``until``): the stream's and the bridge's part of a pause
        (while posts are refused or slow, readers wait for nothing and this stays low)."""
        wall = time.time() - time.monotonic()
        return max((wall + at - message["ts"] / 1000 for reader in self.readers if reader.room in rooms
                    for message, at in zip(reader.messages, reader.arrived, strict=True) if since < at < until),
                   default=0.0)

    def longest_pause(self, since):
        return max((longest_pause(reader.arrived, since) for reader in self.readers), default=0.0)

