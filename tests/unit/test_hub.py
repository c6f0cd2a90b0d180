"""The stream hub and a connection's writer: a bounded buffer per client, and each
message written once and in order whatever the order of events around a connect."""

import itertools
import json

import gevent
import pytest

from chat_common.messages import live_payload
from stream import metrics
from stream.app import _observe_delivery, live_frames, opening
from stream.hub import CLOSE, Client, Hub, Item, Room


def test_a_client_that_cannot_keep_up_is_cut_off_after_its_buffer():
    client = Client("lobby", queue_size=3)
    cut_before = metrics.CUT_OFF._value.get()
    for i in range(3):
        client.offer(Item(b"frame", i, None, 0.0))
    assert client.closed is None
    client.offer(Item(b"frame", 3, None, 0.0))  # the fourth does not fit
    assert client.closed == "slow"
    assert client.queue.qsize() == 3  # memory stays bounded: nothing more was queued
    assert metrics.CUT_OFF._value.get() == cut_before + 1


def test_closing_wakes_the_writer_with_a_sentinel():
    client = Client("lobby", queue_size=3)
    client.close("drain")
    assert client.queue.get_nowait() is CLOSE
    client.close("slow")  # a second close keeps the first reason
    assert client.closed == "drain"


def test_latency_is_recorded_once_per_message_when_its_last_local_reader_got_it():
    item = Item(b"frame", 7, ts=None, received_at=0.0, pending=3)
    before = _count(metrics.FANOUT_SECONDS)
    for _ in range(2):
        item.pending -= 1
        _observe_delivery([item])
    assert _count(metrics.FANOUT_SECONDS) == before  # two of three readers: not yet
    item.pending -= 1
    _observe_delivery([item])
    assert _count(metrics.FANOUT_SECONDS) == before + 1


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
        self.client = Client(ROOM, queue_size=64)
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
        chunks = [self.prelude] + [frame for frame, _ in self.events]
        writer = gevent.spawn(lambda: chunks.extend(live_frames(self.client, self.position)))
        gevent.sleep(0)  # the writer empties the queue, then waits for more
        self.client.close("drain")
        writer.get(timeout=1)
        return _blocks(b"".join(chunks))


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
    neighbour = Client(ROOM, queue_size=64)  # someone already follows the room: it is subscribed
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
