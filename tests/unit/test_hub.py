"""The stream hub and a connection's writer: a bounded backlog per client, each message
written once and in order whatever the order of events around a connect, and written
straight to an idle socket by the hub, falling back to the client's own greenlet when the
socket is full. Where a test needs no real socket, the client writes to a MemoryTransport."""

import itertools
import json
import socket as stdlib_socket
import sys

import gevent
import pytest
from gevent import socket

from chat_common.messages import live_payload, sse_frame
from stream import metrics
from stream.app import opening
from stream.hub import Client, Hub, Item, Room
from stream.transport import MemoryTransport, SocketTransport


@pytest.fixture
def pair():
    """A connected pair of gevent sockets: the stream's end and the reader's."""
    a, b = socket.socketpair()
    yield a, b
    a.close()
    b.close()


def _item(id, size=0, kind="message"):
    data = json.dumps({"id": str(id), "room": "lobby", "text": "x" * size, "ts": 0})
    return Item(sse_frame(data, event="message", id=id), id, None, 0.0, kind)


def _running(client, position=-1):
    """The client's greenlet, started and waiting with an empty backlog."""
    writer = gevent.spawn(client.run, position)
    gevent.sleep(0)
    return writer


def _recv_all(sock):
    """Everything the reader's socket holds now (read without waiting)."""
    chunks, timeout = [], sock.gettimeout()
    sock.settimeout(0)
    try:
        while chunk := sock.recv(1 << 20):
            chunks.append(chunk)
    except BlockingIOError:
        pass
    finally:
        sock.settimeout(timeout)
    return b"".join(chunks)


def _dechunk(body):
    """The payload of HTTP/1.1 chunks; AssertionError if any chunk is malformed."""
    out = []
    while body:
        size, sep, body = body.partition(b"\r\n")
        assert sep, "a chunk without its size line"
        size = int(size, 16)
        assert body[size:size + 2] == b"\r\n", "a chunk not ended by CRLF"
        out.append(body[:size])
        body = body[size + 2:]
    return b"".join(out)


def _ids(body):
    return [int(line[4:]) for line in body.split(b"\n") if line.startswith(b"id: ")]


def test_a_client_that_cannot_keep_up_is_cut_off_after_its_backlog():
    client = Client("lobby", limit=3)
    cut_before = metrics.CUT_OFF._value.get()
    for i in range(3):
        client.offer([_item(i)])
    assert client.closed is None
    client.offer([_item(3)])  # the fourth does not fit
    assert client.closed == "slow"
    assert len(client.backlog) == 3  # memory stays bounded: nothing more was kept
    assert metrics.CUT_OFF._value.get() == cut_before + 1


def test_closing_ends_the_writer(pair):
    client = Client("lobby", limit=3, transport=SocketTransport(pair[0]))
    writer = _running(client)
    client.close("drain")
    writer.get(timeout=1)
    client.close("slow")  # a second close keeps the first reason
    assert client.closed == "drain"


def test_an_idle_reader_gets_an_event_from_the_hub_at_once_without_its_greenlet_running(pair):
    a, b = pair
    client = Client("lobby", limit=8, sock=a)  # as the app makes it: gunicorn's socket, HTTP/1.1
    writer = _running(client)
    room = Room()
    room.clients.add(client)
    sent_before = metrics.EVENTS_SENT.labels("message")._value.get()
    item = _item(5)
    room.offer([item])  # no switch happens here: the writer greenlet stays parked
    assert _recv_all(b) == item.chunk
    assert client.backlog is None and item.pending == 0
    assert metrics.EVENTS_SENT.labels("message")._value.get() == sent_before + 1
    assert not writer.dead
    client.close("drain")
    writer.get(timeout=1)


