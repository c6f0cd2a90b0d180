"""A name held by a present browser session cannot be used by anyone else in that room.

The page asks for a session cookie (POST /api/session) before it connects; while that
connection is open, the session holds its name in the room, and posts under the name from
any other session, or from none, are refused with 409. Clients that keep no cookies (the
plain HTTP contract) hold nothing and are never refused for a name nobody holds.
"""

import time

import httpx
import pytest
from support import SseClient, new_room, post, stream_url


def new_session(base):
    """A browser's session: the cookie the page gets before it joins a room."""
    response = httpx.post(f"{base}/api/session", headers={"Origin": base}, timeout=10)
    assert response.status_code == 204
    return response.cookies["chat_session"], response.headers["set-cookie"]


def cookie(value):
    return {"Cookie": f"chat_session={value}"}


def join(base, room, user, session=None):
    client = SseClient(stream_url(base, room, user=user, history=0), headers=cookie(session) if session else None)
    client.wait_for(lambda c: any(e.event == "presence" for e in c.received), 10)
    return client


def test_the_session_cookie_is_signed_httponly_and_same_site(stack):
    value, header = new_session(stack.settings.gateway_url)
    attributes = [part.strip().lower() for part in header.split(";")]
    assert "httponly" in attributes and "samesite=strict" in attributes and "path=/" in attributes
    assert "." in value  # payload.timestamp.signature


def test_a_held_name_is_refused_to_others_and_kept_for_its_holder(stack):
    base, room = stack.settings.gateway_url, new_room("names")
    mine, _ = new_session(base)
    theirs, _ = new_session(base)
    holder = join(base, room, "Alice", mine)
    try:
        for who, name in ((None, "Alice"), (theirs, "Alice"), (None, "ALICE"), (theirs, "Ａｌｉｃｅ"),
                          ("forged.x.y", "alice")):
            refused = post(base, room, user=name, text=f"as {name}", headers=cookie(who) if who else {})
            assert refused.status_code == 409, (who, name)
            assert refused.json()["error"]["code"] == "name_taken"
            assert "pick another name" in refused.json()["error"]["message"]

        accepted = post(base, room, user="Alice", text="mine", headers=cookie(mine))
        assert accepted.status_code == 201
        assert post(base, room, user="Bob", text="someone else").status_code == 201
        holder.wait_for(lambda c: len(c.messages()) >= 2, 15)
        assert [m["text"] for m in holder.messages()] == ["mine", "someone else"]  # the refusals stored nothing
    finally:
        holder.close()


def test_a_name_is_free_again_once_its_holder_leaves(stack):
    base, room = stack.settings.gateway_url, new_room("names")
    mine, _ = new_session(base)
    holder = join(base, room, "carol", mine)
    assert post(base, room, user="carol", text="taken").status_code == 409
    holder.close()
    deadline = time.monotonic() + 15
    while (response := post(base, room, user="carol", text="free")).status_code == 409:
        assert time.monotonic() < deadline, "the name stayed held after its holder left"
        time.sleep(0.2)
    assert response.status_code == 201


def test_a_second_session_reads_the_room_but_does_not_take_the_name(stack):
    base, room = stack.settings.gateway_url, new_room("names")
    first, _ = new_session(base)
    second, _ = new_session(base)
    holder = join(base, room, "dave", first)
    other = join(base, room, "dave", second)  # reading is never refused
    try:
        assert post(base, room, user="dave", text="second", headers=cookie(second)).status_code == 409
        assert post(base, room, user="dave", text="first", headers=cookie(first)).status_code == 201
        other.wait_for(lambda c: len(c.messages()) >= 1, 15)
        assert [m["text"] for m in other.messages()] == ["first"]
    finally:
        holder.close()
        other.close()


@pytest.mark.parametrize("name", ["erin", "Erin"])
def test_clients_without_cookies_hold_nothing(stack, name):
    """The plain HTTP contract: a reader named "erin" without a session does not keep a
    poster without a session from using the name."""
    base, room = stack.settings.gateway_url, new_room("names")
    reader = join(base, room, "erin")
    try:
        assert post(base, room, user=name, text="hello").status_code == 201
    finally:
        reader.close()


def test_a_session_from_another_site_is_refused(stack):
    response = httpx.post(f"{stack.settings.gateway_url}/api/session", headers={"Origin": "https://evil.example"},
                          timeout=10)
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "cross_origin"
    assert "set-cookie" not in response.headers


@pytest.mark.parametrize("look_alike", ["T\u043em", "Tom\u034f", "Tom\ufe0f", "\u0422om"])
def test_a_look_alike_of_a_held_name_is_refused(stack, look_alike):
    """Compared by confusable skeleton (UTS #39): a Cyrillic о or Т, or an invisible mark
    appended (U+034F, U+FE0F), is the held name."""
    base, room = stack.settings.gateway_url, new_room("lookalike")
    mine, _ = new_session(base)
    holder = join(base, room, "Tom", mine)
    try:
        refused = post(base, room, user=look_alike, text="not tom")
        assert refused.status_code == 409, look_alike
        assert refused.json()["error"]["code"] == "name_taken"
    finally:
        holder.close()


@pytest.mark.parametrize("blank", ["\u3164", "\u2800", "\u0301\u0301", "a\u3164", "safe \u202egnp", "x\u200by",
                                   " \u3000 "])
def test_names_that_render_blank_or_reorder_text_are_refused(stack, blank):
    response = post(stack.settings.gateway_url, new_room("blank"), user=blank, text="hi")
    assert response.status_code == 422, blank
    assert response.json()["error"]["code"] == "invalid_user"
