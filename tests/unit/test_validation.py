"""ingest's rules for a message's text and client_id, and the Host and Origin checks (refusals are ApiErrors)."""

import pytest

from chat_common.config import DEFAULT_ALLOWED_HOSTS
from chat_common.errors import ApiError
from chat_common.hosts import check_host, check_origin, request_origin
from ingest.validation import MAX_TEXT_CHARS, clean_client_id, clean_text


@pytest.mark.parametrize("raw,text", [("hi", "hi"), ("  hi  ", "hi"), ("a\r\nb", "a\nb"), ("tab\there", "tab\there"),
                                      ("😀👍🏽", "😀👍🏽"), ("👨‍👩‍👧", "👨‍👩‍👧"),
                                      ("x" * MAX_TEXT_CHARS, "x" * MAX_TEXT_CHARS),
                                      ("<script>alert(1)</script>", "<script>alert(1)</script>")])
def test_text_is_kept_as_written_once_trimmed(raw, text):
    assert clean_text(raw) == text


@pytest.mark.parametrize("raw,code", [("", "invalid_text"), (" \n ", "invalid_text"), (None, "invalid_text"),
                                      (["a"], "invalid_text"), ("x" * (MAX_TEXT_CHARS + 1), "text_too_long"),
                                      ("a\x00b", "invalid_text"), ("a\x1bb", "invalid_text"),
                                      ("\udfff", "invalid_text")])
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


def origin_check(headers, host, scheme="https"):
    own = {request_origin(scheme, host)} - {None}
    check_origin(headers.get("Origin"), headers.get("Sec-Fetch-Site"), own, frozenset({"https://app.partner.example"}))


@pytest.mark.parametrize("headers,host", [
    ({}, "chat.example"),  # curl, scripts: no Origin
    ({"Origin": "https://chat.example"}, "chat.example"),
    ({"Origin": "https://chat.example"}, "chat.example:443"),
    ({"Origin": "https://CHAT.example:443"}, "chat.example"),
    ({"Origin": "https://app.partner.example"}, "chat.example"),  # listed in allowed origins
])
def test_posts_from_the_sites_own_pages_or_without_an_origin_pass(headers, host):
    origin_check(headers, host)


@pytest.mark.parametrize("headers,host", [
    ({"Origin": "https://evil.example"}, "chat.example"),
    ({"Origin": "null"}, "chat.example"),  # sandboxed frames, file: pages
    ({"Origin": "https://chat.example.evil.example"}, "chat.example"),
    ({"Sec-Fetch-Site": "cross-site"}, "chat.example"),
    ({"Origin": "http://[::1"}, "chat.example"),
    ({"Origin": "http://chat.example"}, "chat.example"),  # another scheme
    ({"Origin": "http://127.0.0.1:9999"}, "127.0.0.1:8080"),  # another port of the same host
    ({"Origin": "https://chat.example:8443"}, "chat.example"),
])
def test_cross_site_posts_are_refused_with_403(headers, host):
    with pytest.raises(ApiError) as refused:
        origin_check(headers, host)
    assert (refused.value.status, refused.value.code) == (403, "cross_origin")


@pytest.mark.parametrize("host,allowed", [
    ("localhost:8080", DEFAULT_ALLOWED_HOSTS), ("127.0.0.1", DEFAULT_ALLOWED_HOSTS),
    ("[::1]:8080", DEFAULT_ALLOWED_HOSTS), ("Chat.Example", {"chat.example"}),
    ("chat.example:8443", {"chat.example:8443"}),
    ("anything.example", {"*"}),
])
def test_allowed_hosts_pass(host, allowed):
    check_host(host, allowed)


@pytest.mark.parametrize("host,allowed", [
    ("evil.example", DEFAULT_ALLOWED_HOSTS), ("localhost.evil.example", DEFAULT_ALLOWED_HOSTS),
    ("", DEFAULT_ALLOWED_HOSTS),
    ("chat.example:80", {"chat.example:8443"}), ("127.0.0.1/x", DEFAULT_ALLOWED_HOSTS), ("[::1", DEFAULT_ALLOWED_HOSTS),
])
def test_other_hosts_are_refused_with_400(host, allowed):
    with pytest.raises(ApiError) as refused:
        check_host(host, allowed)
    assert (refused.value.status, refused.value.code) == (400, "host_not_allowed")