def test_events_offered_before_the_opening_are_written_together_in_order_once(pair):
    """Coalesced: what waited while the opening was written goes out in one write, as
    valid chunks, each id once, only what is newer than the opening's position."""
    a, b = pair
    client = Client("lobby", limit=64, transport=SocketTransport(a))
    for id in (3, 4, 5, 6, 4, 5, 7):  # a gap fill overlapping live events
        client.offer([_item(id)])
    writer = _running(client, position=4)
    body = _recv_all(b)
    assert _ids(_dechunk(body)) == [5, 6, 7]
    assert client.backlog is None  # caught up: direct writes again
    client.offer([_item(8)])
    client.offer([_item(8)])
    assert _ids(_dechunk(_recv_all(b))) == [8]
    client.close("drain")
    writer.get(timeout=1)


def test_events_handed_over_together_go_to_an_idle_socket_in_one_write_in_order():
    transport = MemoryTransport()
    client = Client("lobby", limit=64, transport=transport)
    writer = _running(client, position=4)
    room = Room()
    room.clients.add(client)
    items = [_item(id) for id in (4, 5, 6, 7)]  # 4: it has it already
    room.offer(items)
    assert transport.writes == [b"".join(item.chunk for item in items[1:])]
    assert [item.sent for item in items] == [0, 1, 1, 1]
    client.close("drain")
    writer.get(timeout=1)


def test_a_write_the_kernel_takes_in_part_is_finished_by_the_clients_greenlet_byte_for_byte():
    items = [_item(id) for id in (5, 6, 7, 8)]
    transport = MemoryTransport(take=len(items[0].chunk) + 3)  # the first event and 3 bytes of the second
    client = Client("lobby", limit=64, transport=transport)
    writer = _running(client, position=4)
    client.offer(items)
    assert [item.sent for item in items] == [1, 0, 0, 0]
    assert [item.pending for item in items] == [0, 1, 1, 1]
    assert len(client.backlog) == 2  # the rest of the second is apart, as a view of its bytes
    gevent.sleep(0)
    gevent.sleep(0)  # the writer finishes it
    assert transport.written() == b"".join(item.chunk for item in items)
    assert len(transport.writes) == 2 and client.backlog is None
    assert [item.pending for item in items] == [0, 0, 0, 0]
    client.close("drain")
    writer.get(timeout=1)


def test_a_reader_that_left_closes_its_client_and_a_cut_off_shuts_its_connection():
    gone = MemoryTransport()
    client = Client("lobby", limit=64, transport=gone)
    writer = _running(client)
    gone.gone = True
    client.offer([_item(5)])
    assert client.closed == "client" and not gone.shut
    writer.get(timeout=1)

    slow = MemoryTransport(take=0)  # the socket is full: everything waits in the backlog
    client = Client("lobby", limit=2, transport=slow)
    writer = _running(client)
    client.offer([_item(1)])
    client.offer([_item(2), _item(3), _item(4)])  # one more than the limit
    assert client.closed == "slow" and slow.shut  # its writer may be blocked on the socket: it is shut
    writer.get(timeout=1)


class SystemCalls:
    """The socket system calls this thread makes meanwhile, by name (each C-level call of a
    socket's method is one): what gevent, the transport or the hub add shows up here."""

    NAMES = ("send", "sendall", "sendto", "sendmsg", "getsockopt")

    def __init__(self):
        self.calls = []

    def _profile(self, frame, event, arg):
        if event == "c_call" and getattr(arg, "__name__", None) in self.NAMES and \
                isinstance(getattr(arg, "__self__", None), stdlib_socket.SocketType):
            self.calls.append(arg.__name__)

    def __enter__(self):
        sys.setprofile(self._profile)
        return self.calls

    def __exit__(self, *exc):
        sys.setprofile(None)


def test_a_delivery_costs_one_system_call_from_the_hub_and_from_the_clients_greenlet(pair):
    """The hub's write of a room's events to an idle socket is one send; the client's
    greenlet's write of what waited is one send too where the kernel takes it whole (gevent's
    own sendall asks for the socket's buffer size first: two)."""
    a, b = pair
    client = Client("lobby", limit=64, transport=SocketTransport(a))
    writer = _running(client, position=0)
    room = Room()
    room.clients.add(client)
    with SystemCalls() as calls:
        room.offer([_item(1), _item(2), _item(3)])
    assert calls == ["send"]
    assert _ids(_dechunk(_recv_all(b))) == [1, 2, 3]
    client.close("drain")
    writer.get(timeout=1)

    early = Client("lobby", limit=64, transport=SocketTransport(a))
    for id in (4, 5, 6):
        early.offer([_item(id)])  # before run(): they wait in the backlog, for its greenlet
    with SystemCalls() as calls:
        writer = _running(early, position=3)
    assert calls == ["send"]
    assert _ids(_dechunk(_recv_all(b))) == [4, 5, 6]
    early.close("drain")
    writer.get(timeout=1)


