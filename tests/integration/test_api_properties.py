"""Generated requests, hostile ones included: only 2xx or 4xx, and only 201s write.

FUZZ_EXAMPLES sets how many cases each property runs (a few hundred in `make test`,
10,000 in `make chaos`).
"""

import json
import os
from pathlib import Path
from urllib.parse import quote, urlencode

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from kafka import KafkaConsumer, TopicPartition
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from support import new_room

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "150"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))

schema = schemathesis.openapi.from_path(Path(__file__).parents[2] / "docs" / "openapi.yaml")


@pytest.fixture(scope="module")
def kafka_writes(stack):
    """How many records the topic holds in all (the sum of its partitions' end offsets)."""
    consumer = KafkaConsumer(bootstrap_servers=stack.settings.kafka_bootstrap)
    partitions = [TopicPartition("chat.messages", p) for p in consumer.partitions_for_topic("chat.messages")]
    yield lambda: sum(consumer.end_offsets(partitions).values())
    consumer.close()


# The event streams never end by themselves; their parameters are fuzzed below instead.
@schema.exclude(operation_id=["streamRoom", "streamChannel"]).parametrize()
@FUZZ
def test_the_api_keeps_to_its_description(case, stack):
    case.call_and_validate(
        base_url=stack.settings.gateway_url,
        checks=[not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance],
        timeout=30,
    )


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=8,
)
# Strings as JSON escapes, so lone surrogates, NULs, RTL overrides and line breaks get through.
hostile_text = st.text(alphabet=st.characters(codec=None, min_codepoint=0, max_codepoint=0x10FFFF), max_size=40)
# What draws nothing or reorders what follows: format characters, marks, spaces, private
# use, lone surrogates, bidi controls, fillers, mixed with ordinary letters.
BIDI_CONTROLS = "\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
invisible_text = st.text(
    alphabet=st.one_of(st.characters(codec=None, categories=["Cf", "Mn", "Me", "Mc", "Zs", "Co", "Cs"]),
                       st.sampled_from(BIDI_CONTROLS + "\u3164\u2800\u115f\uffa0\u034f\ufe0f"),
                       st.characters(categories=["Lu", "Ll"])),
    min_size=1, max_size=40,
)
# Digits that str.isdigit() accepts and int() does not (or reads otherwise), among ASCII ones.
digit_like = st.text(alphabet="0123456789\u00b2\u00b3\u00b9\u2460\u2469\u0663\u06f4\u07c1\U0001d7d8\uff11",
                     min_size=1, max_size=20)
fields = st.one_of(hostile_text, invisible_text, json_values)
bodies = st.one_of(
    st.fixed_dictionaries({"user": fields, "text": fields}, optional={"client_id": fields, "extra": json_values}),
    json_values,
)
content_types = st.sampled_from(["application/json", "application/json; charset=utf-8", "text/plain",
                                 "application/x-www-form-urlencoded", "", "application/json-patch+json"])


def encode(body):
    return json.dumps(body, ensure_ascii=True).encode()  # escapes, so any code point survives


def nested(depth, kind):
    """A JSON document ``depth`` levels deep, as bytes: deeper than the parser's recursion
    limit from about 1,000 (Python's json raises RecursionError)."""
    if kind == "list":
        return b"[" * depth + b"]" * depth
    if kind == "object":
        return b'{"a":' * depth + b"1" + b"}" * depth
    return b'{"user":"ann","text":' + b"[" * depth + b"]" * depth + b"}"


deep_bodies = st.builds(nested, st.integers(min_value=1, max_value=8_000), st.sampled_from(["list", "object", "text"]))


@FUZZ
@given(body=bodies, content_type=content_types, raw=st.sampled_from(["json", "junk", "deep"]),
       junk=st.binary(max_size=64), deep=deep_bodies)
def test_hostile_posts_get_2xx_or_4xx_and_only_201s_write(stack, kafka_writes, body, content_type, raw, junk, deep):
    before = kafka_writes()
    response = httpx.post(
        f"{stack.settings.gateway_url}/api/rooms/{new_room('fuzz')}/messages",
        content={"json": encode(body), "junk": junk, "deep": deep}[raw],
        headers={"Content-Type": content_type} if content_type else {},
        timeout=30,
    )
    assert response.status_code == 201 or 400 <= response.status_code < 500, response.text
    if response.status_code != 201:
        assert response.json()["error"]["code"]
        assert kafka_writes() == before


query_values = st.one_of(hostile_text, st.integers().map(str), st.just(""), digit_like)


