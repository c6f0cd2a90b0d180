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
IDLE_TTL_S = 3600


@pytest.fixture
def store(redis):
    redis.hset(STATE_KEY, mapping={"ready:0": 1, "indexed:0": 0})
    return Store(redis, 3, 1_000_000, 60, IDLE_TTL_S)


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


def test_the_client_id_key_holds_only_the_id(store, redis):
    store.apply([(0, message(5, "x" * 4000, client_id="k"), True)])
    assert redis.get(client_id_key(ROOM, "k")) == b"5"


def test_the_window_is_bounded_in_bytes_and_the_floor_follows_what_left(redis):
    redis.hset(STATE_KEY, mapping={"ready:0": 1, "indexed:0": 0})
    sizes = {offset: len(message(offset, "x" * 1000).to_json().encode()) for offset in range(1, 6)}
    store = Store(redis, 1000, sizes[1] * 3 + 10, 60, IDLE_TTL_S)  # room for three of them
    store.apply([(0, message(offset, "x" * 1000), True) for offset in range(1, 6)])
    assert [offset for _, offset in window(redis)] == [3, 4, 5]
    assert redis.hget(meta_key(ROOM), "floor") == b"2"
    assert int(redis.hget(meta_key(ROOM), "bytes")) == sizes[3] + sizes[4] + sizes[5]
    store.apply([(0, tombstone(6, 4), True)])  # a deleted message leaves the count too
    assert int(redis.hget(meta_key(ROOM), "bytes")) == sizes[3] + sizes[5]


def test_a_window_stored_without_a_byte_count_is_counted_once(store, redis):
    store.apply([(0, message(1, "é" * 10), True)])
    redis.hdel(meta_key(ROOM), "bytes")  # as written before the count existed
    store.apply([(0, message(2), True)])
    stored = sum(len(member) for member in redis.zrange(history_key(ROOM), 0, -1))
    assert int(redis.hget(meta_key(ROOM), "bytes")) == stored


def test_an_idle_room_s_window_expires_but_its_deleted_set_and_index_stay(store, redis):
    store.apply([(0, message(5), True), (0, tombstone(6, 5), True), (0, message(7), True)])
    for key in (history_key(ROOM), meta_key(ROOM), deletes_key(ROOM)):
        assert 0 < redis.ttl(key) <= IDLE_TTL_S, key
    assert redis.ttl(deleted_key(ROOM)) == -1 and redis.ttl(offsets_key(ROOM)) == -1
    redis.expire(history_key(ROOM), 5)
    store.apply([(0, message(8), True)])  # every apply keeps the window for the whole TTL
    assert redis.ttl(history_key(ROOM)) > IDLE_TTL_S - 5


def test_a_room_back_from_idle_keeps_the_floor_readers_had_and_replays_change_nothing(store, redis):
    store.apply([(0, message(5), True), (0, message(6), True)])
    store.apply([(0, Message(room="other", user="bo", text="hi", ts=1, id="9"), True)])
    redis.delete(history_key(ROOM), meta_key(ROOM), deletes_key(ROOM))  # expired
    assert store.apply([(0, message(6), True)]) == [REPLAYED]  # a replay does not bring it back
    assert not redis.exists(history_key(ROOM), meta_key(ROOM))
    assert store.apply([(0, message(12), True)]) == [WRITTEN]
    # meanwhile readers took last:0 (9) as the room's floor; a resume below it gets a reset
    assert redis.hget(meta_key(ROOM), "floor") == b"9"
    assert window(redis) == [("m12", 12)]
    assert unpack_offsets(redis.get(offsets_key(ROOM))) == [5, 6, 12]


def test_a_new_room_has_no_floor_of_its_own(store, redis):
    store.apply([(0, Message(room="other", user="bo", text="hi", ts=1, id="9"), True)])
    store.apply([(0, message(12), True)])
    assert redis.hget(meta_key(ROOM), "floor") is None  # the partition's floor applies


def test_a_rebuild_keeps_out_of_the_window_what_would_have_expired(store, redis):
    now_ms = 1_700_000_000_000 + 20 + IDLE_TTL_S * 1000  # messages 5 and 6 older than the TTL, 25 not
    batch = [(0, message(5, client_id="k"), False), (0, tombstone(6, 5), False), (0, message(7), False),
             (0, message(25), False)]
    assert store.apply(batch, now_ms=now_ms) == [WRITTEN] * 4
    assert window(redis) == [("m25", 25)]
    assert redis.hget(meta_key(ROOM), "floor") == b"7"  # what came before is read from Kafka
    assert unpack_offsets(redis.get(offsets_key(ROOM))) == [5, 7, 25]
    assert redis.smembers(deleted_key(ROOM)) == {b"5"} and redis.get(client_id_key(ROOM, "k")) == b"5"
    assert store.apply(batch, now_ms=now_ms) == [REPLAYED] * 4  # a replay of the rebuild
    assert unpack_offsets(redis.get(offsets_key(ROOM))) == [5, 7, 25]


