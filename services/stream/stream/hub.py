"""One Redis subscription per worker process, fanned out in memory to its SSE clients.

The hub subscribes to a room's channel when its first local client arrives and leaves it
when the last one goes. Each event is parsed and formatted once per worker (the SSE frame,
and the same frame as one HTTP/1.1 chunk), then handed to every client of the room, which
writes it to its socket at once if the socket takes it (see ``Client``); a client that
falls too far behind is cut off (it reconnects and resumes by id). After the pub/sub
connection drops, the hub resubscribes and fills the gap from each room's Redis history,
so nothing published meanwhile is missed.

The pub/sub connection is the hub's alone and is never reconnected behind its back (no
client-side retries): a reconnect the hub did not see would skip the gap fill. A standing
subscription to a control channel keeps the listener reading the socket even when no
room is open, so a dropped connection is noticed at once, and an idle connection is
pinged so that a silently dead one is noticed too. The listener blocks in the socket's
read (a message costs no poll of the socket), and only the listener touches the
connection: whatever fails on it, the listener sees.
"""

import json
import logging
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Protocol

import gevent
from gevent import get_hub
from gevent.event import Event
from gevent.hub import Waiter
from redis import Redis
from redis.client import PubSub
from redis.exceptions import RedisError

from chat_common.messages import channel, parse_live_events, sse_comment, sse_frame
from chat_common.private import REMOVED_EVENT
from stream import metrics
from stream.transport import SocketTransport, Transport, http_chunk

log = logging.getLogger(__name__)

CONTROL_CHANNEL = "chat:hub"  # never published to; keeps the pub/sub connection subscribed
IDLE_PING_S = 5.0
MAX_BATCH = 64  # events written to a socket at once when a client has several waiting (bridge: LIVE_EVENTS_MAX)


class Item:
    """One event handed to a room's local clients: formatted once, shared by all of them.
    ``sent`` counts the clients that wrote it the moment the hub handed it over; ``pending``
    those that hold it in their backlog, not written yet. The last write of it records the
    latency (once per message per worker, not once per client). An Item without a ``kind``
    is no event (the keepalive comment): it is not counted."""

    __slots__ = ("frame", "chunk", "id", "ts", "received_at", "sent", "pending", "kind")

    def __init__(self, frame: bytes, id: int | None, ts: int | None, received_at: float | None,
                 kind: str | None = "message") -> None:
        self.frame, self.id, self.ts, self.received_at = frame, id, ts, received_at
        self.chunk = http_chunk(frame)  # the frame as an HTTP/1.1 chunk
        self.sent = self.pending = 0
        self.kind = kind  # the metrics label of its event type (metrics.event_kind)


KEEPALIVE = Item(sse_comment("keepalive"), None, None, None, kind=None)


