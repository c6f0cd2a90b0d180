"""stream/lua/connections.lua: one address's open streams, capped across every stream pod."""

from chat_common.lua import lua_source

KEY = "chat:streams:open:2001:db8::1"


def take(redis, now, token, cap=2, ttl_s=45):
    script = redis.register_script(lua_source("stream/connections.lua"))
    return script(keys=[KEY], args=[now, now + ttl_s, token, cap, ttl_s * 2])


def test_an_address_holds_at_most_the_cap(redis):
    assert take(redis, 1000, "a") == 1
    assert take(redis, 1000, "b") == 1
    assert take(redis, 1000, "c") == 0
    assert sorted(redis.zrange(KEY, 0, -1)) == [b"a", b"b"]
    assert 0 < redis.ttl(KEY) <= 90


def test_places_of_a_crashed_worker_expire(redis):
    assert take(redis, 1000, "a", ttl_s=5) == 1
    assert take(redis, 1000, "b", ttl_s=5) == 1
    assert take(redis, 1006, "c") == 1  # both expired: their worker stopped refreshing them
    assert redis.zrange(KEY, 0, -1) == [b"c"]