def _small_buffers(a, b):
    a.setsockopt(stdlib_socket.SOL_SOCKET, stdlib_socket.SO_SNDBUF, 4096)
    b.setsockopt(stdlib_socket.SOL_SOCKET, stdlib_socket.SO_RCVBUF, 4096)


def test_a_full_socket_falls_back_to_the_clients_greenlet_and_loses_nothing(pair):
    a, b = pair
    _small_buffers(a, b)
    client = Client("lobby", limit=1000, transport=SocketTransport(a, chunked=False))
    writer = _running(client)
    items = [_item(id, size=1000) for id in range(200)]  # far more than the sockets hold
    for item in items:
        client.offer([item])
    assert items[0].sent == 1 and items[-1].sent == 0  # the first went straight out, the last waited
    assert client.backlog  # the rest waits for the client's greenlet
    received = b""
    while len(received) < sum(len(item.frame) for item in items):
        chunk = b.recv(1 << 16)  # yields: the writer writes as the reader reads
        assert chunk, "the stream ended early"
        received += chunk
    assert received == b"".join(item.frame for item in items)  # whole frames, in order, once
    gevent.sleep(0)
    assert client.backlog is None and all(item.pending == 0 for item in items)
    client.close("drain")
    writer.get(timeout=1)


def test_a_full_socket_is_cut_off_at_the_limit_and_frames_arrive_whole_until_then(pair):
    a, b = pair
    _small_buffers(a, b)
    client = Client("lobby", limit=10, transport=SocketTransport(a, chunked=False))
    writer = _running(client)
    cut_before = metrics.CUT_OFF._value.get()
    id = 0
    while client.backlog is None:  # until the socket is full
        client.offer([_item(id, size=1000)])
        id += 1
    gevent.sleep(0)
    gevent.sleep(0)  # the writer takes over and waits for the socket to drain
    while client.closed is None:
        client.offer([_item(id, size=1000)])
        id += 1
        assert len(client.backlog) <= 10  # never more than the limit
    assert client.closed == "slow" and metrics.CUT_OFF._value.get() == cut_before + 1
    writer.get(timeout=1)  # the cut-off ends the stream
    received = b""
    while chunk := b.recv(1 << 16):
        received += chunk
    whole = received[:received.rfind(b"\n\n") + 2]  # a frame cut in the middle is dropped by the reader
    got = _ids(whole)
    assert got == list(range(len(got))) and len(got) < id  # in order, once, and short of the rest


def test_latency_is_recorded_once_per_message_when_its_last_local_reader_got_it(pair):
    a, b = pair
    _small_buffers(a, b)
    busy = Client("lobby", limit=1000, transport=SocketTransport(a, chunked=False))
    idle_a, idle_b = socket.socketpair()
    idle = Client("lobby", limit=1000, transport=SocketTransport(idle_a, chunked=False))
    writers = [_running(busy), _running(idle)]
    room = Room()
    room.clients.update({busy, idle})
    filler = 0
    while busy.backlog is None:  # fill the busy reader's socket
        busy.offer([_item(filler, size=1000, kind=None)])  # no event of its own: not recorded
        filler += 1
    before = _count(metrics.FANOUT_SECONDS)
    item = _item(10_000)
    room.offer([item])
    assert _count(metrics.FANOUT_SECONDS) == before  # one of two readers has it: not yet
    assert item.pending == 1
    while b.recv(1 << 16) and item.pending:  # the busy reader reads; its greenlet writes
        pass
    assert _count(metrics.FANOUT_SECONDS) == before + 1
    for client in (busy, idle):
        client.close("drain")
    gevent.joinall(writers, timeout=1)
    idle_a.close()
    idle_b.close()


