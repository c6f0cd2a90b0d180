"""The addresses that took part in a room, as the stream records them (stream/lua/took_part.lua)
and the directory counts them (stream/lua/directory.lua), on their own."""

import pytest

from chat_common.participants import ROOMS_BY_ADDRESSES_KEY as RANKING
from chat_common.participants import ROOMS_TOOK_PART_KEY as TOOK_PART
from chat_common.participants import WINDOW_S, addresses_key, keys_of, lua_with_participants

NOW = 1_800_000_000


@pytest.fixture
def took_part(redis):
    script = redis.register_script(lua_with_participants("stream/took_part.lua"))
    return lambda room, tag, now=NOW: script(keys=keys_of(room), args=[room, tag, now, WINDOW_S])


@pytest.fixture
def count(redis):
    script = redis.register_script(lua_with_participants("stream/directory.lua"))

    def call(rooms, now=NOW, idle_dropped=1000):
        return script(keys=[RANKING, TOOK_PART, *map(addresses_key, rooms)], args=[now, WINDOW_S, idle_dropped, *rooms])
    return call


def test_a_stream_records_nothing_in_a_room_nobody_posted_in(redis, took_part):
    assert took_part("made-up", "a1") == -1
    assert redis.keys("*") == []


def test_a_stream_counts_its_address_once_however_often_it_connects(redis, took_part):
    redis.zadd(addresses_key("r"), {"poster": NOW - 10})  # someone posted
    assert took_part("r", "a1") == 2
    assert took_part("r", "a1", NOW + 5) == 2  # many streams, any names: one address
    assert redis.zscore(RANKING, "r") == 2 * 2**32 + NOW + 5
    assert redis.zscore(TOOK_PART, "r") == NOW + 5
    assert 0 < redis.ttl(addresses_key("r")) <= WINDOW_S


def test_two_addresses_rank_above_one_address_whatever_its_time(redis, took_part):
    for room, tags in (("pair", ["a1", "a2"]), ("flood", ["m"])):
        redis.zadd(addresses_key(room), {tags[0]: NOW - 100})
        for tag in tags:
            took_part(room, tag, NOW - 100 if room == "pair" else NOW)
    assert redis.zrevrange(RANKING, 0, -1) == [b"pair", b"flood"]


def test_the_count_drops_addresses_older_than_a_day_and_then_the_room(redis, took_part, count):
    redis.zadd(addresses_key("r"), {"old": NOW - WINDOW_S - 1})
    took_part("r", "new")
    redis.zadd(addresses_key("gone"), {"old": NOW - WINDOW_S - 1})
    took_part("gone", "old", NOW - WINDOW_S - 1)
    assert count(["r", "gone", "never-seen"]) == [1, 0, 0]
    assert redis.zrange(addresses_key("r"), 0, -1) == [b"new"]
    assert redis.zscore(RANKING, "r") == 2**32 + NOW
    assert redis.zrange(RANKING, 0, -1) == [b"r"] and redis.zrange(TOOK_PART, 0, -1) == [b"r"]
    assert not redis.exists(addresses_key("never-seen"))  # counting writes nothing for a room without addresses


def test_rooms_idle_for_a_day_leave_the_ranking_without_being_read(redis, count):
    for n in range(5):  # as they were left: their addresses keys have expired
        redis.zadd(RANKING, {f"idle{n}": 2**32 + NOW - WINDOW_S - 10})
        redis.zadd(TOOK_PART, {f"idle{n}": NOW - WINDOW_S - 10})
    redis.zadd(RANKING, {"live": 2**32 + NOW})
    redis.zadd(TOOK_PART, {"live": NOW})
    assert count([], idle_dropped=3) == []
    assert redis.zcard(TOOK_PART) == 3  # at most that many per read
    count([])
    assert redis.zrange(RANKING, 0, -1) == [b"live"] and redis.zrange(TOOK_PART, 0, -1) == [b"live"]