class Client:
    """One open SSE connection and the way its events reach its socket.

    The opening (headers, history) goes out through gunicorn; after it, ``run`` takes the
    socket over through its transport (stream/transport.py), which frames the stream's
    bytes as gunicorn frames the response (an HTTP/1.1 chunk per event, or the bare frame
    for HTTP/1.0). Whoever has events in
    hand (the hub, for every client of a room) writes them with one send that never blocks,
    while the socket is idle: no queue, no greenlet switch per delivery. What the kernel
    does not take whole, and everything after it, waits in ``backlog`` (at most ``limit``
    events; one more cuts the client off, so memory stays bounded) for the client's own
    greenlet, which writes it all at once (up to ``MAX_BATCH`` events per write) and waits
    cooperatively while the socket is full; once the backlog is empty, direct writes
    resume. Events before ``run`` (while the opening is read and written) wait in the
    backlog as well.

    ``position`` is the newest message id handed to the socket, in write order: an id at
    or below it is not written again (a gap fill re-offers a window the client has).
    """

    __slots__ = ("room", "limit", "closed", "position", "backlog", "transport", "chunked", "member", "_rest",
                 "_waiter", "_beat")

    def __init__(self, room: str, limit: int, sock: Any = None, chunked: bool = True, *,
                 transport: Transport | None = None) -> None:
        """``transport``: where the stream's bytes go after its opening; None: the stream
        ends after its opening. ``sock`` (gunicorn's gevent socket) and ``chunked`` make
        one (``SocketTransport``) when no transport is given."""
        self.room = room
        self.limit = limit
        self.closed: str | None = None  # the reason, once closed
        self.position: int | None = None  # set by run(); until then every event waits in the backlog
        self.backlog: deque[Item] | None = deque()  # None: the socket is idle and written directly
        if transport is None and sock is not None:
            transport = SocketTransport(sock, chunked)
        self.transport = transport
        self.chunked = transport.chunked if transport is not None else chunked
        self.member: str | None = None  # in a private room: who reads (chat_common/private.py)
        self._rest: tuple[memoryview, Item] | None = None  # (unsent bytes, item) of a write the kernel took in part
        self._waiter: Any = None  # a gevent Waiter while the client's greenlet waits
        self._beat = False

    # -- called by the hub (never blocks, never switches) ------------------------------

    def offer(self, items: Sequence[Item]) -> None:
        """Hand the client events, in order: those its socket takes now count in each
        item's ``sent``, the rest wait in its backlog."""
        if self.closed is not None:
            return
        if self.position is not None:
            fresh: list[Item] = []
            for item in items:
                if item.id is not None:
                    if item.id <= self.position:
                        continue  # it has that one already
                    self.position = item.id
                fresh.append(item)
            if self.backlog is None:
                if fresh:
                    self._send_now(fresh)
                return
            items = fresh
        self._keep(items)

    def _keep(self, items: Sequence[Item]) -> None:
        assert self.backlog is not None  # kept only while a backlog exists
        if len(self.backlog) + len(items) > self.limit:
            metrics.CUT_OFF.inc()
            self.close("slow")
            return
        for item in items:
            item.pending += 1
        self.backlog.extend(items)

    def _send_now(self, items: Sequence[Item]) -> None:
        assert self.transport is not None  # direct writes begin with run(), which has one
        if len(items) == 1:
            data = self._bytes(items[0])
        else:
            data = b"".join(map(self._bytes, items))
        try:
            sent = self.transport.send(data)  # never blocks: what the kernel takes now
        except OSError:
            self.close("client")  # the reader is gone
            return
        if sent == len(data):
            for item in items:
                item.sent += 1
            return
        # The kernel took part: the rest of one event (a view of its shared bytes) and the
        # events after it wait for the client's greenlet.
        for i, item in enumerate(items):  # noqa: B007 (i is read after the loop)
            size = len(self._bytes(item))
            if sent < size:
                break
            sent -= size
            item.sent += 1
        item.pending += 1
        self._rest = (memoryview(self._bytes(item))[sent:], item)
        self.backlog = deque()
        self._keep(items[i + 1:])
        self._wake()

    def _bytes(self, item: Item) -> bytes:
        return item.chunk if self.chunked else item.frame

    def beat(self) -> None:
        """The worker's heartbeat clock ticked: the client's greenlet refreshes its presence
        and writes a keepalive comment (a quiet stream still shows life to proxies)."""
        self._beat = True
        self._wake()

    def close(self, reason: str) -> None:
        if self.closed is not None:
            return
        self.closed = reason
        self._wake()
        if reason == "slow":
            self.disconnect()  # its writer may be blocked on a client that stopped reading

    def disconnect(self) -> None:
        """End the TCP connection itself, so that neither the client nor a proxy's pool of
        upstream connections sends its next request to this connection (a draining
        worker must not take new streams on a kept-alive connection)."""
        if self.transport is not None:
            self.transport.shutdown()

    def _wake(self) -> None:
        waiter, self._waiter = self._waiter, None
        if waiter is not None:
            get_hub().loop.run_callback(waiter.switch, None)

    # -- the client's own greenlet -------------------------------------------------------

    def run(self, position: int, on_beat: Callable[[], object] | None = None) -> None:
        """After the opening: write the client's events until it is closed. ``position``:
        every message at or below it was in the opening or was not asked for."""
        if self.transport is None:
            return  # no socket of its own to write to: the opening was all
        self._start(position)
        while True:
            self._flush()
            if self.closed is not None:
                return
            if self._beat:
                self._beat = False
                if on_beat:
                    on_beat()
                self.offer([KEEPALIVE])
                continue
            self._waiter = Waiter()
            self._waiter.get()  # until a backlog forms, the clock ticks or the client is closed

    def _start(self, position: int) -> None:
        """Keep, of the events offered while the opening was written, only those newer
        than it, in order."""
        self.position = position
        early, self.backlog = self.backlog or deque(), deque()
        for item in early:
            if item.id is not None:
                if item.id <= self.position:
                    _written([item], 0)  # it has that one already
                    continue
                self.position = item.id
            self.backlog.append(item)

    def _flush(self) -> None:
        """Write the backlog, a batch per write, waiting while the socket is full; then
        leave the idle socket to direct writes."""
        assert self.transport is not None
        while self.closed is None and (self._rest is not None or self.backlog):
            pieces: list[bytes | memoryview] = []
            items: list[Item] = []
            if self._rest is not None:
                rest, item = self._rest
                self._rest = None
                pieces.append(rest)
                items.append(item)
            while self.backlog and len(items) < MAX_BATCH:
                item = self.backlog.popleft()
                pieces.append(self._bytes(item))
                items.append(item)
            try:
                self.transport.send_all(b"".join(pieces))
            except OSError:
                self.close("client")  # gone, or cut off meanwhile (then "slow" stays)
                return
            _written(items, len(items))
        if self.closed is None:
            self.backlog = None