def test_a_batch_reads_and_writes_shared_state_once(redis):
    """Redis's work per record: each partition's state is read and written once per batch,
    each room's TTLs set once, whatever the batch holds (17.8 commands a record before)."""
    store = Store(redis, 1000, 1_000_000, 60, IDLE_TTL_S)
    redis.hset(STATE_KEY, mapping={"ready:0": 1, "indexed:0": 0})
    redis.hset(STATE_KEY, mapping={"ready:1": 1, "indexed:1": 0})
    other = Message(room="other", user="bo", text="hi", ts=1_700_000_000_000, id="3")
    redis.config_resetstat()
    outcomes = store.apply([(0, message(offset, client_id=f"c{offset}"), True) for offset in range(1, 21)]
                           + [(1, other, True)])
    calls = {name.removeprefix("cmdstat_"): stats["calls"] for name, stats in redis.info("commandstats").items()}
    assert outcomes == [WRITTEN] * 21
    assert calls["expire"] == 2 * 3 and calls["hmget"] == 2 + 21 and calls["hset"] == 2 + 21
    assert redis.hget(STATE_KEY, "last:0") == b"20" and redis.hget(STATE_KEY, "last:1") == b"3"
    assert sum(calls.values()) <= 8 * 21  # the script call itself included
    assert 0 < redis.ttl(history_key(ROOM)) <= IDLE_TTL_S and 0 < redis.ttl(meta_key("other")) <= IDLE_TTL_S


def test_a_room_s_records_of_one_batch_are_published_together_in_order(store, redis):
    """One PUBLISH per room per batch: its one payload, or a JSON array of its payloads."""
    redis.hset(STATE_KEY, mapping={"ready:1": 1, "indexed:1": 0})
    other = Message(room="other", user="bo", text="hi", ts=1_700_000_000_000, id="3")
    pubsub = redis.pubsub()
    pubsub.subscribe(ROOM, "other")
    for _ in range(2):
        pubsub.get_message(timeout=1)
    batch = [(0, message(5), True), (1, other, True), (0, message(6), True), (0, tombstone(7, 5), True)]
    assert store.apply(batch) == [WRITTEN] * 4
    got = {}
    while (published := pubsub.get_message(timeout=0.5)) is not None:
        got.setdefault(published["channel"].decode(), []).append(json.loads(published["data"]))
    assert [[event["id"] for event in events] for events in got[ROOM]] == [["5", "6", "7"]]
    assert [event["type"] for event in got[ROOM][0]] == ["message", "message", "delete"]
    assert got["other"] == [{"data": json.loads(other.to_json()), "type": "message", "id": "3"}]
    pubsub.close()


def test_a_warmed_store_applies_its_first_batch_in_one_call(store, redis):
    """What the bridge does before it reports ready: its first batch is no slower than the next."""
    redis.script_flush()
    store.warm()
    redis.config_resetstat()
    assert store.apply([(0, message(5), True)]) == [WRITTEN]
    calls = {name.removeprefix("cmdstat_"): stats["calls"] for name, stats in redis.info("commandstats").items()}
    assert calls["evalsha"] == 1 and "eval" not in calls and "script|load" not in calls


def test_a_burst_in_one_room_goes_out_in_arrays_of_at_most_64(redis):
    store = Store(redis, 1000, 1_000_000, 60, IDLE_TTL_S)
    redis.hset(STATE_KEY, mapping={"ready:0": 1, "indexed:0": 0})
    pubsub = redis.pubsub()
    pubsub.subscribe(ROOM)
    pubsub.get_message(timeout=1)
    assert store.apply([(0, message(offset), True) for offset in range(1, 151)]) == [WRITTEN] * 150
    sizes, ids = [], []
    while (published := pubsub.get_message(timeout=0.5)) is not None:
        events = json.loads(published["data"])
        sizes.append(len(events))
        ids += [int(event["id"]) for event in events]
    assert sizes == [64, 64, 22] and ids == list(range(1, 151))
    pubsub.close()
