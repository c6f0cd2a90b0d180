"""ingest/lua/admit.lua on its own: replays, held names and budgets in one call."""

import json

import pytest

from chat_common.participants import lua_with_participants

ADMIT = lua_with_participants("ingest/admit.lua")
KEYS = ["cid", "history", "name", "meta", "created", "addresses", "ranking", "took-part"]
DAY_S = 86_400


@pytest.fixture
def admit(redis):
    script = redis.register_script(ADMIT)

    def call(client_id=False, name=False, session="", counters=(), now=1000.0, took_part=""):
        args = ["1" if client_id else "0", "1" if name else "0", repr(now), session, took_part, "room", DAY_S]
        for amount, limit, window in counters:
            args += [amount, limit, window]
        return script(keys=KEYS + [f"counter{i}" for i in range(len(counters))], args=args)
    return call


def test_a_retry_is_answered_with_the_message_in_the_window_by_the_id_its_key_holds(redis, admit):
    redis.set("cid", "42")
    redis.zadd("history", {'{"id":"41"}': 41, '{"id":"42"}': 42})
    assert admit(client_id=True, counters=[(1, 1, 10)]) == [1, b"42", b'{"id":"42"}']
    assert redis.get("counter0") is None  # a replay is never counted


def test_a_retry_whose_message_left_the_window_gets_its_id_alone(redis, admit):
    redis.set("cid", "42")
    assert admit(client_id=True) == [1, b"42", b""]


def test_an_old_cid_value_holding_the_message_is_answered_as_it_is(redis, admit):
    stored = json.dumps({"id": "42", "room": "r", "text": "hi"})
    redis.set("cid", stored)
    assert admit(client_id=True) == [1, b"42", stored.encode()]


def test_a_name_held_by_another_session_is_refused_and_not_counted(redis, admit):
    redis.zadd("name", {"their-session\nconn1": 2000})
    assert admit(name=True, session="mine", counters=[(1, 5, 10)]) == [2]
    assert admit(name=True, session="their-session", counters=[(1, 5, 10)]) == [0]
    assert admit(name=True, session="", now=2001.0) == [0]  # the hold expired
    assert redis.get("counter0") == b"1"


def test_every_budget_is_spent_and_the_first_over_its_limit_refuses(redis, admit):
    counters = [(1, 3, 10), (4000, 10_000, 10)]
    assert [admit(counters=counters)[0] for _ in range(2)] == [0, 0]
    assert admit(counters=counters) == [3, 2, 10]  # 12,000 bytes > 10,000: the second counter refuses
    assert redis.get("counter0") == b"3" and redis.get("counter1") == b"12000"  # refused ones count too
    assert admit(counters=counters)[:2] == [3, 1]  # 4 requests > 3
    assert 0 < redis.ttl("counter1") <= 10


def test_a_new_room_is_counted_once_while_the_room_has_no_state(redis, admit):
    counters = [("new", 2, 3600)]
    assert admit(counters=counters) == [0]
    assert 0 < redis.ttl("created") <= 3600
    assert admit(counters=counters) == [0]  # the room's next post, before the bridge wrote its meta hash
    assert redis.get("counter0") == b"1"
    redis.delete("created")
    redis.hset("meta", "last", "7")
    assert admit(counters=counters) == [0]
    assert redis.get("counter0") == b"1"


def test_a_refused_new_room_is_not_marked_created_so_its_retries_keep_counting(redis, admit):
    counters = [("new", 1, 3600)]
    redis.set("counter0", 1)  # the address created a room already
    assert admit(counters=counters) == [3, 1, 3600]
    assert redis.get("created") is None
    assert admit(counters=counters) == [3, 1, 3600]
    assert redis.get("counter0") == b"3"


def test_an_admitted_post_records_its_address_and_a_refused_or_replayed_one_does_not(redis, admit):
    redis.set("cid", "42")
    assert admit(client_id=True, took_part="a1")[0] == 1  # a retry: recorded the first time
    redis.zadd("name", {"their-session\nconn1": 2000})
    assert admit(name=True, session="mine", took_part="a1") == [2]
    assert admit(counters=[(5, 1, 10)], took_part="a1")[0] == 3
    assert redis.exists("addresses", "ranking", "took-part") == 0

    assert admit(took_part="a1", now=1000.5) == [0]
    assert admit(took_part="a2", now=1001.0) == [0]
    assert admit(took_part="a1", now=1002.0) == [0]  # again: still two addresses
    assert redis.zrange("addresses", 0, -1, withscores=True) == [(b"a2", 1001), (b"a1", 1002)]
    assert 0 < redis.ttl("addresses") <= DAY_S
    assert redis.zscore("ranking", "room") == 2 * 2**32 + 1002
    assert redis.zscore("took-part", "room") == 1002
