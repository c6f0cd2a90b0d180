"""Private rooms through the gateway: who may do what, and what an outsider sees.

Three people: the owner, a member who joined by the invite link, and an outsider who has the
room's name but no invite. For the outsider every path answers as for a room that does not
exist; a rotated invite link, a removal and Redis coming back empty change nothing of that.
"""

import time
import uuid

import httpx
import pytest
from redis import Redis
from support import SseClient, report, session_headers, stream_url

NOBODY = "_" + uuid.uuid4().hex  # a private room's name that no room has


@pytest.fixture(scope="module")
def people(stack):
    base = stack.settings.gateway_url
    return {name: session_headers(base) for name in ("owner", "member", "outsider")}


def create(base, headers):
    response = httpx.post(f"{base}/api/rooms", json={"private": True}, headers=headers, timeout=10)
    assert response.status_code == 201, response.text
    return response.json()


def join(base, room, token, headers):
    return httpx.post(f"{base}/api/rooms/{room}/members", json={"invite": token}, headers=headers, timeout=10)


def token_of(invite_url):
    return invite_url.split("?invite=", 1)[1]


def answers(base, room, headers):
    """What each path of a room answers: (status, JSON body)."""
    def get(path, **params):
        return httpx.get(f"{base}{path}", params=params, headers=headers, timeout=10)

    responses = {
        "connect": get(f"/stream/rooms/{room}"),
        "resume": get(f"/stream/rooms/{room}", last_event_id="0"),
        "flask-sse": get("/stream", channel=room),
        "history": get(f"/stream/rooms/{room}/history"),
        "scrollback": get(f"/stream/rooms/{room}/history", before="1", limit="5"),
        "presence": get(f"/stream/rooms/{room}/presence"),
        "members": get(f"/api/rooms/{room}/members"),
        "post": httpx.post(f"{base}/api/rooms/{room}/messages", json={"user": "eve", "text": "hi"},
                           headers=headers, timeout=10),
        "typing": httpx.post(f"{base}/api/rooms/{room}/typing", json={"user": "eve"}, headers=headers, timeout=10),
        "delete": httpx.delete(f"{base}/api/rooms/{room}/messages/0", headers=headers, timeout=10),
        "rotate": httpx.post(f"{base}/api/rooms/{room}/invite", json={}, headers=headers, timeout=10),
        "remove": httpx.delete(f"{base}/api/rooms/{room}/members/s:x", headers=headers, timeout=10),
    }
    return {path: (r.status_code, r.json()) for path, r in responses.items()}


def assert_looks_missing(base, room, headers):
    missing = answers(base, NOBODY, headers)
    assert {status for status, _ in missing.values()} == {404}
    assert answers(base, room, headers) == missing


def wait_status(request, status, timeout=30):
    deadline = time.monotonic() + timeout
    while (code := request().status_code) != status and time.monotonic() < deadline:
        time.sleep(0.1)
    return code


def test_only_members_read_and_write_and_outsiders_see_no_room(stack, people):
    base = stack.settings.gateway_url
    assert httpx.post(f"{base}/api/rooms", json={"private": True}, timeout=10).status_code == 401
    cross_site = httpx.post(f"{base}/api/rooms", json={"private": True}, timeout=10,
                            headers={**people["owner"], "Origin": "https://evil.example"})
    assert cross_site.status_code == 403

    created = create(base, people["owner"])
    room = created["room"]
    assert created["private"] is True and room.startswith("_") and len(room) >= 33
    assert created["invite_url"].startswith(f"/r/{room}?invite=")
    assert join(base, room, "wrong", people["member"]).status_code == 404
    assert join(base, room, token_of(created["invite_url"]), people["member"]).status_code == 204

    reader = SseClient(stream_url(base, room, user="mia"), headers=people["member"])
    try:
        posted = httpx.post(f"{base}/api/rooms/{room}/messages", json={"user": "owen", "text": "team only"},
                            headers=people["owner"], timeout=10)
        assert posted.status_code == 201
        assert reader.wait_for(lambda c: [m["text"] for m in c.messages()] == ["team only"])
        assert_looks_missing(base, room, people["outsider"])
        assert_looks_missing(base, room, {})  # no session at all
        listed = httpx.get(f"{base}/stream/rooms", timeout=10).json()["rooms"]
        assert room not in [r["room"] for r in listed]
        members = httpx.get(f"{base}/api/rooms/{room}/members", headers=people["member"], timeout=10)
        assert members.status_code == 200 and len(members.json()["members"]) == 1
        # A public name cannot take the private rooms' prefix: posting creates no room there.
        assert httpx.post(f"{base}/api/rooms/{NOBODY}/messages", json={"user": "eve", "text": "x"},
                          timeout=10).status_code == 404
        rotate = httpx.post(f"{base}/api/rooms/{room}/invite", json={}, headers=people["member"], timeout=10)
        assert rotate.status_code == 403  # a member knows the room; only its owner rotates
    finally:
        reader.close()