def _count(histogram):
    return sum(sample.value for sample in histogram.collect()[0].samples if sample.name.endswith("_count"))


# -- a connection against its hub, event by event -----------------------------------------
#
# A connect joins the hub (subscribed, or waiting for the hub's (re)subscription), reads
# the room at one instant (History.opening), and its writer then passes what its queue
# holds. Meanwhile the bridge applies messages (published to the hub only while it is
# subscribed) and the hub's pub/sub connection may drop and resubscribe, re-offering the
# room's window. Every order of those steps must give the reader each message once, in
# order: after its resume point, or the last n it asked for and everything newer.

ROOM = "lobby"


class RoomLog:
    """The room as the bridge leaves it in Redis: messages applied in id order, and the
    position a read returns with them (a stand-in for History over the real Redis)."""

    def __init__(self, messages):
        self.ids = list(range(messages))

    @property
    def head(self):
        return self.ids[-1] if self.ids else -1

    def apply(self):
        self.ids.append(self.head + 1)
        return self.ids[-1]

    def window(self, room):
        return [(_json(id), str(id)) for id in self.ids]

    def deletes_after(self, room, last_id):
        return []  # nothing is deleted here

    def changes_after(self, room, last_id):
        return []  # nothing is edited here

    def opening(self, last_id, count):
        """(events, head, reset), as History.opening reads them."""
        messages = [m for m in self.window(ROOM) if int(m[1]) > last_id] if last_id is not None else (
            self.window(ROOM)[len(self.ids) - count:] if count else [])
        return [("message", data, id) for data, id in messages], self.head, False


def _json(id):
    return json.dumps({"id": str(id), "room": ROOM, "user": "ann", "text": f"m{id}", "ts": 0})


class Connection:
    """One reader's connect, step by step, against a hub whose listener the test plays."""

    def __init__(self, hub, log, last_id, count):
        self.hub, self.log, self.last_id, self.count = hub, log, last_id, count
        self.sock, self.peer = socket.socketpair()
        self.client = Client(ROOM, limit=64, transport=SocketTransport(self.sock, chunked=False))
        self.joining = None
        self.prelude = self.events = self.position = None

    def join(self):
        self.joining = gevent.spawn(self.hub.join, self.client)  # waits while the room is unsubscribed
        gevent.sleep(0)

    def read(self):
        self.joining.get(timeout=1)  # the connect reads only once its room is subscribed
        messages, head, reset = self.log.opening(self.last_id, self.count)
        self.prelude, self.events, self.position = opening(messages, head, reset, self.last_id, 2000, '{"users":[]}')

    def written(self):
        """Everything the connection writes once its queue is drained: (event, id) per block."""
        opening = self.prelude + b"".join(frame for frame, _ in self.events)
        writer = gevent.spawn(self.client.run, self.position)
        gevent.sleep(0)  # the writer empties the backlog, then waits for more
        live = _recv_all(self.peer)
        self.client.close("drain")
        writer.get(timeout=1)
        self.sock.close()
        self.peer.close()
        return _blocks(opening + live)


def _blocks(body):
    blocks = []
    for block in body.decode().split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.split("\n") if line and not line.startswith(":"))
        if "id" in fields or "event" in fields:
            blocks.append((fields.get("event"), fields.get("id")))
    return blocks


class Listener:
    """What the hub's listener does, one step at a time."""

    def __init__(self, hub):
        self.hub = hub
        self.subscribed = True

    def drop(self):  # the pub/sub connection is lost: publishes no longer reach the hub
        self.subscribed = False
        for room in self.hub.rooms.values():
            room.subscribed.clear()

    def resubscribe(self):  # reconnected: the room's subscription is confirmed, its gap filled
        self.subscribed = True
        room = self.hub.rooms[ROOM]
        self.hub._fill_gap(ROOM, room)
        room.subscribed.set()
        gevent.sleep(0)

    def publish(self, id):
        if self.subscribed:
            self.hub._dispatch(ROOM, live_payload(_json(id), "message", str(id)), 0.0)


