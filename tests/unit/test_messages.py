"""The message schema: one definition of the Kafka value, the Redis records and SSE frames."""

import json

import pytest
from flask_sse import Message as FlaskSseMessage
from kafka.partitioner.default import DefaultPartitioner

from chat_common.messages import (
    REACTION_EMOJI,
    Edit,
    Message,
    Reaction,
    clean_emoji,
    is_valid_room,
    live_payload,
    message_or_none,
    normalize_user,
    parse_live,
    parse_live_events,
    parse_record,
    quote_of,
    room_partition,
    sse_frame,
)


def test_the_kafka_value_leaves_out_the_id_and_the_offset_becomes_it():
    message = Message(room="lobby", user="ann", text="hi", ts=1700000000000, client_id="c1")
    back = Message.from_kafka(message.kafka_value(), 42)
    assert back.id == "42"
    assert back.as_dict() == {"id": "42", "room": "lobby", "user": "ann", "text": "hi", "ts": 1700000000000,
                              "client_id": "c1"}


def test_the_stored_json_is_byte_for_byte_stable_so_replays_are_idempotent():
    message = Message(room="r", user="zoë", text="a\nb", ts=1, client_id=None, id="7")
    assert message.to_json() == Message.from_stored(message.to_json()).to_json()
    assert message.to_json() == '{"id":"7","room":"r","user":"zoë","text":"a\\nb","ts":1,"client_id":null}'


def test_a_live_payload_is_flask_sse_json_and_parses_back():
    data = Message(room="r", user="u", text="t", ts=5, id="9").to_json()
    payload = live_payload(data, "message", "9")
    assert json.loads(payload) == {"data": json.loads(data), "type": "message", "id": "9"}
    assert parse_live(payload) == ("message", data, "9")


def test_a_stock_flask_sse_publisher_is_understood():
    """What flask_sse's sse.publish puts on the channel (its Message.to_dict as JSON)."""
    payload = json.dumps(FlaskSseMessage({"hello": "world"}, type="greeting").to_dict())
    assert parse_live(payload) == ("greeting", '{"hello":"world"}', None)
    assert parse_live(json.dumps(FlaskSseMessage("plain text").to_dict())) == (None, "plain text", None)


@pytest.mark.parametrize("payload", ["not json", "[]", '{"no": "data"}'])
def test_anything_else_on_the_channel_is_refused(payload):
    with pytest.raises(ValueError):
        parse_live(payload)


def test_a_room_s_events_published_together_parse_back_in_order():
    data = [Message(room="r", user="u", text="t", ts=5 + id, id=str(id)).to_json() for id in (9, 10)]
    together = "[" + live_payload(data[0], "message", "9") + "," + live_payload(data[1], "message", "10") + "]"
    assert parse_live_events(together) == [("message", data[0], "9", 14), ("message", data[1], "10", 15)]
    assert parse_live_events(live_payload('{"id":"3"}', "delete", "11")) == [("delete", '{"id":"3"}', "11", None)]
    with pytest.raises(ValueError):
        parse_live_events('[{"data": 1}, {"no": "data"}]')


def test_an_sse_frame_prefixes_every_line_of_data():
    frame = sse_frame("line one\nline two\r\nthree", event="message", id="3")
    assert frame == b"event: message\nid: 3\ndata: line one\ndata: line two\ndata: three\n\n"


@pytest.mark.parametrize("field", ["event", "id"])
@pytest.mark.parametrize("evil", ["x\nevent: admin", "x\rdata: y", "x\0"])
def test_no_input_can_inject_an_sse_field(field, evil):
    with pytest.raises(ValueError):
        sse_frame("data", **{field: evil})


def test_a_zero_id_is_sent_not_dropped():
    assert b"id: 0\n" in sse_frame("{}", event="message", id="0")


def test_room_partition_matches_the_producers_default_partitioner():
    partitions = list(range(6))
    for room in ["lobby", "a", "room-42", "x" * 64]:
        expected = DefaultPartitioner().partition("t", room, room.encode(), None, None, _Cluster(partitions))
        assert room_partition(room, 6) == expected


class _Cluster:
    def __init__(self, partitions):
        self.partitions = partitions

    def topics(self):
        return {"t"}

    def partitions_for_topic(self, topic):
        return set(self.partitions)

    def available_partitions_for_topic(self, topic):
        return set(self.partitions)


@pytest.mark.parametrize("room,ok", [("lobby", True), ("a-b_c9", True), ("x" * 64, True), ("", False),
                                     ("x" * 65, False), ("Lobby", False), ("a b", False), ("a/b", False),
                                     ("é", False), ("lobby\n", False)])
def test_room_names(room, ok):
    assert is_valid_room(room) is ok


