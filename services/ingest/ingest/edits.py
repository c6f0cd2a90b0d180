"""Editing a message: PATCH /api/rooms/<room>/messages/<id>.

An edit is a record in the room's log after the message (chat_common.messages.Edit); the
bridge folds it into every read. Who may edit: exactly who may delete.
"""

import json
import logging
import time

from flask import Blueprint, Response, g, request

from chat_common.errors import ApiError
from chat_common.messages import Edit
from chat_common.sessions import session_id
from ingest import metrics, validation
from ingest.deletes import may_delete
from ingest.rooms import require_member
from ingest.targets import address, admit, current, latest, produce, target

log = logging.getLogger(__name__)

edits_api = Blueprint("edits", __name__)


@edits_api.patch("/api/rooms/<room>/messages/<id>")
def edit_message(room: str, id: str) -> Response:
    """A message's new text: 200 once Kafka holds the edit record. The same text again
    answers 200 and writes nothing. The address's budgets are spent before the message is
    read back from Kafka (refused edits cost them too), the author's once allowed."""
    ingest = current()
    validation.check_room(room)
    offset = validation.clean_message_id(id)
    require_member(room)  # a private room: its members only (ingest/rooms.py)
    body_bytes = len(request.get_data())
    body = validation.parse_body(request)
    text = validation.clean_text(body.get("text"))
    admit(ingest, room, ingest.budgets.edit(address(), body_bytes))
    message = target(ingest, room, offset, "edited")
    if not may_delete(message, g.get("user"), session_id(), ingest.config.moderators):
        raise ApiError(403, "forbidden", "Only the person who sent a message can edit it.")
    text_now, edited_ts = latest(ingest, room, message)
    if text_now == text:
        metrics.CHANGE_REPEATS.labels("edit").inc()
        return _edited(str(offset), text, edited_ts)
    admit(ingest, room, ingest.budgets.edit_by(message.user, address(), body_bytes))
    edit = Edit(room=room, target=str(offset), text=text, edited_ts=round(time.time(), 3), ts=int(time.time() * 1000),
                by=g.get("user") or message.user)
    edit_id = produce(ingest, room, edit.kafka_value(), "edited")
    metrics.CHANGES.labels("edit").inc()
    log.info("edit produced", extra={"msg_id": str(offset), "edit_id": str(edit_id), "room": room})
    return _edited(str(offset), text, edit.edited_ts)


def _edited(id: str, text: str, edited_ts: float | None) -> Response:
    fields: dict[str, object] = {"id": id, "text": text}
    if edited_ts is not None:
        fields["edited_ts"] = edited_ts
    return Response(json.dumps(fields, ensure_ascii=False), status=200, content_type="application/json")