def _orders():
    """Every order of: the reader joins (J) then reads (R); the hub drops (D) then
    resubscribes (S); the bridge applies two messages (A). A join during the drop returns
    only after the resubscription."""
    seen = set()
    for order in itertools.permutations("JRDSAA"):
        if order in seen:
            continue
        seen.add(order)
        at = {step: order.index(step) for step in "JRDS"}
        if at["J"] > at["R"] or at["D"] > at["S"]:
            continue
        if at["D"] < at["J"] < at["S"] and at["R"] < at["S"]:
            continue
        yield "".join(order)


CONNECTS = {"resume": (4, 50), "history-0": (None, 0), "history-2": (None, 2), "resume-empty": (-1, 50)}


@pytest.mark.parametrize("order", list(_orders()))
@pytest.mark.parametrize("connect", list(CONNECTS))
def test_each_message_once_and_in_order_whatever_the_order_of_join_read_resubscription_and_publishing(
        connect, order):
    last_id, count = CONNECTS[connect]
    log = RoomLog(0 if connect == "resume-empty" else 5)
    hub = Hub(None, log)
    neighbour = Client(ROOM, limit=64)  # someone already follows the room: it is subscribed
    hub.rooms[ROOM] = Room()
    hub.rooms[ROOM].clients.add(neighbour)
    hub.rooms[ROOM].subscribed.set()
    listener, reader = Listener(hub), Connection(hub, log, last_id, count)
    head_at_read = None
    for step in order:
        if step == "J":
            reader.join()
        elif step == "R":
            reader.read()
            head_at_read = log.head
        elif step == "D":
            listener.drop()
        elif step == "S":
            listener.resubscribe()
        else:
            listener.publish(log.apply())
    listener.publish(log.apply())  # and one more, live

    written = reader.written()
    ids = [int(id) for event, id in written if event == "message"]
    if last_id is not None:
        expected = [id for id in log.ids if id > last_id]
    else:
        history = [id for id in log.ids if id <= head_at_read][-count:] if count else []
        expected = history + [id for id in log.ids if id > head_at_read]
    assert ids == expected, f"{connect}, order {order}: wrote {ids}"
    # Before any event, the reader had its position: resuming there gives exactly what followed it.
    position = int(written[0][1])
    assert written[0][0] is None
    assert [id for id in log.ids if id > position] == expected


def test_after_a_reset_the_new_position_rides_on_the_reset_event_itself():
    """A reader that took the new position without the reset would keep its old window and
    never learn of the gap; so nothing before the reset event carries an id."""
    messages = [("message", _json(id), str(id)) for id in (40, 41)]
    prelude, events, position = opening(messages, 45, True, 3, 2000, '{"users":[]}')
    assert _blocks(prelude) == []  # the comment and the retry hint only
    assert _blocks(b"".join(frame for frame, _ in events)) == [
        ("reset", "39"), ("message", "40"), ("message", "41"), ("presence", None)]
    assert position == 45  # later messages pass live; 42-45 were other rooms' records


def test_a_room_s_events_published_together_reach_its_readers_in_order_in_one_write():
    """The bridge publishes a room's records of one batch as one JSON array of flask-sse
    payloads; each is an event of its own, in order, and a payload alone still works."""
    hub = Hub(None, RoomLog(0))
    transport = MemoryTransport()
    client = Client(ROOM, limit=64, transport=transport)
    writer = _running(client, position=4)
    hub.rooms[ROOM] = Room()
    hub.rooms[ROOM].clients.add(client)
    together = "[" + ",".join(live_payload(_json(id), "message", str(id)) for id in (5, 6, 7)) + "]"
    hub._dispatch(ROOM, together.encode(), 0.0)
    hub._dispatch(ROOM, live_payload(_json(8), "message", "8").encode(), 0.0)
    assert len(transport.writes) == 2
    assert _ids(_dechunk(b"".join(transport.writes))) == [5, 6, 7, 8]
    client.close("drain")
    writer.get(timeout=1)