@pytest.mark.parametrize("raw,user", [
    ("ann", "ann"), ("  ann  ", "ann"), ("Zoë Ünal", "Zoë Ünal"), ("x" * 32, "x" * 32), ("ann ❤️", "ann ❤️"),
    ("", None), ("   ", None), ("x" * 33, None), ("a\nb", None), ("a\tb", None),
    ("a\u202eb", None), ("a\u200bb", None), ("\ud800", None), (7, None), (None, None),
    # drawn as nothing: a Hangul filler, a blank braille pattern, marks alone, an ideographic space
    ("\u3164", None), ("a\u3164b", None), ("\u2800", None), ("\u0301\u0301", None), ("\u3000", None),
])
def test_user_names(raw, user):
    assert normalize_user(raw) == user


def test_a_tombstone_is_a_record_of_its_own_and_tells_readers_only_the_deleted_id():
    from chat_common.messages import Tombstone, message_or_none, parse_record

    tombstone = Tombstone(room="lobby", target="41", ts=1700000000001, by="ann")
    back = parse_record(tombstone.kafka_value(), 57)
    assert back == Tombstone(room="lobby", target="41", ts=1700000000001, by="ann", id="57")
    assert json.loads(back.event_data()) == {"id": "41"}
    assert message_or_none(tombstone.kafka_value(), 57) is None  # scrollback skips it
    with pytest.raises(ValueError):
        parse_record(b'{"room": "lobby", "delete": "4\\n1", "ts": 1}', 58)


def test_the_senders_session_stays_in_kafka_as_a_digest_and_is_never_shown():
    from chat_common.messages import parse_record, session_tag

    message = Message(room="r", user="ann", text="hi", ts=1, session=session_tag("the-session-id"))
    assert b"the-session-id" not in message.kafka_value()
    back = parse_record(message.kafka_value(), 3)
    assert back.session == session_tag("the-session-id")
    assert "session" not in back.as_dict() and "session" not in back.to_json()


@pytest.mark.parametrize("name,look_alike", [
    ("Tom", "T\u043em"),  # a Cyrillic о
    ("Tom", "Tom\u034f"), ("Tom", "Tom\ufe0f"),  # an invisible mark appended
    ("Alice", "ALICE"), ("Alice", "Ａｌｉｃｅ"), ("paypal", "\u0440\u0430ypal"),
])
def test_look_alike_names_fold_to_one(name, look_alike):
    from chat_common.messages import fold_name

    assert fold_name(look_alike) == fold_name(name)


@pytest.mark.parametrize("name,other", [("Tom", "Tim"), ("ann", "anne"), ("bob", "b o b")])
def test_different_names_stay_apart(name, other):
    from chat_common.messages import fold_name

    assert fold_name(other) != fold_name(name)


def test_edits_and_reactions_are_records_of_their_own_and_no_message():
    edit = Edit(room="r", target="5", text="fixed", edited_ts=1.5, ts=2, by="ann")
    assert parse_record(edit.kafka_value(), 9) == Edit(room="r", target="5", text="fixed", edited_ts=1.5, ts=2,
                                                        by="ann", id="9")
    assert json.loads(edit.event_data()) == {"id": "5", "text": "fixed", "edited_ts": 1.5}
    reaction = Reaction(room="r", target="5", emoji="\u2764\ufe0f", user="bob", on=False, ts=3)
    assert parse_record(reaction.kafka_value(), 10) == Reaction(room="r", target="5", emoji="\u2764\ufe0f",
                                                                user="bob", on=False, ts=3, id="10")
    assert message_or_none(edit.kafka_value(), 9) is None and message_or_none(reaction.kafka_value(), 10) is None
    for hostile in ({"room": "r", "edit": "x5", "text": "t", "edited_ts": 1, "ts": 1},
                    {"room": "r", "react": "5", "emoji": "💩", "user": "u", "on": True, "ts": 1},
                    {"room": "r", "react": "5", "emoji": "👍", "user": 7, "on": True, "ts": 1}):
        with pytest.raises((ValueError, KeyError, TypeError)):
            parse_record(json.dumps(hostile), 1)


def test_reaction_emoji_are_a_closed_set_with_the_bare_heart_taken_as_the_red_one():
    assert len(REACTION_EMOJI) == 12 and all(clean_emoji(e) == e for e in REACTION_EMOJI)
    assert clean_emoji("\u2764") == "\u2764\ufe0f"
    assert [clean_emoji(e) for e in ("👍🏽", "👍👍", "", "a", "\u2764\ufe0f\ufe0f")] == [None] * 5


def test_a_reply_keeps_the_first_line_of_its_original_and_survives_the_log():
    original = Message(room="r", user="ann", text="one\ntwo", ts=1, id="4")
    assert quote_of(original) == {"id": "4", "user": "ann", "text": "one"}
    assert quote_of(original, "x" * 300 + "\nmore")["text"] == "x" * 200
    reply = Message(room="r", user="bob", text="yes", ts=2, reply_to=quote_of(original))
    assert Message.from_kafka(reply.kafka_value(), 6).reply_to == {"id": "4", "user": "ann", "text": "one"}
    assert json.loads(Message.from_kafka(reply.kafka_value(), 6).to_json())["reply_to"]["id"] == "4"
    assert "reply_to" not in Message(room="r", user="bob", text="no", ts=2).to_json()