def _written(items: Sequence[Item], count: int) -> None:
    """Account for ``items`` leaving a client's backlog (``count``: the first ones were
    written, the rest skipped): events sent, and the latency of those this was the last
    local write of."""
    kinds: dict[str, int] = {}
    for item in items[:count]:
        if item.kind is not None:
            kinds[item.kind] = kinds.get(item.kind, 0) + 1
    for kind, n in kinds.items():
        metrics.EVENTS_SENT.labels(kind).inc(n)
    done = []
    for item in items:
        item.pending -= 1
        if item.pending == 0 and item.kind is not None:
            done.append(item)
    if done:
        observe_delivery(done)


def observe_delivery(items: Iterable[Item]) -> None:
    """Record the latency of messages every local client has now written: since Redis
    handed them over, and since ingest stamped them (the end-to-end figure)."""
    now, now_ms = time.perf_counter(), time.time() * 1000
    for item in items:
        if item.received_at is not None:
            metrics.FANOUT_SECONDS.observe(now - item.received_at)
        if item.ts is not None:
            metrics.DELIVERY_SECONDS.observe(max(0.0, now_ms - item.ts) / 1000)


class Room:
    """A room's local clients, and whether the hub's subscription to it is confirmed."""

    def __init__(self) -> None:
        self.clients: set[Client] = set()
        self.subscribed = Event()

    def offer(self, items: Sequence[Item]) -> None:
        """Hand events to every client of the room: most write them to their socket at once.
        Counted once per event (events sent), and its latency recorded now if no client kept
        it in a backlog."""
        for client in list(self.clients):
            client.offer(items)
        done = []
        for item in items:
            if item.sent:
                metrics.EVENTS_SENT.labels(item.kind).inc(item.sent)
                if item.pending == 0:
                    done.append(item)
        if done:
            observe_delivery(done)


class RoomHistory(Protocol):
    """What the hub reads of a room after a reconnect (stream/history.py's History)."""

    def window(self, room: str) -> list[tuple[str, str]]: ...

    def deletes_after(self, room: str, last_id: int) -> list[tuple[str, str]]: ...

    def changes_after(self, room: str, last_id: int) -> list[tuple[str, str, str]]: ...


Batch = dict[str, list[Item]]  # room -> its events, in order


