"""The hub in cluster mode (``REDIS_MODE=cluster``): the rooms' live events are shard channels
(``SPUBLISH``, chat_common/keys.py), which each primary delivers to the connections that
subscribed to them on it. So a worker keeps one pub/sub connection per primary that holds one
of its rooms (a listener: its own greenlet, blocked in its socket's read as the single node's
hub is: no poll per message), and subscribes each room on the primary that holds its slot.

A listener that loses its connection (its node died, or gave its slots away: Redis ends the
subscriptions of slots it no longer serves) reads the cluster's slots again and hands each of
its rooms to the listener of the room's owner now, which subscribes it and re-offers its
window (readers keep only what is newer than they have); the other listeners go on reading:
rooms of other shards do not pause. Until a replica has taken over the slots, the owner is
the dead node still, and its listener retries with backoff.
"""

import logging
from dataclasses import dataclass, field
from typing import Any

import gevent
from gevent.event import Event
from redis import Redis, RedisCluster
from redis.backoff import NoBackoff
from redis.client import PubSub
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisClusterException, RedisError
from redis.retry import Retry

from chat_common import keys
from chat_common.messages import channel
from stream import metrics
from stream.hub import Client, Hub, Room, RoomHistory

log = logging.getLogger(__name__)

CONNECT_TIMEOUT_S = 2.0
CREDENTIALS = ("username", "password", "credential_provider")
MAX_BACKOFF_S = 0.5  # a failover is over in seconds: retry often enough to be back at once


@dataclass(eq=False)
class Listener:
    """One primary's pub/sub connection and the rooms subscribed on it."""

    node: str  # "host:port"
    rooms: set[str] = field(default_factory=set)
    connected: Event = field(default_factory=Event)
    pubsub: PubSub | None = None
    pending: set[str] = field(default_factory=set)  # rooms whose window to re-offer once subscribed
    greenlet: Any = None
    stopped: bool = False


