"""chat_common/lua/private.lua on its own: records applied once, never older over newer."""

from chat_common.private import STATE_KEY, Access, Membership, PrivateRooms, RoomRecord, invite_hash

ROOM = "_abc"


def test_an_older_record_never_undoes_a_newer_one(redis):
    rooms = PrivateRooms(redis)
    redis.hset(STATE_KEY, "ready", "1")
    assert rooms.apply(RoomRecord(ROOM, "s:owner", invite_hash("new")), 9)
    assert not rooms.apply(RoomRecord(ROOM, "s:owner", invite_hash("old")), 3)  # replayed after a rotation
    assert rooms.invite_matches(ROOM, "new") and not rooms.invite_matches(ROOM, "old")

    assert rooms.apply(Membership(ROOM, "s:bob", joined=False), 12)  # removed (ingest wrote it first)
    assert not rooms.apply(Membership(ROOM, "s:bob", joined=True), 10)  # the bridge replays the join
    assert rooms.access(ROOM, "s:bob") is Access.NONE
    assert rooms.apply(Membership(ROOM, "s:bob", joined=True), 15)  # invited again
    assert rooms.access(ROOM, "s:bob") is Access.MEMBER
    assert not rooms.apply(Membership(ROOM, "s:bob", joined=True), 15)  # the same record again
    assert rooms.access(ROOM, "s:owner") is Access.OWNER
    assert rooms.members(ROOM) == ["s:bob"]


def test_nothing_is_readable_until_the_whole_state_is_there(redis):
    rooms = PrivateRooms(redis)
    rooms.apply(RoomRecord(ROOM, "s:owner", invite_hash("t")), 1)
    assert rooms.access(ROOM, "s:owner") is Access.NOT_READY  # no "ready": Redis was emptied, or is refilling
    redis.hset(STATE_KEY, "ready", "1")
    assert rooms.access(ROOM, "s:owner") is Access.OWNER
    assert rooms.access("_missing", "s:owner") is rooms.access(ROOM, "s:else") is Access.NONE
    assert rooms.access(ROOM, None) is Access.NONE
