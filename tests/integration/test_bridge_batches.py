"""The bridge applies a polled batch in one Lua call (bridge/store.py): its records keep
their order, a replay that overlaps an earlier batch changes nothing and publishes nothing
again, and what the script decides per record (a client_id repeat, a tombstone, a
partition whose history Redis lost) is decided as it was one record at a time.

Run against the stack's Redis server, in a database of its own, so that the made-up
offsets here never move the positions of the stack's real partitions.
"""

import json
import time
import uuid

import pytest
import redis

from bridge.store import DUPLICATE, NOT_READY, REPLAYED, WRITTEN, Store
from chat_common.messages import (
    ACTIVE_ROOMS_KEY,
    STATE_KEY,
    Message,
    Tombstone,
    deleted_key,
    deletes_key,
    history_key,
    meta_key,
    offsets_key,
    unpack_offsets,
)

HISTORY_MAX = 5


@pytest.fixture
def db(stack):
    client = redis.Redis.from_url(stack.settings.redis_url.rsplit("/", 1)[0] + "/3")
    client.flushdb()
    client.hset(STATE_KEY, mapping={"ready:0": 1, "ready:1": 1, "indexed:0": 0, "indexed:1": 0})
    yield client
    client.flushdb()
    client.close()


@pytest.fixture
def live(db):
    """``live(*rooms)``: what those rooms' readers are sent from then on: ``published()``
    gives every event on their channels, in order (pub/sub spans databases: the stack's
    own rooms are left out by name); a room's events of one batch come in one message."""
    pubsubs = []

    def subscribe(*rooms):
        pubsub = db.pubsub()
        pubsub.subscribe(*rooms)
        for _ in rooms:
            pubsub.get_message(timeout=5)  # each subscription's confirmation
        pubsubs.append(pubsub)

        def published():
            payloads = []
            while (message := pubsub.get_message(timeout=0.5)) is not None:
                events = json.loads(message["data"])
                for event in events if isinstance(events, list) else [events]:
                    payloads.append((message["channel"].decode(), event))
            return payloads

        return published

    yield subscribe
    for pubsub in pubsubs:
        pubsub.close()


def message(room, offset, text=None, client_id=None, ts=None):
    return Message(room=room, user="ann", text=text or f"m{offset}", ts=ts or 1_700_000_000_000 + offset,
                   client_id=client_id, id=str(offset))


def ids_in_history(db, room):
    return [int(score) for _, score in db.zrange(history_key(room), 0, -1, withscores=True)]


def test_a_replay_overlapping_the_last_batch_changes_nothing_and_publishes_nothing_again(db, live):
    store = Store(db, HISTORY_MAX, 1_000_000, 60, 3600)
    a, b = f"a-{uuid.uuid4().hex[:6]}", f"b-{uuid.uuid4().hex[:6]}"
    published = live(a, b)
    # one partition, two rooms interleaved, as Kafka hands them over
    first = [(0, message(a, 10), True), (0, message(b, 11), True), (0, message(a, 12), True),
             (0, message(b, 13), True)]
    assert store.apply(first) == [WRITTEN] * 4
    # the consumer read again from a commit inside the last batch (a crash, a rebalance)
    again = first[2:] + [(0, message(a, 14), True), (0, message(b, 15), True)]
    assert store.apply(again) == [REPLAYED, REPLAYED, WRITTEN, WRITTEN]
    assert ids_in_history(db, a) == [10, 12, 14] and ids_in_history(db, b) == [11, 13, 15]
    sent = [(room, int(payload["id"])) for room, payload in published()]
    assert sent == [(a, 10), (a, 12), (b, 11), (b, 13), (a, 14), (b, 15)]  # each once, in each room's order
    assert db.hget(STATE_KEY, "last:0") == b"15"  # every room's position in the partition
    assert unpack_offsets(db.get(offsets_key(a))) == [10, 12, 14]  # the offset index, each once
    assert db.zscore(ACTIVE_ROOMS_KEY, a) == 1_700_000_000_014  # the room directory: its newest message


def test_within_one_batch_a_client_id_repeat_is_stored_once_and_a_tombstone_applies_in_its_place(db, live):
    store = Store(db, HISTORY_MAX, 1_000_000, 60, 3600)
    room = f"c-{uuid.uuid4().hex[:6]}"
    published = live(room)
    batch = [
        (1, message(room, 20, client_id="k1"), True),
        (1, message(room, 21, client_id="k1"), True),  # the same POST, retried after a lost answer
        (1, message(room, 22), True),
        (1, Tombstone(room=room, target="22", ts=int(time.time() * 1000), id="23"), True),
        (1, Tombstone(room=room, target="22", ts=int(time.time() * 1000), id="24"), True),  # deleted twice
        (1, message(room, 25), True),
    ]
    assert store.apply(batch) == [WRITTEN, DUPLICATE, WRITTEN, WRITTEN, DUPLICATE, WRITTEN]
    assert ids_in_history(db, room) == [20, 25]
    assert db.smembers(deleted_key(room)) == {b"22"}
    assert db.zrange(deletes_key(room), 0, -1, withscores=True) == [(b"22", 23.0)]
    events = [(payload["type"], payload["id"]) for _, payload in published()]
    assert events == [("message", "20"), ("message", "22"), ("delete", "23"), ("message", "25")]
    assert db.hget(meta_key(room), "last") == b"25"


def test_a_partition_whose_history_redis_lost_is_refused_and_the_others_are_applied(db, live):
    store = Store(db, HISTORY_MAX, 1_000_000, 60, 3600)
    db.hdel(STATE_KEY, "ready:1")  # as after Redis came back empty: the bridge rebuilds partition 1
    here, lost = f"d-{uuid.uuid4().hex[:6]}", f"e-{uuid.uuid4().hex[:6]}"
    published = live(here, lost)
    batch = [(0, message(here, 30), True), (1, message(lost, 31), True), (0, message(here, 32), True)]
    assert store.apply(batch) == [WRITTEN, NOT_READY, WRITTEN]
    assert ids_in_history(db, here) == [30, 32] and ids_in_history(db, lost) == []
    assert [payload["id"] for _, payload in published()] == ["30", "32"]


def test_the_history_window_is_trimmed_within_a_batch_and_its_floor_recorded(db, live):
    store = Store(db, HISTORY_MAX, 1_000_000, 60, 3600)
    room = f"f-{uuid.uuid4().hex[:6]}"
    published = live(room)
    # rebuilt records (publish=False, recent: within the idle TTL) then live ones, in one batch
    now_ms = int(time.time() * 1000)
    batch = [(0, message(room, offset, ts=now_ms + offset), offset >= 45) for offset in range(40, 48)]
    assert store.apply(batch) == [WRITTEN] * 8
    assert ids_in_history(db, room) == [43, 44, 45, 46, 47]
    assert db.hget(meta_key(room), "floor") == b"42"
    assert [payload["id"] for _, payload in published()] == ["45", "46", "47"]
