"""ingest's rules for a message's text and client_id (the refusals are ApiErrors)."""

import pytest

from chat_common.errors import ApiError
from ingest.validation import MAX_TEXT_CHARS, check_origin, clean_client_id, clean_text


@pytest.mark.parametrize("raw,text", [("hi", "hi"), ("  hi  ", "hi"), ("a\r\nb", "a\nb"), ("tab\there", "tab\there"),
                                      ("😀👍🏽", "😀👍🏽"), ("👨‍👩‍👧", "👨‍👩‍👧"), ("x" * MAX_TEXT_CHARS, "x" * MAX_TEXT_CHARS),
                                      ("<script>alert(1)</script>", "<script>alert(1)</script>")])
def test_text_is_kept_as_written_once_trimmed(raw, text):
    assert clean_text(raw) == text


@pytest.mark.parametrize("raw,code", [("", "invalid_text"), (" \n ", "invalid_text"), (None, "invalid_text"),
                                      (["a"], "invalid_text"), ("x" * (MAX_TEXT_CHARS + 1), "text_too_long"),
                                      ("a\x00b", "invalid_text"), ("a\x1bb", "invalid_text"), ("\udfff", "invalid_text")])
def test_bad_text_is_refused_with_422(raw, code):
    with pytest.raises(ApiError) as refused:
        clean_text(raw)
    assert (refused.value.status, refused.value.code) == (422, code)


def test_the_length_limit_counts_characters_after_trimming():
    assert clean_text("  " + "x" * MAX_TEXT_CHARS + "  ") == "x" * MAX_TEXT_CHARS


@pytest.mark.parametrize("raw", [None, "c1", "0b5c7e1e-7f3a-4a9e-9b1d-2a9c2d1e8f00", "a.b:c_d-e", "x" * 64])
def test_client_ids_that_are_accepted(raw):
    assert clean_client_id(raw) == raw


@pytest.mark.parametrize("raw", ["", "x" * 65, "a b", "a\nb", 5, {"a": 1}, "é"])
def test_client_ids_that_are_refused(raw):
    with pytest.raises(ApiError) as refused:
        clean_client_id(raw)
    assert refused.value.code == "invalid_client_id"


@pytest.mark.parametrize("headers,host", [
    ({}, "chat.example"),  # curl, scripts: no Origin
    ({"Origin": "https://chat.example"}, "chat.example"),
    ({"Origin": "http://127.0.0.1:8080", "Sec-Fetch-Site": "same-origin"}, "127.0.0.1"),  # proxy dropped the port
    ({"Origin": "https://app.partner.example"}, "chat.example"),  # listed in allowed origins
])
def test_posts_from_the_sites_own_pages_or_without_an_origin_pass(headers, host):
    check_origin(headers, host, frozenset({"https://app.partner.example"}))


@pytest.mark.parametrize("headers", [
    {"Origin": "https://evil.example"},
    {"Origin": "null"},  # sandboxed frames, file: pages
    {"Origin": "https://chat.example.evil.example"},
    {"Sec-Fetch-Site": "cross-site"},
    {"Origin": "http://[::1"},
])
def test_cross_site_posts_are_refused_with_403(headers):
    with pytest.raises(ApiError) as refused:
        check_origin(headers, "chat.example", frozenset())
    assert (refused.value.status, refused.value.code) == (403, "cross_origin")
