"""stream/lua/hold.lua: a name held by one browser session is not taken by another."""

from chat_common.lua import lua_source

KEY = "chat:room:r:hold:ann"


def hold(redis, now, session, connection, ttl_s=45):
    script = redis.register_script(lua_source("stream/hold.lua"))
    return script(keys=[KEY], args=[now, now + ttl_s, session, f"{session}\n{connection}", ttl_s * 2])


def test_a_name_is_held_by_its_first_session_and_shared_by_its_connections(redis):
    assert hold(redis, 1000, "s1", "c1") == 1
    assert hold(redis, 1000, "s1", "c2") == 1  # a second tab of the same session
    assert hold(redis, 1000, "s2", "c3") == 0
    assert redis.zrange(KEY, 0, -1) == [b"s1\nc1", b"s1\nc2"]
    assert 0 < redis.ttl(KEY) <= 90


def test_an_expired_hold_frees_the_name(redis):
    assert hold(redis, 1000, "s1", "c1", ttl_s=5) == 1
    assert hold(redis, 1006, "s2", "c2") == 1
    assert redis.zrange(KEY, 0, -1) == [b"s2\nc2"]
