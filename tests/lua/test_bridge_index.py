"""bridge/lua/prepend.lua and trim.lua on their own: a room's offset index filled in from
older chunks of the log, and trimmed to what the log retains."""

from bridge.index import PREPEND_SCRIPT, TRIM_SCRIPT
from chat_common.messages import STATE_KEY, edits_key, offsets_key, pack_offsets, reactions_key, unpack_offsets

A, B = offsets_key("a"), offsets_key("b")


def test_a_chunk_of_older_offsets_goes_before_each_room_s_index(redis):
    prepend = redis.register_script(PREPEND_SCRIPT)
    redis.hset(STATE_KEY, "indexed:0", 100)
    redis.set(A, pack_offsets([100, 104]))
    assert prepend(keys=[STATE_KEY, A, B], args=[0, 100, 50, pack_offsets([51, 60]), pack_offsets([70])]) == 1
    assert unpack_offsets(redis.get(A)) == [51, 60, 100, 104]
    assert unpack_offsets(redis.get(B)) == [70]
    assert redis.hget(STATE_KEY, "indexed:0") == b"50"


def test_a_chunk_read_before_the_indexed_offset_moved_writes_nothing(redis):
    prepend = redis.register_script(PREPEND_SCRIPT)
    redis.hset(STATE_KEY, "indexed:0", 40)  # another bridge, or a rebuild, moved it meanwhile
    assert prepend(keys=[STATE_KEY, A], args=[0, 100, 50, pack_offsets([51])]) == 0
    assert not redis.exists(A) and redis.hget(STATE_KEY, "indexed:0") == b"40"


def test_offsets_at_or_above_the_index_s_first_are_kept_out(redis):
    prepend = redis.register_script(PREPEND_SCRIPT)
    redis.hset(STATE_KEY, "indexed:0", 100)
    redis.set(A, pack_offsets([60, 100]))
    prepend(keys=[STATE_KEY, A], args=[0, 100, 50, pack_offsets([55, 60, 70])])
    assert unpack_offsets(redis.get(A)) == [55, 60, 100]  # increasing, each once


def test_trimming_drops_what_retention_removed_but_keeps_the_newest_of_it_as_a_mark(redis):
    trim = redis.register_script(TRIM_SCRIPT)
    redis.set(A, pack_offsets([3, 8, 9, 20, 30]))
    assert trim(keys=[A], args=[15]) == 2
    assert unpack_offsets(redis.get(A)) == [9, 20, 30]
    assert trim(keys=[A], args=[15]) == 0  # again: nothing more
    assert trim(keys=[B], args=[15]) == 0 and not redis.exists(B)


def test_trimming_drops_the_edits_and_reactions_of_the_messages_retention_removed(redis):
    trim = redis.register_script(TRIM_SCRIPT)
    edits, reactions = edits_key("a"), reactions_key("a")
    redis.set(A, pack_offsets([3, 8, 20]))
    redis.hset(edits, mapping={"3": "old", "8": "old", "20": "kept"})
    redis.hset(reactions, mapping={str(i): "{}" for i in range(2500)})  # more than one HDEL takes
    assert trim(keys=[A, edits, reactions], args=[15]) == 1
    assert redis.hkeys(edits) == [b"20"]
    assert sorted(int(id) for id in redis.hkeys(reactions)) == list(range(15, 2500))