class Hub:
    def __init__(self, redis: Redis | None, history: RoomHistory, heartbeat_s: float = 15.0) -> None:
        self.redis = redis  # the hub's own connection (no client-side retries); None in unit tests
        self.history = history
        self.heartbeat_s = heartbeat_s
        self.rooms: dict[str, Room] = {}
        self.pubsub: PubSub | None = None
        self.connected = Event()
        self.draining = False
        self._listener: Any = None  # the listener's greenlet

    # -- lifecycle -------------------------------------------------------------------

    def start(self) -> None:
        self._listener = gevent.spawn(self._listen_forever)
        gevent.spawn(self._beat_forever)

    def _beat_forever(self) -> None:
        """One clock per worker wakes every stream for its heartbeat: cheaper than a timer
        per connection on every wait."""
        while True:
            gevent.sleep(self.heartbeat_s)
            for room in list(self.rooms.values()):
                for client in list(room.clients):
                    client.beat()

    def ready(self) -> bool:
        return self.connected.is_set() and not self.draining

    def drain(self, batch: int, interval_s: float) -> None:
        """Close every stream, a batch at a time, so that clients reconnect elsewhere."""
        self.draining = True
        clients = [client for room in self.rooms.values() for client in room.clients]
        log.info("draining streams", extra={"clients": len(clients)})
        for start in range(0, len(clients), batch):
            for client in clients[start : start + batch]:
                client.close("drain")
            gevent.sleep(interval_s)

    # -- clients -----------------------------------------------------------------------

    def join(self, client: Client, timeout: float = 5.0) -> None:
        """Register a client; return once its room's subscription is confirmed, so that
        history read afterwards and live events overlap rather than leave a gap."""
        room = self.rooms.get(client.room)
        if room is None:
            room = self.rooms[client.room] = Room()
            metrics.SUBSCRIPTIONS.inc()
            if self.pubsub is not None and self.connected.is_set():
                try:
                    self.pubsub.subscribe(channel(client.room))
                except (RedisError, OSError):
                    pass  # the listener reconnects and subscribes every room
        room.clients.add(client)
        if not room.subscribed.wait(timeout):
            self.leave(client)
            raise RedisError("no Redis subscription for the room")

    def leave(self, client: Client) -> None:
        room = self.rooms.get(client.room)
        if room is None:
            return
        room.clients.discard(client)
        if not room.clients:
            del self.rooms[client.room]
            metrics.SUBSCRIPTIONS.dec()
            if self.pubsub is not None and self.connected.is_set():
                try:
                    self.pubsub.unsubscribe(channel(client.room))
                except (RedisError, OSError):
                    pass

    # -- the listener ------------------------------------------------------------------

    def _listen_forever(self) -> None:
        backoff = 0.1
        while True:
            try:
                self._listen()
            except (RedisError, OSError) as error:
                log.warning("redis pub/sub lost; reconnecting", extra={"error": str(error)})
            self.connected.clear()
            for room in self.rooms.values():
                room.subscribed.clear()
            gevent.sleep(backoff)
            backoff = min(backoff * 2, 2.0)

    def _listen(self) -> None:
        if self.pubsub is not None:
            self.pubsub.close()
        assert self.redis is not None, "a hub without Redis is never started"
        pubsub = self.pubsub = self.redis.pubsub()
        pubsub.subscribe(CONTROL_CHANNEL)  # connect now: an error here retries with backoff
        # No yield between listing the rooms and marking the hub connected: a room that
        # joins from here on subscribes itself, every earlier one is resubscribed below.
        resubscribed = set(self.rooms)
        self.connected.set()
        if resubscribed:
            pubsub.subscribe(*map(channel, resubscribed))
            metrics.REDIS_RECONNECTS.inc()
        self._pump(pubsub, resubscribed)

    def _pump(self, pubsub: PubSub, resubscribed: set[str], live: str = "message", confirmed: str = "subscribe",
              room_of: Callable[[str], str] = str) -> None:
        """Read ``pubsub`` until it fails: ``live`` messages (``smessage``: a shard channel's)
        to the rooms' clients, ``confirmed`` subscriptions to their rooms (``room_of``: the
        room a channel is of); a subscription of a room in ``resubscribed`` re-offers its
        window (a gap may have been missed)."""
        while True:
            if not pubsub.subscribed:
                # A shard's listener (cluster mode) is subscribed to nothing once its last room
                # is left. redis-py's get_message(timeout=None) would then wait for the next
                # subscription and fail as it comes (None minus the seconds waited: TypeError),
                # ending the listener; every later room of the shard got 503. Wait here instead.
                pubsub.subscribed_event.wait(IDLE_PING_S)
                continue
            message = None
            # Blocked in the socket's read until a reply; redis-py's own timeout would poll
            # the socket first (twice). The timer ends only the wait (False: no exception).
            with gevent.Timeout(IDLE_PING_S, False):
                # None: block (redis-py's documented value, outside its annotation)
                message = pubsub.get_message(timeout=None)  # type: ignore[arg-type]
            if message is None:
                pubsub.ping()  # the answer (or the error) comes back through the read
                continue
            # What has arrived already is handled together: a room's events read back to
            # back reach each of its sockets in one write.
            batch: Batch = {}
            count = 0
            while message is not None:
                if message["type"] == live:
                    self._collect(batch, room_of(message["channel"].decode()), message["data"], time.perf_counter())
                    count += 1
                else:
                    self._deliver(batch)  # in order with what comes after it
                    if message["type"] == confirmed:
                        self._subscribed(room_of(message["channel"].decode()), resubscribed)
                    elif message["type"] == "sunsubscribe":
                        self._unsubscribed(room_of(message["channel"].decode()))
                if count >= MAX_BATCH:
                    break
                message = self._next_read(pubsub)
            self._deliver(batch)

    def _unsubscribed(self, name: str) -> None:
        """A shard channel's subscription ended (cluster mode, stream/shards.py)."""

    def _next_read(self, pubsub: PubSub) -> dict[str, Any] | None:
        """The next message of what was read from the socket already, else None.

        redis-py's ``get_message(timeout=0)`` would first poll the socket, which under gevent
        costs a watcher, system calls, and a poll that sees nothing a loop iteration has
        not: the hiredis reader's buffer is asked directly (any other parser: redis-py)."""
        reader = getattr(getattr(pubsub.connection, "_parser", None), "_reader", None)
        if reader is not None and hasattr(reader, "has_data") and not reader.has_data():
            return None
        message: dict[str, Any] | None = pubsub.get_message(timeout=0)
        return message

    def _subscribed(self, name: str, resubscribed: set[str]) -> None:
        room = self.rooms.get(name)
        if room is not None:
            if name in resubscribed:
                resubscribed.discard(name)
                self._fill_gap(name, room)
            room.subscribed.set()

    def _fill_gap(self, name: str, room: Room) -> None:
        """Re-offer the room's recent history, and the deletes, edits and reactions above its
        floor, after a reconnect; each client keeps only the ids newer than what it already has."""
        events = [("message", data, id) for data, id in self.history.window(name)]
        events += [("delete", data, id) for data, id in self.history.deletes_after(name, -1)]
        events += self.history.changes_after(name, -1)
        items = [Item(sse_frame(data, event=event, id=id), int(id), None, time.perf_counter(), event)
                 for event, data, id in sorted(events, key=lambda event: int(event[2]))]
        for start in range(0, len(items), MAX_BATCH):
            room.offer(items[start:start + MAX_BATCH])

    def _dispatch(self, name: str, payload: bytes, received_at: float) -> None:
        """One pub/sub message, handed to the room's clients at once."""
        batch: Batch = {}
        self._collect(batch, name, payload, received_at)
        self._deliver(batch)

    def _collect(self, batch: Batch, name: str, payload: bytes, received_at: float) -> None:
        """Parse and format one pub/sub message (once per worker) into ``batch``: room ->
        its Items in order. A message holds one event, or several of the room (the bridge's
        records of one batch)."""
        room = self.rooms.get(name)
        if room is None:
            return
        try:
            events = [(event, data, id, ts, sse_frame(data, event=event, id=id))
                      for event, data, id, ts in parse_live_events(payload)]
        except ValueError:
            metrics.DROPPED.inc()
            log.warning("dropped a pub/sub payload that is not a safe flask-sse message", extra={"room": name})
            return
        for event, data, id, ts, frame in events:
            if event == REMOVED_EVENT:  # for this worker, not its readers
                self._deliver(batch)  # what was published before the removal still reaches them
                self._remove(room, data)
                continue
            kind = metrics.event_kind(event)
            metrics.LIVE_RECEIVED.labels(kind).inc()
            # Events without an id (presence, typing) reach every client; they are never in
            # history and never move a client's position.
            numeric_id = int(id) if id is not None and id.isdigit() else None
            if event != "message":
                ts = None
            elif ts is None:
                ts = _message_ts(data)
            batch.setdefault(name, []).append(Item(frame, numeric_id, ts, received_at, kind))
            if numeric_id is not None:
                log.info("message fanned out", extra={"msg_id": id, "room": name, "clients": len(room.clients)})

    @staticmethod
    def _remove(room: Room, data: str) -> None:
        """End the streams of a member removed from a private room."""
        try:
            member = json.loads(data)["member"]
        except (ValueError, KeyError, TypeError):
            return
        for client in list(room.clients):
            if client.member is not None and client.member == member:
                client.close("removed")

    def _deliver(self, batch: Batch) -> None:
        for name, items in batch.items():
            room = self.rooms.get(name)
            if room is not None:
                room.offer(items)
        batch.clear()


def _message_ts(data: str) -> int | None:
    """A chat message's ts (epoch ms), for the delivery-latency histogram."""
    try:
        return int(json.loads(data)["ts"])
    except (ValueError, KeyError, TypeError):
        return None
