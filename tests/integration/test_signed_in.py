"""Behind a sign-in proxy (TRUSTED_USER_HEADER): the proxy's name is the user's name.

ingest and stream run a second time beside the stack's own, with the same command and
the same Kafka and Redis, configured as they would be behind oauth2-proxy; the tests
talk to them as that proxy would (it sets X-Forwarded-User on every request it passes).
"""

import time

import httpx
import pytest
from support import SseClient, new_room, services_beside, wait_applied

HEADER = "X-Forwarded-User"


@pytest.fixture(scope="module")
def signed_in(stack, tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("signed-in")
    with services_beside(stack, ("ingest", "stream"), run_dir, TRUSTED_USER_HEADER=HEADER, MODERATORS="mod") as urls:
        yield urls


def post(urls, room, headers, user="mallory", text="hello"):
    return httpx.post(f"{urls['ingest']}/api/rooms/{room}/messages", json={"user": user, "text": text},
                      headers=headers, timeout=10)


def test_a_signed_in_post_is_shown_under_the_proxys_name_not_the_one_in_the_body(signed_in, stack):
    room = new_room("signed")
    response = post(signed_in, room, {HEADER: "grace"}, user="mallory")
    assert response.status_code == 201
    assert response.json()["user"] == "grace"
    wait_applied(stack.settings.gateway_url, room, response.json()["id"])
    client = SseClient(f"{signed_in['stream']}/stream/rooms/{room}?user=mallory", headers={HEADER: "grace"})
    try:
        assert client.wait_messages(1)
        assert [m["user"] for m in client.messages()] == ["grace"]
        presence = httpx.get(f"{signed_in['stream']}/stream/rooms/{room}/presence", headers={HEADER: "ada"}).json()
        assert presence["users"] == ["grace"]  # the stream's signed-in name, not ?user=
    finally:
        client.close()


@pytest.mark.parametrize("headers,status,code", [
    ({}, 401, "unauthenticated"),
    ({HEADER: ""}, 401, "unauthenticated"),
    ({HEADER: "a" * 40}, 403, "invalid_identity"),
    ({HEADER: "eve\u202e".encode()}, 403, "invalid_identity"),  # arrives as control characters
])
def test_without_a_usable_sign_in_nothing_is_posted_or_streamed(signed_in, stack, headers, status, code):
    room = new_room("unsigned")
    response = post(signed_in, room, headers)
    assert (response.status_code, response.json()["error"]["code"]) == (status, code)
    stream = httpx.get(f"{signed_in['stream']}/stream/rooms/{room}", headers=headers, timeout=10)
    assert (stream.status_code, stream.json()["error"]["code"]) == (status, code)
    history = httpx.get(f"{stack.settings.gateway_url}/stream/rooms/{room}/history", timeout=10).json()
    assert history["messages"] == []


def test_a_signed_in_user_deletes_their_own_messages_and_a_moderator_anyones(signed_in, stack):
    room = new_room("signed-delete")
    first = post(signed_in, room, {HEADER: "grace"}, text="first").json()
    second = post(signed_in, room, {HEADER: "grace"}, text="second").json()
    kept = post(signed_in, room, {HEADER: "grace"}, text="kept").json()
    url = f"{signed_in['ingest']}/api/rooms/{room}/messages"
    refused = httpx.delete(f"{url}/{first['id']}", headers={HEADER: "hopper"}, timeout=10)
    assert (refused.status_code, refused.json()["error"]["code"]) == (403, "forbidden")
    assert httpx.delete(f"{url}/{first['id']}", headers={HEADER: "grace"}, timeout=10).status_code == 204
    assert httpx.delete(f"{url}/{second['id']}", headers={HEADER: "mod"}, timeout=10).status_code == 204
    wait_applied(stack.settings.gateway_url, room, kept["id"])
    base = stack.settings.gateway_url
    for _ in range(100):
        shown = httpx.get(f"{base}/stream/rooms/{room}/history", timeout=10).json()["messages"]
        if [m["id"] for m in shown] == [kept["id"]]:
            break
        time.sleep(0.1)
    assert [m["text"] for m in shown] == ["kept"]


def test_a_private_rooms_membership_is_the_signed_in_name_on_any_device(signed_in):
    created = httpx.post(f"{signed_in['ingest']}/api/rooms", json={"private": True}, headers={HEADER: "grace"},
                         timeout=10)
    assert created.status_code == 201
    room, token = created.json()["room"], created.json()["invite_url"].split("?invite=", 1)[1]
    joined = httpx.post(f"{signed_in['ingest']}/api/rooms/{room}/members", json={"invite": token},
                        headers={HEADER: "ada"}, timeout=10)
    assert joined.status_code == 204
    # No cookie anywhere: the name alone is the member, whatever browser ada uses next.
    read = lambda name: httpx.get(f"{signed_in['stream']}/stream/rooms/{room}/history",  # noqa: E731
                                  headers={HEADER: name}, timeout=10)
    assert [read(name).status_code for name in ("grace", "ada", "eve")] == [200, 200, 404]
    assert post(signed_in, room, {HEADER: "eve"}).status_code == 404
    assert post(signed_in, room, {HEADER: "ada"}).status_code == 201
