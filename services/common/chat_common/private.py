"""Private rooms: their records in Kafka, their state in Redis, and who may use them.

A private room's name is generated (``new_room_name``) and starts with ``PREFIX``, which
ingest refuses for any room that is not one: a name says on its own whether its room is
private, so no state lost or late can ever make a private room public. Such a room is
readable only by its members; for anyone else, and for a name no room has, every path
answers the same ``404 room_not_found``.

Kafka: the compacted topic ``KAFKA_ROOMS_TOPIC`` (one partition: one order for all).
- key ``<room>``: the room, ``{"room", "owner", "invite", "ts"}``; ``invite`` is the
  SHA-256 of the invite token (the token itself is never stored). Rotation writes it again.
- key ``<room>/<member>``: a membership, ``{"room", "member", "ts"}``; a record with no value
  (a Kafka tombstone) removes the member, and compaction then drops both.
A member is ``u:<name>`` (signed in behind the sign-in proxy: follows the person) or
``s:<digest of the browser session>`` (the session itself is never stored).

Redis (rebuilt from the topic by the bridge, ``bridge/rooms.py``):
- ``chat:private:<room>`` hash: ``owner``, ``invite`` (hash), ``offset`` (its record's).
- ``chat:private:<room>:members`` hash: member -> ``<offset>``, or ``x<offset>`` once removed.
- ``chat:private:state`` hash: ``ready`` (the topic was read to its end into this Redis),
  ``epoch`` (the bridge's current read of it).
Until ``ready`` is there (Redis came back empty, the bridge is re-reading), every private
room answers 503: access is decided only from a whole state (fail closed).
"""

import enum
import hashlib
import hmac
import json
import secrets
import time
from dataclasses import dataclass

from redis import Redis

from chat_common import keys
from chat_common.lua import lua_source
from chat_common.messages import channel, live_payload, session_tag

PREFIX = "_"  # only generated private rooms have it (ingest refuses it for other names)
NAME_BYTES = 16  # 128 random bits: a name cannot be guessed
INVITE_BYTES = 24  # 192 random bits per invite token
STATE_KEY = "chat:private:state"
APPLY = lua_source("chat_common/private.lua")
# On a room's live channel, for the stream workers only (never written to a reader): a member
# was removed. Published once the removal is stored, it is ahead of every message published
# after that, so the workers end the member's streams before any of those reaches them.
REMOVED_EVENT = "member_removed"


def is_private(room: str) -> bool:
    return room.startswith(PREFIX)


def new_room_name() -> str:
    return PREFIX + secrets.token_hex(NAME_BYTES)  # 33 characters of a-z 0-9 after the prefix


def new_invite() -> str:
    return secrets.token_urlsafe(INVITE_BYTES)


def invite_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def invite_url(room: str, token: str) -> str:
    return f"/r/{room}?invite={token}"


def member_id(signed_in: str | None, session: str | None) -> str | None:
    """Who is asking, as a member: the signed-in name, else a digest of the browser
    session; None with neither."""
    if signed_in:
        return "u:" + signed_in
    return "s:" + session_tag(session) if session else None


def room_key(room: str) -> str:
    return keys.private_room_key(room)


def members_key(room: str) -> str:
    return keys.private_members_key(room)


# -- records ------------------------------------------------------------------------------


@dataclass(frozen=True)
class RoomRecord:
    room: str
    owner: str
    invite: str  # the token's hash

    def key(self) -> bytes:
        return self.room.encode()

    def value(self) -> bytes:
        return json.dumps({"room": self.room, "owner": self.owner, "invite": self.invite,
                           "ts": int(time.time() * 1000)}, separators=(",", ":")).encode()


@dataclass(frozen=True)
class Membership:
    room: str
    member: str
    joined: bool  # False: removed

    def key(self) -> bytes:
        return f"{self.room}/{self.member}".encode()

    def value(self) -> bytes | None:
        if not self.joined:
            return None
        return json.dumps({"room": self.room, "member": self.member, "ts": int(time.time() * 1000)},
                          separators=(",", ":")).encode()