def answer(url, params):
    """Status and JSON body of a GET, reading a body only if it is JSON (a hostile path
    may well name a valid room's event stream, which never ends). Parameters go as any
    bytes, percent-encoded, lone surrogates included."""
    query = urlencode({name: value.encode("utf-8", "surrogatepass") for name, value in params.items()})
    with httpx.stream("GET", f"{url}?{query}", timeout=30) as response:
        if response.headers.get("content-type", "").startswith("application/json"):
            response.read()
            return response.status_code, response.json()
        return response.status_code, None


@FUZZ
@given(room=hostile_text, history=query_values, last_event_id=query_values, user=query_values, limit=query_values,
       before=query_values)
def test_hostile_stream_parameters_get_200_or_a_json_4xx(stack, room, history, last_event_id, user, limit, before):
    base = stack.settings.gateway_url
    room = quote(room.encode("utf-8", "surrogatepass"), safe="")  # any bytes, percent-encoded
    for path, params in [
        (f"/stream/rooms/{room}", {"history": history, "last_event_id": last_event_id, "user": user}),
        (f"/stream/rooms/{room}/history", {"limit": limit, "before": before}),
    ]:
        status, body = answer(base + path, params)
        assert status == 200 or 400 <= status < 500, (path, status)
        if body is None:
            assert status in (200, 400)  # a stream, or the gateway refusing a malformed request line
        elif status != 200:
            assert body["error"]["code"]


typing_bodies = st.one_of(st.fixed_dictionaries({"user": fields}, optional={"extra": json_values}), json_values)


@FUZZ
@given(body=typing_bodies, content_type=content_types, raw=st.sampled_from(["json", "junk", "deep"]),
       junk=st.binary(max_size=64), deep=deep_bodies)
def test_hostile_typing_signals_get_204_or_4xx_and_never_write(stack, kafka_writes, body, content_type, raw, junk,
                                                              deep):
    before = kafka_writes()
    response = httpx.post(
        f"{stack.settings.gateway_url}/api/rooms/{new_room('fuzz')}/typing",
        content={"json": encode(body), "junk": junk, "deep": deep}[raw],
        headers={"Content-Type": content_type} if content_type else {},
        timeout=30,
    )
    assert response.status_code == 204 or 400 <= response.status_code < 500, response.text
    if response.status_code != 204:
        assert response.json()["error"]["code"]
    assert kafka_writes() == before  # typing never reaches Kafka


cookies = st.one_of(st.none(), st.from_regex(r"[!#-+\--~]{0,80}", fullmatch=True))


@FUZZ
@given(room=hostile_text, id=query_values, cookie=cookies, origin=st.sampled_from([None, "https://evil.example"]))
def test_hostile_deletes_get_a_4xx_and_write_nothing(stack, kafka_writes, room, id, cookie, origin):
    """Without a session that sent the message there is nothing to delete: every answer is
    a refusal, and the log is unchanged."""
    before = kafka_writes()
    room = quote(room.encode("utf-8", "surrogatepass"), safe="")
    id = quote(id.encode("utf-8", "surrogatepass"), safe="")
    headers = {**({"Cookie": f"chat_session={cookie}"} if cookie is not None else {}),
               **({"Origin": origin} if origin else {})}
    response = httpx.delete(f"{stack.settings.gateway_url}/api/rooms/{room}/messages/{id}", headers=headers,
                            timeout=30)
    assert 400 <= response.status_code < 500, (response.status_code, response.text)
    if response.headers.get("content-type", "").startswith("application/json"):
        assert response.json()["error"]["code"]
    else:
        assert response.status_code == 400  # the gateway refusing a malformed request line
    assert kafka_writes() == before


@pytest.mark.parametrize("path", ["messages", "typing"])
def test_json_nested_8000_deep_is_refused_as_bad_json(stack, kafka_writes, path):
    before = kafka_writes()
    response = httpx.post(f"{stack.settings.gateway_url}/api/rooms/{new_room('deep')}/{path}",
                          content=nested(8_000, "list"), headers={"Content-Type": "application/json"}, timeout=30)
    assert response.status_code == 400, response.text
    assert response.json()["error"]["code"] == "invalid_json"
    assert kafka_writes() == before


@pytest.mark.parametrize("id", ["\u00b2", "\u2460", "1\u00b2", "\U0001d7d8", "\uff11"])
def test_message_ids_of_digit_look_alikes_are_refused_with_400(stack, id):
    response = httpx.delete(f"{stack.settings.gateway_url}/api/rooms/lobby/messages/{quote(id)}", timeout=30)
    assert response.status_code == 400, response.text
    assert response.json()["error"]["code"] == "invalid_message_id"