class ClusterHub(Hub):
    def __init__(self, cluster: RedisCluster, history: RoomHistory, heartbeat_s: float = 15.0) -> None:
        super().__init__(None, history, heartbeat_s)
        self.cluster = cluster
        self.listeners: dict[str, Listener] = {}
        self.owner: dict[str, Listener] = {}  # room -> the listener it is subscribed with

    def start(self) -> None:
        gevent.spawn(self._topology_forever)
        gevent.spawn(self._beat_forever)

    def _topology_forever(self) -> None:
        """Ready once the cluster's slots are known (the first read may wait for the cluster)."""
        backoff = 0.1
        while not self.connected.is_set():
            try:
                self.cluster.nodes_manager.initialize()
                self.connected.set()
                for name in list(self.rooms):  # joined while the slots were unknown
                    if name not in self.owner:
                        self._subscribe(name, refill=False)
            except (RedisError, OSError) as error:
                log.warning("redis cluster slots unknown; retrying", extra={"error": str(error)})
                gevent.sleep(backoff)
                backoff = min(backoff * 2, 2.0)

    # -- rooms ---------------------------------------------------------------------------

    def _node_of(self, room: str) -> str:
        node = self.cluster.nodes_manager.get_node_from_slot(self.cluster.keyslot(channel(room)))
        return f"{node.host}:{node.port}"

    def _listener_for(self, node: str) -> Listener:
        listener = self.listeners.get(node)
        if listener is None:
            listener = self.listeners[node] = Listener(node)
            listener.greenlet = gevent.spawn(self._listen_forever_on, listener)
        return listener

    def _subscribe(self, room: str, refill: bool) -> None:
        """Subscribe ``room`` with the listener of its owner (now, if it is connected; else
        once it is); ``refill``: re-offer its window once subscribed."""
        listener = self._listener_for(self._node_of(room))
        self.owner[room] = listener
        listener.rooms.add(room)
        if refill:
            listener.pending.add(room)
        if listener.pubsub is not None and listener.connected.is_set():
            try:
                listener.pubsub.ssubscribe(channel(room))
            except (RedisError, OSError):
                pass  # the listener reconnects and subscribes every room it has

    def join(self, client: Client, timeout: float = 5.0) -> None:
        room = self.rooms.get(client.room)
        if room is None:
            room = self.rooms[client.room] = Room()
            metrics.SUBSCRIPTIONS.inc()
            if self.connected.is_set():
                try:
                    self._subscribe(client.room, refill=False)
                except RedisClusterException:
                    pass  # its slot has no primary now: the wait below ends in a refusal (503)
        room.clients.add(client)
        if not room.subscribed.wait(timeout):
            self.leave(client)
            raise RedisError("no Redis subscription for the room")

    def leave(self, client: Client) -> None:
        room = self.rooms.get(client.room)
        if room is None:
            return
        room.clients.discard(client)
        if room.clients:
            return
        del self.rooms[client.room]
        metrics.SUBSCRIPTIONS.dec()
        listener = self.owner.pop(client.room, None)
        if listener is None:
            return
        listener.rooms.discard(client.room)
        listener.pending.discard(client.room)
        if listener.pubsub is not None and listener.connected.is_set():
            try:
                listener.pubsub.sunsubscribe(channel(client.room))
            except (RedisError, OSError):
                pass

    def _unsubscribed(self, name: str) -> None:
        """Redis ended a room's subscription it was not asked to end: its slot moved."""
        listener = self.owner.get(name)
        if name in self.rooms and listener is not None and name in listener.rooms:
            raise RedisConnectionError(f"the slot of {name!r} moved away from {listener.node}")

    # -- a listener ----------------------------------------------------------------------

    def _listen_forever_on(self, listener: Listener) -> None:
        backoff = 0.05
        while not listener.stopped:
            try:
                self._listen_on(listener)
            except (RedisError, OSError) as error:
                log.warning("redis shard pub/sub lost; reconnecting",
                            extra={"node": listener.node, "error": str(error)})
            listener.connected.clear()
            listener.pending |= listener.rooms  # events may have been missed meanwhile
            for name in listener.rooms:
                room = self.rooms.get(name)
                if room is not None:
                    room.subscribed.clear()
            gevent.sleep(backoff)
            backoff = min(backoff * 2, MAX_BACKOFF_S)
            self._rebalance(listener)

    def _rebalance(self, failed: Listener) -> None:
        """Read the slots again; hand ``failed``'s rooms that another node owns now to its
        listener (their windows re-offered), and end ``failed`` if it has none left."""
        try:
            self.cluster.nodes_manager.initialize()
            moved = [name for name in failed.rooms if self._node_of(name) != failed.node]
        except (RedisError, RedisClusterException, OSError) as error:
            log.warning("redis cluster slots unknown; retrying", extra={"error": str(error)})
            return
        for name in moved:
            failed.rooms.discard(name)
            failed.pending.discard(name)
            self._subscribe(name, refill=True)
        if not failed.rooms:
            failed.stopped = True
            if self.listeners.get(failed.node) is failed:
                del self.listeners[failed.node]

    def _listen_on(self, listener: Listener) -> None:
        if listener.pubsub is not None:
            listener.pubsub.close()
        host, _, port = listener.node.rpartition(":")
        # The cluster client's credentials: a node of a cluster with a password refuses the
        # connection's first command (HELLO) without them.
        credentials = {name: value for name, value in self.cluster.get_connection_kwargs().items()
                       if name in CREDENTIALS and value is not None}
        node = Redis(host=host, port=int(port), retry=Retry(NoBackoff(), 0), socket_connect_timeout=CONNECT_TIMEOUT_S,
                     socket_keepalive=True, **credentials)
        pubsub = listener.pubsub = node.pubsub()
        if not listener.rooms:
            listener.stopped = True  # every room left before it connected
            if self.listeners.get(listener.node) is listener:
                del self.listeners[listener.node]
            return
        # Connected first, before a room that joins may subscribe itself on this pubsub: its
        # connect yields, and a SSUBSCRIBE sent meanwhile by a joining room opened a second
        # connection that nobody read, so that room's live events were lost (readers saw them
        # only once a reconnect re-offered the window; with the shard's history lost too,
        # never: 100 and 300 deliveries lost of 240 and 374 messages in two runs).
        first = channel(next(iter(listener.rooms)))
        pubsub.ssubscribe(first)  # an error here retries with backoff
        # No yield between listing the rooms and marking it connected: a room that joins
        # from here on subscribes itself, every earlier one is (re)subscribed here.
        subscribe = [channel(name) for name in listener.rooms]
        listener.connected.set()
        for name in subscribe:  # one SSUBSCRIBE each: Redis refuses channels of several slots in one
            if name != first:
                pubsub.ssubscribe(name)
        if first not in subscribe:  # its room was left while connecting
            pubsub.sunsubscribe(first)
        if listener.pending:
            metrics.REDIS_RECONNECTS.inc()
        # ``pending`` is read as the confirmations come: a room moved in meanwhile is re-offered too
        self._pump(pubsub, listener.pending, live="smessage", confirmed="ssubscribe", room_of=keys.room_of_channel)
