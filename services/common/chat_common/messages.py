"""The one definition of a chat message on every hop.

- Kafka: key = the room (UTF-8), value = ``Message.kafka_value()``; the record's offset
  becomes the message id, so the value never holds it. A message taken back is followed
  in the same log by a ``Tombstone`` record naming its id (``parse_record`` tells them apart).
- Redis: the room history holds ``Message.to_json()`` with score = id; live events go to
  the room's pub/sub channel in flask-sse's JSON format (``live_payload``).
- SSE: ``sse_frame`` writes an event; no input can add a field to it.
"""

import hashlib
import json
import re
import struct
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from disarm import skeleton_key

from chat_common.keys import channel as keys_channel
from chat_common.keys import room_key
from chat_common.keys import room_partition as room_partition  # where the services import it from
from chat_common.lua import lua_source

ROOM_PATTERN = re.compile(r"[a-z0-9_-]{1,64}\Z")


def is_valid_room(room: object) -> bool:
    return isinstance(room, str) and ROOM_PATTERN.match(room) is not None


MAX_USER_CHARS = 32

# Unicode's Default_Ignorable_Code_Point property (DerivedCoreProperties.txt, Unicode 15),
# less the format characters that isprintable() refuses already (bidi controls, zero-width
# spaces and joiners, tags): the Hangul fillers (U+3164 ...), letters that draw nothing, are
# refused; the invisible marks (variation selectors such as U+FE0F, which emoji need, and
# U+034F) are allowed, and names are compared without them (fold_name), so one appended to
# a held name is that name.
INVISIBLE_LETTERS = re.compile("[\u115f\u1160\u3164\uffa0]")
BLANK_SYMBOLS = frozenset("\u2800")  # BRAILLE PATTERN BLANK: a symbol that draws nothing


def _draws_something(char: str) -> bool:
    """Whether ``char`` shows on its own: not a space, not a mark (drawn on another
    character), not a blank symbol."""
    return not char.isspace() and unicodedata.category(char)[0] not in "MZ" and char not in BLANK_SYMBOLS


def normalize_user(value: object) -> str | None:
    """A user name as stored (trimmed), or None if it breaks the rules: 1 to 32 printable
    characters, none of them control, format (bidi overrides included), unpaired surrogate
    or invisible letters (U+3164), and at least one that draws something (not only spaces,
    marks or blanks such as U+2800)."""
    if not isinstance(value, str):
        return None
    user = value.strip()
    if not 1 <= len(user) <= MAX_USER_CHARS or not user.isprintable() or INVISIBLE_LETTERS.search(user):
        return None
    if not any(map(_draws_something, user)) or not fold_name(user):
        return None
    return user


# One encoder for every call: json.dumps with options builds an encoder per call (5 µs; 0.5 µs
# for this one's encode, measured on a short string).
_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))


def _dumps(obj: object) -> str:
    return _ENCODER.encode(obj)


def session_tag(session_id: str) -> str:
    """What a message record keeps of its sender's browser session, to know later who may
    delete it: a digest, never the session id itself."""
    return hashlib.sha256(session_id.encode()).hexdigest()[:32]


@dataclass(frozen=True)
class Message:
    room: str
    user: str
    text: str
    ts: int
    client_id: str | None = None
    id: str | None = None
    session: str | None = None  # session_tag of the sender's session; only in Kafka, never shown
    # a reply: the quoted message as it was when this one was posted, {"id", "user", "text"}
    reply_to: dict[str, str] | None = None

    def kafka_value(self) -> bytes:
        fields: dict[str, object] = {"room": self.room, "user": self.user, "text": self.text, "ts": self.ts,
                                     "client_id": self.client_id}
        if self.session is not None:
            fields["session"] = self.session
        if self.reply_to is not None:
            fields["reply_to"] = self.reply_to
        return _dumps(fields).encode()

    @classmethod
    def from_kafka(cls, value: bytes | str, offset: int) -> "Message":
        return cls._from_fields(json.loads(value), offset)

    @classmethod
    def _from_fields(cls, fields: dict[str, Any], offset: int) -> "Message":  # a parsed record
        return cls(
            room=fields["room"],
            user=fields["user"],
            text=fields["text"],
            ts=int(fields["ts"]),
            client_id=fields.get("client_id"),
            id=str(offset),
            session=fields.get("session"),
            reply_to=_reply_to(fields.get("reply_to")),
        )

    @classmethod
    def from_stored(cls, data: bytes | str) -> "Message":
        """The message from its ``to_json()`` form (Redis history, client_id records)."""
        fields = json.loads(data)
        return cls(**{name: fields.get(name) for name in ("room", "user", "text", "ts", "client_id", "id")},
                   reply_to=_reply_to(fields.get("reply_to")))

    def as_dict(self) -> dict[str, object]:
        fields: dict[str, object] = {
            "id": self.id,
            "room": self.room,
            "user": self.user,
            "text": self.text,
            "ts": self.ts,
            "client_id": self.client_id,
        }
        if self.reply_to is not None:
            fields["reply_to"] = self.reply_to
        return fields

    def to_json(self) -> str:
        """Deterministic: the same record always gives the same bytes (idempotent writes)."""
        return _dumps(self.as_dict())


