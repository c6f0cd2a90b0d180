"""What a reader must not see of the messages read from the log, dropped at every page (never
cached): messages taken back (the log still holds them; their tombstones follow) and retried
copies (a client_id whose first message has another id)."""

import json
from collections.abc import Sequence

from redis import Redis

from chat_common.messages import Message, client_id_key, deleted_key

Shown = list[tuple[str, int]]  # (message json, id), in the order given


def first_id(stored: bytes | str) -> str | None:
    """The id of the message first stored with a client_id, from its
    ``chat:room:<room>:cid:<client_id>`` value: the decimal id, or, written before the key held
    the id alone, the whole message's JSON (its "id")."""
    text = stored.decode() if isinstance(stored, bytes) else stored
    if text.isascii() and text.isdigit():
        return text
    try:
        fields = json.loads(text)
    except ValueError:
        return None
    first = fields.get("id") if isinstance(fields, dict) else None
    return str(first) if first is not None else None


class ShownFilter:
    def __init__(self, redis: Redis) -> None:
        self.redis = redis

    def shown(self, room: str, messages: Sequence[Message]) -> Shown:
        """Drop the deleted messages (one round trip, where the index lookup did not drop them
        already: a scan) and the retried copies."""
        if messages:
            gone = self.redis.smismember(deleted_key(room), [_id(m) for m in messages])
            messages = [m for m, deleted in zip(messages, gone, strict=True) if not deleted]
        return self.firsts(room, messages)

    def firsts(self, room: str, messages: Sequence[Message]) -> Shown:
        """Drop retried copies (a client_id whose first message has another id): a round trip
        only if some message has a client_id."""
        with_cid = [(m, m.client_id) for m in messages if m.client_id]
        if with_cid:
            firsts = self.redis.mget([client_id_key(room, cid) for _, cid in with_cid])
            duplicate = {
                message.id for (message, _), first in zip(with_cid, firsts, strict=True)
                if first is not None and first_id(first) not in (None, message.id)
            }
            messages = [m for m in messages if m.id not in duplicate]
        return [(m.to_json(), int(_id(m))) for m in messages]


def _id(message: Message) -> str:
    assert message.id is not None  # read from the log: its offset
    return message.id
