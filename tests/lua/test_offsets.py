"""chat_common/lua/offsets.lua on its own: entries_below over a real index."""

from chat_common.lua import lua_source
from chat_common.messages import pack_offsets

PROBE = lua_source("chat_common/offsets.lua") + "\nreturn entries_below(KEYS[1], tonumber(ARGV[1]))"


def test_entries_below_counts_the_index_entries_under_a_value(redis):
    offsets = [3, 8, 9, 200, 70_000, 2**40]
    redis.set("index", pack_offsets(offsets))
    probe = redis.register_script(PROBE)
    for value in (0, 3, 4, 9, 10, 200, 201, 70_001, 2**40, 2**40 + 1):
        assert probe(keys=["index"], args=[value]) == sum(1 for o in offsets if o < value), value


def test_an_empty_or_missing_index_has_no_entries(redis):
    probe = redis.register_script(PROBE)
    assert probe(keys=["missing"], args=[100]) == 0
    redis.set("empty", b"")
    assert probe(keys=["empty"], args=[100]) == 0