@dataclass(frozen=True)
class Tombstone:
    """A message taken back: a record in the room's log (key = room, so after the message),
    whose own offset is its id. Readers get ``event: delete``, data {"id": <target>}."""

    room: str
    target: str  # the deleted message's id
    ts: int
    by: str | None = None  # who deleted it (the signed-in name, or the author's)
    id: str | None = None

    def kafka_value(self) -> bytes:
        return _dumps({"room": self.room, "delete": self.target, "ts": self.ts, "by": self.by}).encode()

    def event_data(self) -> str:
        return _dumps({"id": self.target})


REPLY_QUOTE_MAX_CHARS = 200  # a reply keeps the first line of the original, at most this long


def _reply_to(value: object) -> dict[str, str] | None:
    """A record's reply_to snapshot, or None (absent, or not the shape ingest writes)."""
    if not isinstance(value, dict):
        return None
    quote = {name: value.get(name) for name in ("id", "user", "text")}
    return {k: v for k, v in quote.items() if isinstance(v, str)} if isinstance(quote["id"], str) else None


def quote_of(message: Message, text: str | None = None) -> dict[str, str]:
    """The reply_to snapshot of ``message`` (its latest ``text`` if edited): the first line."""
    first_line = (message.text if text is None else text).split("\n", 1)[0]
    assert message.id is not None
    return {"id": message.id, "user": message.user, "text": first_line[:REPLY_QUOTE_MAX_CHARS]}


@dataclass(frozen=True)
class Edit:
    """A message's new text: a record in the room's log after the message, whose own offset is
    its id. Readers get ``event: edit``, data {"id": <target>, "text", "edited_ts"}."""

    room: str
    target: str  # the edited message's id
    text: str
    edited_ts: float  # seconds
    ts: int  # ms, as every record's
    by: str | None = None
    id: str | None = None

    def kafka_value(self) -> bytes:
        return _dumps({"room": self.room, "edit": self.target, "text": self.text, "edited_ts": self.edited_ts,
                       "ts": self.ts, "by": self.by}).encode()

    def event_data(self) -> str:
        return _dumps(self.state() | {"id": self.target})

    def state(self) -> dict[str, object]:
        """What a read folds into the message: {"text", "edited_ts"}."""
        return {"text": self.text, "edited_ts": self.edited_ts}

    def stored(self) -> str:
        """The message's latest text as the bridge keeps it (``edits_key``)."""
        return _dumps(self.state())


# The reactions a message may get: a closed set, so that no grapheme of hostile input is parsed,
# each reaction costs fixed bytes, and the page's picker shows exactly what is accepted.
REACTION_EMOJI = ("👍", "👎", "❤️", "😂", "🎉", "😮", "😢", "🙏", "✅", "👀", "🔥", "🚀")
REACTION_USERS_SHOWN = 20  # names listed per emoji in reads and events (the count is exact)
# The default of REACTIONS_PER_MESSAGE_MAX, the (user, emoji) reactions a message holds at most
# (ingest refuses one more with 409, the bridge's apply ignores it): each reaction is applied by
# decoding and encoding them all in Redis's one thread. Measured per apply on Redis 7 (fastest of
# 40, round trip taken off): 0.16-0.21 ms with 250 short names, 0.39-0.60 ms with 250 of the
# longest (32 four-byte characters); 500: 0.21-0.25 and 0.62-0.85 ms; 1,000: 0.29-0.32 and
# 1.25-1.33 ms; 10,000 short names 1.9-2.2 ms, 50,000 12-29 ms (medians twice that).
REACTIONS_PER_MESSAGE_MAX = 250


def clean_emoji(value: str) -> str | None:
    """The stored form of a reaction emoji, or None if it is not one of REACTION_EMOJI
    (a bare U+2764 is taken as the red heart, U+2764 U+FE0F)."""
    if value == "\u2764":
        return "\u2764\ufe0f"
    return value if value in REACTION_EMOJI else None