def parse_record(key: bytes | None, value: bytes | None) -> RoomRecord | Membership:
    """A record of the rooms topic (ValueError if it is not one)."""
    if key is None:
        raise ValueError("a rooms record has a key")
    room, slash, member = key.decode().partition("/")
    if not is_private(room) or (slash and not member):
        raise ValueError("not a private room's key")
    if slash:
        return Membership(room, member, value is not None)
    if value is None:
        raise ValueError("a room record has a value")
    fields = json.loads(value)
    owner, invite = fields["owner"], fields["invite"]
    if not isinstance(owner, str) or not isinstance(invite, str) or fields["room"] != room:
        raise ValueError("not a room record")
    return RoomRecord(room, owner, invite)


# -- state in Redis -------------------------------------------------------------------------


class Access(enum.Enum):
    NOT_READY = "not_ready"  # Redis does not hold the whole state: refuse (503)
    NONE = "none"  # no such room, or not a member: 404, the same answer for both
    MEMBER = "member"
    OWNER = "owner"


def _text(value: bytes | str | None) -> str | None:
    return value.decode() if isinstance(value, bytes) else value


class PrivateRooms:
    """Private rooms' state in one Redis (either reply type: bytes or decoded)."""

    def __init__(self, redis: Redis) -> None:
        self.redis = redis
        self._apply = redis.register_script(APPLY)

    def apply(self, record: RoomRecord | Membership, offset: int) -> bool:
        """Write ``record`` (at ``offset`` in the topic) unless Redis holds it or a newer one."""
        if isinstance(record, RoomRecord):
            args: list[str | int] = ["room", offset, record.owner, record.invite]
        else:
            args = ["join" if record.joined else "leave", offset, record.member]
        return bool(self._apply(keys=[room_key(record.room), members_key(record.room)], args=args))

    def access(self, room: str, member: str | None) -> Access:
        """What ``member`` may do in the private room ``room``: one round trip, the same
        whether the room exists or not."""
        pipe = self.redis.pipeline(transaction=False)
        pipe.hget(STATE_KEY, "ready")
        pipe.hget(room_key(room), "owner")
        pipe.hget(members_key(room), member or "")
        ready, owner, entry = (_text(v) for v in pipe.execute())
        if not ready:
            return Access.NOT_READY
        if owner is None or member is None:
            return Access.NONE
        if hmac.compare_digest(owner, member):
            return Access.OWNER
        return Access.MEMBER if entry is not None and not entry.startswith("x") else Access.NONE

    def still_in(self, seats: list[tuple[str, str]]) -> list[bool]:
        """For each (room, member): whether they may still read the room (one round trip;
        all False while Redis does not hold the whole state)."""
        pipe = self.redis.pipeline(transaction=False)
        pipe.hget(STATE_KEY, "ready")
        for room, member in seats:
            pipe.hget(room_key(room), "owner")
            pipe.hget(members_key(room), member)
        ready, *answers = (_text(v) for v in pipe.execute())
        found = []
        for (_, member), owner, entry in zip(seats, answers[0::2], answers[1::2], strict=True):
            found.append(bool(ready) and owner is not None
                         and (owner == member or (entry is not None and not entry.startswith("x"))))
        return found

    def announce_removal(self, room: str, member: str) -> None:
        """Tell every stream worker with readers in ``room`` that ``member`` was removed."""
        data = json.dumps({"member": member}, separators=(",", ":"))
        keys.publish(self.redis, channel(room), live_payload(data, event=REMOVED_EVENT))

    def invite_matches(self, room: str, token: str) -> bool:
        stored = _text(self.redis.hget(room_key(room), "invite"))
        return stored is not None and hmac.compare_digest(stored, invite_hash(token))

    def owner(self, room: str) -> str | None:
        return _text(self.redis.hget(room_key(room), "owner"))

    def members(self, room: str) -> list[str]:
        """The room's members (its owner not included), in no order."""
        entries = self.redis.hgetall(members_key(room))
        return sorted(m for m, v in ((_text(k), _text(v)) for k, v in entries.items())
                      if m is not None and v is not None and not v.startswith("x"))
