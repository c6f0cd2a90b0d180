"""bridge/lua/apply.lua's edits and reactions, through batch.lua as the bridge's Store sends
them: folded into the room's edits and reactions hashes once, in the room's order, kept for a
resume in its changes, and published live."""

import json

import pytest

from bridge.store import DUPLICATE, REPLAYED, WRITTEN, Store
from chat_common.messages import (
    STATE_KEY,
    Edit,
    Message,
    Reaction,
    Tombstone,
    changes_key,
    edits_key,
    reactions_key,
)

ROOM = "lobby"
TS = 1_700_000_000_000


@pytest.fixture
def store(redis):
    redis.hset(STATE_KEY, mapping={"ready:0": 1, "indexed:0": 0})
    return Store(redis, 3, 1_000_000, 60, 3600)


def message(offset):
    return Message(room=ROOM, user="ann", text=f"m{offset}", ts=TS + offset, id=str(offset))


def edit(offset, target, text):
    return Edit(room=ROOM, target=str(target), text=text, edited_ts=1_700_000_000.5 + offset, ts=TS + offset,
                id=str(offset))


def react(offset, target, user, emoji="👍", on=True):
    return Reaction(room=ROOM, target=str(target), emoji=emoji, user=user, on=on, ts=TS + offset, id=str(offset))


def live(pubsub):
    events = []
    while (published := pubsub.get_message(timeout=0.2)) is not None:
        value = json.loads(published["data"])
        events += value if isinstance(value, list) else [value]
    return events


@pytest.fixture
def pubsub(redis):
    subscriber = redis.pubsub()
    subscriber.subscribe(ROOM)
    subscriber.get_message(timeout=1)
    yield subscriber
    subscriber.close()


def test_the_latest_edit_is_kept_once_and_published(store, redis, pubsub):
    store.apply([(0, message(5), True)])
    assert store.apply([(0, edit(6, 5, "first fix"), True), (0, edit(7, 5, "second fix"), True)]) == [WRITTEN, WRITTEN]
    assert json.loads(redis.hget(edits_key(ROOM), "5")) == {"text": "second fix", "edited_ts": 1_700_000_007.5}
    events = [e for e in live(pubsub) if e["type"] == "edit"]
    assert [(e["id"], e["data"]["text"]) for e in events] == [("6", "first fix"), ("7", "second fix")]
    assert [int(score) for _, score in redis.zrange(changes_key(ROOM), 0, -1, withscores=True)] == [6, 7]
    before = {key: redis.dump(key) for key in redis.keys("*")}
    assert store.apply([(0, edit(6, 5, "first fix"), True)]) == [REPLAYED]
    assert {key: redis.dump(key) for key in redis.keys("*")} == before


def test_an_edit_or_reaction_of_a_deleted_message_changes_nothing(store, redis):
    store.apply([(0, message(5), True), (0, edit(6, 5, "fixed"), True), (0, react(7, 5, "bob"), True),
                 (0, Tombstone(room=ROOM, target="5", ts=TS + 8, id="8"), True)])
    assert redis.hget(edits_key(ROOM), "5") is None and redis.hget(reactions_key(ROOM), "5") is None
    assert store.apply([(0, edit(9, 5, "again"), True), (0, react(10, 5, "cy"), True)]) == [DUPLICATE, DUPLICATE]
    assert redis.hget(edits_key(ROOM), "5") is None and redis.hget(reactions_key(ROOM), "5") is None


def test_reactions_count_each_person_once_and_publish_the_full_counts(store, redis, pubsub):
    store.apply([(0, message(5), True)])
    outcomes = store.apply([(0, react(6, 5, "bob"), True), (0, react(7, 5, "bob"), True),
                            (0, react(8, 5, "cy"), True), (0, react(9, 5, "cy", emoji="🎉"), True),
                            (0, react(10, 5, "bob", on=False), True), (0, react(11, 5, "bob", on=False), True)])
    assert outcomes == [WRITTEN, DUPLICATE, WRITTEN, WRITTEN, WRITTEN, DUPLICATE]
    assert json.loads(redis.hget(reactions_key(ROOM), "5")) == {"👍": ["cy"], "🎉": ["cy"]}
    events = [e for e in live(pubsub) if e["type"] == "reaction"]
    assert [e["id"] for e in events] == ["6", "8", "9", "10"]
    assert events[-1]["data"] == {"id": "5", "reactions": {"👍": {"count": 1, "users": ["cy"]},
                                                           "🎉": {"count": 1, "users": ["cy"]}}}
    store.apply([(0, react(12, 5, "cy", on=False), True), (0, react(13, 5, "cy", emoji="🎉", on=False), True)])
    assert redis.hget(reactions_key(ROOM), "5") is None
    assert live(pubsub)[-1]["data"] == {"id": "5", "reactions": {}}


def test_an_event_lists_twenty_names_and_the_exact_count(store, redis, pubsub):
    store.apply([(0, message(5), True)])
    store.apply([(0, react(6 + i, 5, f"user{i}"), True) for i in range(25)])
    last = live(pubsub)[-1]["data"]["reactions"]["👍"]
    assert last["count"] == 25 and last["users"] == [f"user{i}" for i in range(20)]


def test_changes_are_kept_above_the_floor_and_expire_with_the_window(store, redis):
    store.apply([(0, message(5), True), (0, edit(6, 5, "fixed"), True)])
    assert 0 < redis.ttl(changes_key(ROOM)) <= 3600
    assert redis.ttl(edits_key(ROOM)) == -1  # scrollback folds it into older pages: kept as the deleted set
    store.apply([(0, message(o), True) for o in range(7, 11)])  # the window holds 3: 5 and 7 left it
    assert redis.zcard(changes_key(ROOM)) == 0


def test_a_rebuild_of_old_records_folds_changes_without_a_window(store, redis, pubsub):
    store.apply([(0, message(5), False), (0, edit(6, 5, "fixed"), False), (0, react(7, 5, "bob"), False)],
                now_ms=TS + 10 * 3600 * 1000)
    assert json.loads(redis.hget(edits_key(ROOM), "5"))["text"] == "fixed"
    assert json.loads(redis.hget(reactions_key(ROOM), "5")) == {"👍": ["bob"]}
    assert live(pubsub) == []