@dataclass(frozen=True)
class Reaction:
    """One person's reaction added (``on``) or taken back: a record in the room's log after the
    message. Readers get ``event: reaction``, data {"id": <target>, "reactions": {...}} with the
    message's full counts after it (the bridge computes them)."""

    room: str
    target: str
    emoji: str
    user: str
    on: bool
    ts: int
    id: str | None = None

    def kafka_value(self) -> bytes:
        return _dumps({"room": self.room, "react": self.target, "emoji": self.emoji, "user": self.user,
                       "on": self.on, "ts": self.ts}).encode()


def reactions_shown(stored: dict[str, list[str]]) -> dict[str, dict[str, object]]:
    """The reactions of a message as reads show them, from the bridge's {emoji: [users]}."""
    return {emoji: {"count": len(users), "users": users[:REACTION_USERS_SHOWN]}
            for emoji, users in stored.items() if users}


Record = Message | Tombstone | Edit | Reaction


def parse_record(value: bytes | str, offset: int) -> Record:
    """A record of the chat topic: a Message, Tombstone, Edit or Reaction. ValueError, KeyError
    or TypeError for anything else."""
    fields = json.loads(value)
    if "edit" in fields:
        return Edit(room=fields["room"], target=_target(fields["edit"]), text=_text(fields["text"]),
                    edited_ts=float(fields["edited_ts"]), ts=int(fields["ts"]), by=fields.get("by"), id=str(offset))
    if "react" in fields:
        emoji = clean_emoji(fields["emoji"])
        if emoji is None:
            raise ValueError("not a reaction emoji")
        return Reaction(room=fields["room"], target=_target(fields["react"]), emoji=emoji,
                        user=_text(fields["user"]), on=bool(fields["on"]), ts=int(fields["ts"]), id=str(offset))
    if "delete" not in fields:
        return Message._from_fields(fields, offset)  # parsed once
    target = fields["delete"]
    if not isinstance(target, str) or not target.isdigit():
        raise ValueError("a tombstone names a message id")
    return Tombstone(room=fields["room"], target=target, ts=int(fields["ts"]), by=fields.get("by"), id=str(offset))


def _target(value: object) -> str:
    if not isinstance(value, str) or not value.isdigit():
        raise ValueError("a record names a message id")
    return value


def _text(value: object) -> str:
    if not isinstance(value, str):
        raise TypeError("not a text")
    return value


def message_or_none(value: bytes | str, offset: int) -> Message | None:
    """The chat message of a record, or None for a tombstone, edit, reaction or anything else."""
    try:
        record = parse_record(value, offset)
    except (ValueError, KeyError, TypeError):
        return None
    return record if isinstance(record, Message) else None


def live_payload(data_json: str, event: str = "message", id: str | None = None) -> str:
    """A Redis pub/sub payload in flask-sse's format: {"data": ..., "type": ..., "id": ...}."""
    head = '{"data":' + data_json + ',"type":' + _dumps(event)
    return head + (',"id":' + _dumps(id) if id is not None else "") + "}"


# A live event: (event, data as text, id or None, the data's ts if it is an object with one)
LiveEvent = tuple[str | None, str, str | None, int | None]


def parse_live(payload: bytes | str) -> tuple[str | None, str, str | None]:
    """(event, data as text, id or None) of a flask-sse payload; ValueError if it is not one."""
    try:
        fields = json.loads(payload)
    except ValueError:
        raise ValueError("not a flask-sse message") from None
    return _live_event(fields)[:3]


def parse_live_events(payload: bytes | str) -> list[LiveEvent]:
    """The events of a pub/sub payload: a flask-sse payload, or a JSON array of them in order
    (what the bridge publishes for a room's records of one batch: one PUBLISH, not one per
    record). ValueError if it, or any event in it, is neither."""
    try:
        value = json.loads(payload)
    except ValueError:
        raise ValueError("not a flask-sse message") from None
    return [_live_event(fields) for fields in value] if isinstance(value, list) else [_live_event(value)]


def _live_event(fields: Any) -> LiveEvent:
    try:
        data = fields["data"]
    except (TypeError, KeyError, IndexError):
        raise ValueError("not a flask-sse message") from None
    ts = None
    if isinstance(data, dict):
        try:
            ts = int(data["ts"])
        except (ValueError, KeyError, TypeError):
            pass
    if not isinstance(data, str):
        data = _dumps(data)
    event = fields.get("type") or None
    id = fields.get("id")
    return event, data, (None if id is None else str(id)), ts


_FIELD_BREAKERS = re.compile(r"[\r\n\0]")


def _field(name: str, value: object) -> str:
    value = str(value)
    if _FIELD_BREAKERS.search(value):
        raise ValueError(f"SSE {name} may not contain CR, LF or NUL")
    return value


