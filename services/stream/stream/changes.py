"""Edits, reactions and deleted quotes folded into the messages every read returns: the Redis
window and the Kafka log hold each message as it was posted; the bridge keeps each message's
latest text (``edits_key``) and reactions (``reactions_key``) and the deleted ids
(``deleted_key``), from the records that follow it in the log."""

import json
from collections.abc import Sequence

from redis import Redis

from chat_common.messages import deleted_key, edits_key, reactions_key, reactions_shown

Row = tuple[str, str]  # (message JSON, id)


def _dumps(fields: object) -> str:
    return json.dumps(fields, ensure_ascii=False, separators=(",", ":"))


def changed_keys(room: str) -> tuple[str, str]:
    """The keys whose existence says whether a room has any edit or reaction: a read asks
    (EXISTS) in the round trip it makes anyway, and folds only if so."""
    return edits_key(room), reactions_key(room)


def fold(redis: Redis, room: str, rows: Sequence[Row], changed: bool = True) -> list[Row]:
    """``rows`` with their latest text and ``edited_ts``, their ``reactions`` and, for a reply
    whose original was deleted since, ``reply_to`` {"id", "deleted": true}: one round trip;
    none for no rows, nor when the room has no edit or reaction (``changed`` false, as read
    with ``changed_keys``) and no row is a reply. A message nothing changed keeps its JSON as
    stored."""
    if not rows:
        return []
    parsed = {index: json.loads(data) for index, (data, _) in enumerate(rows) if '"reply_to":' in data}
    replies = {index: fields for index, fields in parsed.items() if isinstance(fields.get("reply_to"), dict)}
    if not changed and not replies:
        return list(rows)
    ids = [id for _, id in rows]
    reply_ids = [str(fields["reply_to"].get("id")) for fields in replies.values()]
    pipe = redis.pipeline(transaction=False)
    pipe.hmget(edits_key(room), ids)
    pipe.hmget(reactions_key(room), ids)
    if reply_ids:
        pipe.smismember(deleted_key(room), reply_ids)
    edits, reactions, *rest = pipe.execute()
    gone = dict(zip(replies, rest[0], strict=True)) if reply_ids else {}
    folded: list[Row] = []
    for index, (data, id) in enumerate(rows):
        edit, reacted, deleted = edits[index], reactions[index], gone.get(index, False)
        if edit is None and reacted is None and not deleted:
            folded.append((data, id))
            continue
        fields = replies.get(index) or json.loads(data)
        if edit is not None:
            fields.update(json.loads(edit))
        if reacted is not None:
            shown = reactions_shown(json.loads(reacted))
            if shown:
                fields["reactions"] = shown
        if deleted:
            fields["reply_to"] = {"id": fields["reply_to"]["id"], "deleted": True}
        folded.append((_dumps(fields), id))
    return folded
