"""Reactions: PUT and DELETE /api/rooms/<room>/messages/<id>/reactions/<emoji>.

One per person (the name, held as a post holds it) per emoji per message; each change is a
record in the room's log after the message (chat_common.messages.Reaction), from which the
bridge keeps the message's counts. Adding one already there, or taking back one already
gone, answers 204 and writes nothing.
"""

import logging
import time

from flask import Blueprint, Response, g, request

from chat_common.errors import ApiError
from chat_common.messages import REACTION_EMOJI, Reaction, clean_emoji
from ingest import metrics, validation
from ingest.rooms import require_member
from ingest.targets import address, admit, current, produce, reactions_of, target

log = logging.getLogger(__name__)

reactions_api = Blueprint("reactions", __name__)


@reactions_api.put("/api/rooms/<room>/messages/<id>/reactions/<emoji>")
def add_reaction(room: str, id: str, emoji: str) -> Response:
    return _react(room, id, emoji, on=True)


@reactions_api.delete("/api/rooms/<room>/messages/<id>/reactions/<emoji>")
def take_back_reaction(room: str, id: str, emoji: str) -> Response:
    return _react(room, id, emoji, on=False)


def _react(room: str, id: str, emoji: str, on: bool) -> Response:
    """204 once Kafka holds the reaction record (or nothing was to change). The name check and
    the budgets come before the message is read back from Kafka."""
    validation.check_room(room)
    offset = validation.clean_message_id(id)
    stored_emoji = clean_emoji(emoji)
    if stored_emoji is None:
        raise ApiError(422, "invalid_emoji", "A reaction is one of " + " ".join(REACTION_EMOJI) + ".")
    require_member(room)  # a private room: its members only (ingest/rooms.py)
    body = validation.parse_body(request)
    user = g.get("user") or validation.clean_user(body.get("user"))  # the sign-in proxy's name wins
    ingest = current()
    admit(ingest, room, ingest.budgets.reaction(user, address()), user)
    target(ingest, room, offset, "stored")
    if (user in reactions_of(ingest, room, str(offset)).get(stored_emoji, [])) == on:
        metrics.CHANGE_REPEATS.labels("reaction").inc()
        return Response(status=204)
    reaction = Reaction(room=room, target=str(offset), emoji=stored_emoji, user=user, on=on,
                        ts=int(time.time() * 1000))
    reaction_id = produce(ingest, room, reaction.kafka_value(), "stored")
    metrics.CHANGES.labels("reaction").inc()
    log.info("reaction produced", extra={"msg_id": str(offset), "reaction_id": str(reaction_id), "room": room})
    return Response(status=204)