def sse_frame(data: str, event: str | None = None, id: object = None, retry: int | None = None) -> bytes:
    """One Server-Sent Event, as bytes. Every line of data gets its own ``data:`` prefix,
    and the single-line fields refuse line breaks, so no input can inject a field."""
    lines = []
    if event:
        lines.append("event: " + _field("event", event))
    if id is not None:
        lines.append("id: " + _field("id", id))
    if retry is not None:
        lines.append(f"retry: {int(retry):d}")
    lines.extend("data: " + line for line in data.replace("\r\n", "\n").replace("\r", "\n").split("\n"))
    return ("\n".join(lines) + "\n\n").encode()


def sse_comment(text: str) -> bytes:
    return (": " + _field("comment", text) + "\n\n").encode()


# Redis layout, shared by the bridge (writer) and the stream service (reader); the names come
# from chat_common/keys.py (these constants are the single-node ones: keys.state_key(p) and so
# on name them in either mode).
STATE_KEY = "chat:state"  # hash: partitions; per partition ready:<p> -> 1, floor:<p> and last:<p> -> offset,
# indexed:<p> -> the offset from which every record of the partition is in its room's offset index
ACTIVE_ROOMS_KEY = "chat:rooms:active"  # sorted set: member = room, score = its newest message's ts (bridge)
PRESENT_ROOMS_KEY = "chat:rooms:present"  # sorted set: member = room, score = presence expiry (stream)


def history_key(room: str) -> str:
    return room_key(room, "history")  # sorted set: score = id, member = Message.to_json()


def meta_key(room: str) -> str:
    return room_key(room, "meta")  # hash: last = newest id applied, floor = newest id trimmed


def presence_key(room: str) -> str:
    return room_key(room, "presence")  # sorted set: member = user + "\n" + connection, score = expiry


def fold_name(user: str) -> str:
    """Names that look alike fold to one: "Alice", "ALICE", "Ａｌｉｃｅ", and "Аlice" with a
    Cyrillic А: the Unicode confusable skeleton (UTS #39) of the name after NFKC and case
    folding (case first: the skeleton alone keeps "ALICE" apart from "Alice")."""
    return skeleton_key(unicodedata.normalize("NFKC", user).casefold())


def name_hold_key(room: str, user: str) -> str:
    # sorted set: member = session id + "\n" + connection, score = expiry (stream holds,
    # ingest checks); names that look alike share one key
    return room_key(room, "name:" + fold_name(user))


def typing_key(room: str, user: str) -> str:
    return room_key(room, "typing:" + fold_name(user))  # string with a short TTL: the last typing signal


def deleted_key(room: str) -> str:
    return room_key(room, "deleted")  # set: ids of the room's deleted messages (ingest at once, bridge from Kafka)


def edits_key(room: str) -> str:
    # hash: message id -> its latest {"text", "edited_ts"} (bridge, from the edit records); no TTL:
    # Kafka scrollback folds it into messages read from the log; trimmed with the offset index
    return room_key(room, "edits")


def reactions_key(room: str) -> str:
    # hash: message id -> {emoji: [users]} as JSON (bridge, from the reaction records); kept as edits
    return room_key(room, "reactions")


def changes_key(room: str) -> str:
    # sorted set: score = edit or reaction record id, member = its live payload; above the floor,
    # expiring with the window (a resume from before a change gets it once)
    return room_key(room, "changes")


def deletes_key(room: str) -> str:
    return room_key(room, "deletes")  # sorted set: score = tombstone id, member = deleted id; above the floor


def offsets_key(room: str) -> str:
    # string: the room's offset index, every id of the room in increasing order, OFFSET_BYTES each
    return room_key(room, "offsets")


OFFSET_BYTES = 8  # an offset in the index: unsigned, big-endian (Lua reads it with struct.unpack(">I8"))


def pack_offsets(offsets: Sequence[int]) -> bytes:
    """Index entries for ``offsets`` (increasing)."""
    return struct.pack(f">{len(offsets)}Q", *offsets)


def unpack_offsets(data: bytes) -> list[int]:
    return list(struct.unpack(f">{len(data) // OFFSET_BYTES}Q", data))


# Lua, put before the scripts that read an offset index: entries_below(key, value) is how many
# of the index's entries are below ``value`` (lua/offsets.lua).
OFFSETS_LUA = lua_source("chat_common/offsets.lua")


def client_id_key(room: str, client_id: str) -> str:
    return room_key(room, "cid:" + client_id)  # string: the id first stored for this client_id


def channel(room: str) -> str:
    # flask-sse's channel on one node (a flask_sse publisher with channel=<room> reaches the
    # room); a shard channel in cluster mode (keys.channel)
    return keys_channel(room)