def test_a_rotated_invite_link_stops_working(stack, people):
    base = stack.settings.gateway_url
    created = create(base, people["owner"])
    room, old = created["room"], token_of(created["invite_url"])
    rotated = httpx.post(f"{base}/api/rooms/{room}/invite", json={}, headers=people["owner"], timeout=10)
    assert rotated.status_code == 200
    new = token_of(rotated.json()["invite_url"])
    assert new != old
    assert join(base, room, old, people["outsider"]).status_code == 404
    assert_looks_missing(base, room, people["outsider"])
    assert join(base, room, new, people["member"]).status_code == 204


def test_a_removed_member_is_cut_off_within_two_seconds(stack, people):
    base = stack.settings.gateway_url
    created = create(base, people["owner"])
    room = created["room"]
    assert join(base, room, token_of(created["invite_url"]), people["member"]).status_code == 204
    member = httpx.get(f"{base}/api/rooms/{room}/members", headers=people["member"], timeout=10).json()["you"]
    reader = SseClient(stream_url(base, room), headers=people["member"])
    try:
        assert reader.status == 200
        removed = httpx.delete(f"{base}/api/rooms/{room}/members/{member}", headers=people["owner"], timeout=10)
        assert removed.status_code == 204
        removed_at = time.monotonic()
        assert reader.closed.wait(5)
        ended_s = time.monotonic() - removed_at
        assert ended_s < 2
        report("private-room-removal", {"stream_ended_s": round(ended_s, 2)})
    finally:
        reader.close()
    assert_looks_missing(base, room, people["member"])
    assert join(base, room, "guess", people["member"]).status_code == 404


def test_a_full_room_takes_no_one_until_a_member_is_removed(stack):
    base = stack.settings.gateway_url
    owner = session_headers(base)
    created = create(base, owner)
    room, token = created["room"], token_of(created["invite_url"])
    joined = [session_headers(base) for _ in range(3)]  # PRIVATE_ROOM_MAX_MEMBERS in the test stack
    assert [join(base, room, token, person).status_code for person in joined] == [204, 204, 204]
    late = session_headers(base)
    refused = join(base, room, token, late)
    assert refused.status_code == 409 and refused.json()["error"]["code"] == "room_full"
    assert join(base, room, token, joined[0]).status_code == 204  # a member already: still in
    first = httpx.get(f"{base}/api/rooms/{room}/members", headers=joined[0], timeout=10).json()["you"]
    assert httpx.delete(f"{base}/api/rooms/{room}/members/{first}", headers=owner, timeout=10).status_code == 204
    assert join(base, room, token, late).status_code == 204


def test_redis_lost_and_bridge_killed_the_room_stays_private(stack, people):
    """Redis emptied (and the bridge killed just after a room was made): until the bridge has
    read the rooms topic again, private rooms answer 503 (never as public rooms); then
    exactly their members read them again."""
    base = stack.settings.gateway_url
    created = create(base, people["owner"])
    room = created["room"]
    token = token_of(created["invite_url"])
    stack.kill("bridge")
    redis = Redis(port=stack.settings.redis_port)
    try:
        redis.flushall()
    finally:
        redis.close()
    outsider = httpx.get(f"{base}/stream/rooms/{room}/history", headers=people["outsider"], timeout=10)
    assert outsider.status_code in (404, 503)
    assert wait_status(lambda: join(base, room, token, people["member"]), 204, timeout=90) == 204
    assert wait_status(lambda: httpx.get(f"{base}/stream/rooms/{room}/history", headers=people["owner"],
                                         timeout=10), 200) == 200
    assert_looks_missing(base, room, people["outsider"])
    stack.wait_ready(120)
