"""Generated hostile input to the stream's HTTP paths: query parameters and Last-Event-ID
made of digit look-alikes (superscripts, circled and full-width digits, other scripts'
digits), any Unicode category and huge numbers. The answer is a stream or a JSON 4xx,
never a 5xx.

FUZZ_EXAMPLES sets how many cases each property runs (as in test_api_properties.py).
"""

import os

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support import new_room

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "150"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))

# Characters str.isdigit() or str.isdecimal() accept that int() may refuse, and decimal digits
# of other scripts.
LOOK_ALIKES = "²³¹⁰⁴⁹₀₉①②⑨⑩⓪⓿❶➀０９٠٩۰۹०९০৯๐๙᠐᠙𝟎𝟗𝟘𝟿"
look_alike_numbers = st.text(alphabet=st.sampled_from(LOOK_ALIKES + "0123456789"), min_size=1, max_size=24)
huge_numbers = st.integers(min_value=-(10**40), max_value=10**40).map(str)
any_text = st.text(alphabet=st.characters(codec="utf-8", categories=("Nd", "No", "Nl", "Zs", "Cf", "Lo", "So", "Pd")),
                   max_size=24)
values = st.one_of(look_alike_numbers, huge_numbers, any_text, st.just("-1"), st.just("9999999999999999999"))


@pytest.fixture(scope="module")
def base(stack):
    return stack.settings.gateway_url


def header_value(text):
    """A header as a client would send it: Latin-1 bytes where the text fits (WSGI reads
    headers as Latin-1, so U+00B2 reaches the service as itself), else UTF-8 bytes; without
    leading or trailing spaces and tabs, which HTTP cannot carry in a value (a server trims
    them, and the client refuses to send them)."""
    try:
        value = text.encode("latin-1")
    except UnicodeEncodeError:
        value = text.encode("utf-8")
    return value.strip(b" \t")


def status_of_stream(base, path, params=None, headers=None):
    """The status of a stream request, closed as soon as its headers are in."""
    with httpx.stream("GET", f"{base}{path}", params=params, headers=headers, timeout=20) as response:
        if response.status_code >= 400:
            response.read()
            assert response.headers["content-type"].startswith("application/json"), response.text
        return response.status_code


def assert_not_5xx(status):
    assert status < 500, status


@given(history=values, last_event_id=values)
@FUZZ
def test_stream_query_parameters_never_answer_5xx(base, history, last_event_id):
    room = new_room("prop")
    assert_not_5xx(status_of_stream(base, f"/stream/rooms/{room}",
                                    params={"history": history, "last_event_id": last_event_id}))


@given(last_event_id=values)
@FUZZ
def test_last_event_id_never_answers_5xx(base, last_event_id):
    room = new_room("prop")
    assert_not_5xx(status_of_stream(base, f"/stream/rooms/{room}", params={"history": "1"},
                                    headers={"Last-Event-ID": header_value(last_event_id)}))


@given(limit=values, before=values)
@FUZZ
def test_history_parameters_never_answer_5xx(base, limit, before):
    response = httpx.get(f"{base}/stream/rooms/{new_room('prop')}/history", params={"limit": limit, "before": before},
                         timeout=20)
    assert_not_5xx(response.status_code)
    assert response.headers["content-type"].startswith("application/json")


@pytest.mark.parametrize(("path", "params", "headers"), [
    ("/stream/rooms/{room}", None, {"Last-Event-ID": "²".encode("latin-1")}),
    ("/stream/rooms/{room}", {"history": "²"}, None),
    ("/stream/rooms/{room}", {"last_event_id": "①"}, None),
    ("/stream/rooms/{room}/history", {"limit": "²"}, None),
    ("/stream/rooms/{room}/history", {"before": "²"}, None),
    ("/stream/rooms/{room}/history", {"limit": "9" * 400}, None),
])
def test_digit_look_alikes_are_refused_with_a_json_400(base, path, params, headers):
    response = httpx.get(f"{base}{path.format(room=new_room('prop'))}", params=params, headers=headers, timeout=20)
    assert response.status_code == 400
    assert response.json()["error"]["code"].startswith("invalid_")
