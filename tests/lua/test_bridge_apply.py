"""bridge/lua/apply.lua and batch.lua on their own: one polled batch applied to Redis as the
bridge's Store sends it (no Kafka, no services)."""

import json

import pytest

from bridge.store import DUPLICATE, NOT_READY, REPLAYED, WRITTEN, Store
from chat_common.messages import (
    STATE_KEY,
    Message,
    Tombstone,
    client_id_key,
    deleted_key,
    deletes_key,
    history_key,
    meta_key,
    offsets_key,
    unpack_offsets,
)

ROOM = "lobby"


@pytest.fixture
def store(redis):
    redis.hset(STATE_KEY, mapping={"ready:0": 1, "indexed:0": 0})
    return Store(redis, 3, 60)


def message(offset, text=None, client_id=None):
    return Message(room=ROOM, user="ann", text=text or f"m{offset}", ts=1_700_000_000_000 + offset,
                   client_id=client_id, id=str(offset))


def tombstone(offset, target):
    return Tombstone(room=ROOM, target=str(target), ts=1_700_000_000_000 + offset, id=str(offset))


def window(redis):
    return [(json.loads(member)["text"], int(score)) for member, score in
            redis.zrange(history_key(ROOM), 0, -1, withscores=True)]


def test_a_message_is_stored_indexed_and_published(store, redis):
    pubsub = redis.pubsub()
    pubsub.subscribe(ROOM)
    pubsub.get_message(timeout=1)
    assert store.apply([(0, message(5, "hello"), True)]) == [WRITTEN]
    assert window(redis) == [("hello", 5)]
    assert redis.hget(meta_key(ROOM), "last") == b"5" and redis.hget(STATE_KEY, "last:0") == b"5"
    assert unpack_offsets(redis.get(offsets_key(ROOM))) == [5]
    published = pubsub.get_message(timeout=1)
    assert json.loads(published["data"])["id"] == "5"
    pubsub.close()


def test_a_replay_changes_nothing(store, redis):
    batch = [(0, message(5), True), (0, message(6), True)]
    store.apply(batch)
    before = {key: redis.dump(key) for key in redis.keys("*")}
    assert store.apply(batch) == [REPLAYED, REPLAYED]
    assert {key: redis.dump(key) for key in redis.keys("*")} == before


def test_a_client_id_repeat_is_stored_once(store, redis):
    outcomes = store.apply([(0, message(5, "first", client_id="k"), True),
                            (0, message(6, "again", client_id="k"), True)])
    assert outcomes == [WRITTEN, DUPLICATE]
    assert window(redis) == [("first", 5)]
    assert unpack_offsets(redis.get(offsets_key(ROOM))) == [5]  # a repeat is no message of the room
    assert redis.ttl(client_id_key(ROOM, "k")) > 0


def test_a_tombstone_takes_the_message_out_of_the_window_once(store, redis):
    store.apply([(0, message(5), True), (0, message(6), True)])
    assert store.apply([(0, tombstone(7, 5), True), (0, tombstone(8, 5), True)]) == [WRITTEN, DUPLICATE]
    assert window(redis) == [("m6", 6)]
    assert redis.smembers(deleted_key(ROOM)) == {b"5"}
    assert redis.zrange(deletes_key(ROOM), 0, -1, withscores=True) == [(b"5", 7.0)]
    assert unpack_offsets(redis.get(offsets_key(ROOM))) == [5, 6]  # a tombstone is never indexed


def test_the_window_keeps_the_newest_and_the_floor_follows_what_left(store, redis):
    store.apply([(0, message(offset), True) for offset in (1, 2, 3, 4, 5)])
    assert [offset for _, offset in window(redis)] == [3, 4, 5]
    assert redis.hget(meta_key(ROOM), "floor") == b"2"


def test_a_partition_whose_history_redis_lost_is_refused(store, redis):
    redis.hdel(STATE_KEY, "ready:0")
    assert store.apply([(0, message(5), True)]) == [NOT_READY]
    assert not redis.exists(history_key(ROOM))
