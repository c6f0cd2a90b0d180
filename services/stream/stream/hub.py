"""One Redis subscription per worker process, fanned out in memory to its SSE clients.

The hub subscribes to a room's channel when its first local client arrives and leaves it
when the last one goes. Each event is parsed and formatted once per worker, then offered
to every client's bounded queue; a client whose queue is full is cut off (it reconnects
and resumes by id). After the pub/sub connection drops, the hub resubscribes and fills
the gap from each room's Redis history, so nothing published meanwhile is missed.

The pub/sub connection is the hub's alone and is never reconnected behind its back (no
client-side retries): a reconnect the hub did not see would skip the gap fill. A standing
subscription to a control channel keeps the listener reading the socket even when no
room is open, so a dropped connection is noticed at once, and an idle connection is
pinged so that a silently dead one is noticed too.
"""

import json
import logging
import socket
import time

import gevent
from gevent.event import Event
from gevent.queue import Full, Queue
from redis.exceptions import RedisError

from chat_common.messages import channel, parse_live, sse_frame
from stream import metrics

log = logging.getLogger(__name__)

CLOSE = object()  # queue sentinel: end this stream now
BEAT = object()  # queue sentinel: the worker's heartbeat clock ticked
CONTROL_CHANNEL = "chat:hub"  # never published to; keeps the pub/sub connection subscribed
IDLE_PING_S = 5.0


class Item:
    """One event offered to a room's local clients: formatted once, shared by all of them.
    ``pending`` counts the clients that have not written it yet; the last one to write it
    records the latency (once per message per worker, not once per client)."""

    __slots__ = ("frame", "id", "ts", "received_at", "pending", "kind")

    def __init__(self, frame, id, ts, received_at, pending=1, kind="message"):
        self.frame, self.id, self.ts, self.received_at, self.pending = frame, id, ts, received_at, pending
        self.kind = kind  # the metrics label of its event type (metrics.event_kind)


class Client:
    """One open SSE connection: a bounded queue of Items (and CLOSE / BEAT sentinels)."""

    def __init__(self, room, queue_size, sock=None):
        self.room = room
        self.queue = Queue(queue_size)
        self.closed = None  # the reason, once closed
        self._sock = sock

    def offer(self, item):
        try:
            self.queue.put_nowait(item)
        except Full:
            metrics.CUT_OFF.inc()
            self.close("slow")

    def close(self, reason):
        if self.closed is not None:
            return
        self.closed = reason
        try:
            self.queue.put_nowait(CLOSE)
        except Full:
            pass
        if reason == "slow":
            self.disconnect()  # its writer may be blocked on a client that stopped reading

    def disconnect(self):
        """End the TCP connection itself, so that neither the client nor a proxy's pool of
        upstream connections sends its next request to this connection (a draining
        worker must not take new streams on a kept-alive connection)."""
        if self._sock is not None:
            try:
                self._sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


class Room:
    def __init__(self):
        self.clients = set()
        self.subscribed = Event()


class Hub:
    def __init__(self, redis, history, heartbeat_s=15.0):
        self.redis = redis
        self.history = history
        self.heartbeat_s = heartbeat_s
        self.rooms = {}
        self.pubsub = None
        self.connected = Event()
        self.draining = False
        self._listener = None

    # -- lifecycle -------------------------------------------------------------------

    def start(self):
        self._listener = gevent.spawn(self._listen_forever)
        gevent.spawn(self._beat_forever)

    def _beat_forever(self):
        """One clock per worker wakes every stream for its heartbeat: cheaper than a timer
        per connection on every wait."""
        while True:
            gevent.sleep(self.heartbeat_s)
            for room in list(self.rooms.values()):
                for client in list(room.clients):
                    try:
                        client.queue.put_nowait(BEAT)
                    except Full:
                        pass  # a full queue wakes its writer anyway

    def ready(self):
        return self.connected.is_set() and not self.draining

    def drain(self, batch, interval_s):
        """Close every stream, a batch at a time, so that clients reconnect elsewhere."""
        self.draining = True
        clients = [client for room in self.rooms.values() for client in room.clients]
        log.info("draining streams", extra={"clients": len(clients)})
        for start in range(0, len(clients), batch):
            for client in clients[start : start + batch]:
                client.close("drain")
            gevent.sleep(interval_s)

    # -- clients -----------------------------------------------------------------------

    def join(self, client, timeout=5.0):
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

    def leave(self, client):
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

    def _listen_forever(self):
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

    def _listen(self):
        if self.pubsub is not None:
            self.pubsub.close()
        self.pubsub = self.redis.pubsub()
        self.pubsub.subscribe(CONTROL_CHANNEL)  # connect now: an error here retries with backoff
        # No yield between listing the rooms and marking the hub connected: a room that
        # joins from here on subscribes itself, every earlier one is resubscribed below.
        resubscribed = set(self.rooms)
        self.connected.set()
        if resubscribed:
            self.pubsub.subscribe(*map(channel, resubscribed))
            metrics.REDIS_RECONNECTS.inc()
        while True:
            item = self.pubsub.get_message(timeout=IDLE_PING_S)
            if item is None:
                self.pubsub.ping()  # the answer (or the error) comes back through get_message
                continue
            kind = item["type"]
            if kind == "subscribe":
                name = item["channel"].decode()
                room = self.rooms.get(name)
                if room is not None:
                    if name in resubscribed:
                        resubscribed.discard(name)
                        self._fill_gap(name, room)
                    room.subscribed.set()
            elif kind == "message":
                self._dispatch(item["channel"].decode(), item["data"], time.perf_counter())

    def _fill_gap(self, name, room):
        """Re-offer the room's recent history, and the deletes above its floor, after a
        reconnect; each client keeps only the ids newer than what it already has."""
        events = [("message", data, id) for data, id in self.history.window(name)]
        events += [("delete", data, id) for data, id in self.history.deletes_after(name, -1)]
        for event, data, id in sorted(events, key=lambda event: int(event[2])):
            _offer(room, sse_frame(data, event=event, id=id), int(id), None, time.perf_counter(), event)

    def _dispatch(self, name, payload, received_at):
        room = self.rooms.get(name)
        if room is None:
            return
        try:
            event, data, id = parse_live(payload)
            frame = sse_frame(data, event=event, id=id)
        except ValueError:
            metrics.DROPPED.inc()
            log.warning("dropped a pub/sub payload that is not a safe flask-sse message", extra={"room": name})
            return
        kind = metrics.event_kind(event)
        metrics.LIVE_RECEIVED.labels(kind).inc()
        # Events without an id (presence, typing) reach every client; they are never in
        # history and never move a client's position.
        numeric_id = int(id) if id is not None and id.isdigit() else None
        ts = _message_ts(data) if event == "message" else None
        _offer(room, frame, numeric_id, ts, received_at, kind)
        if numeric_id is not None:
            log.info("message fanned out", extra={"msg_id": id, "room": name, "clients": len(room.clients)})


def _offer(room, frame, id, ts, received_at, kind="message"):
    """One Item for every client of the room, counting them for its latency record."""
    clients = list(room.clients)
    item = Item(frame, id, ts, received_at, len(clients), kind)
    for client in clients:
        client.offer(item)


def _message_ts(data):
    """A chat message's ts (epoch ms), for the delivery-latency histogram."""
    try:
        return int(json.loads(data)["ts"])
    except (ValueError, KeyError, TypeError):
        return None
