"""What one client address may spend, counted in Redis by ingest's admission call: request
bodies in bytes, typing signals, deletes (refused ones included, counted before any Kafka
read) and new rooms. Over any budget: 429 with Retry-After, and nothing reaches Kafka.

Each test runs an ingest of its own with small budgets, and names its client address in
X-Forwarded-For (the stack's ingest trusts one proxy), so no other test shares its counters.
"""

import itertools
import json
import time

import httpx
from redis import Redis
from support import new_room, post, services_beside, session_headers, typing, wait_applied

from chat_common.messages import client_id_key, edits_key, history_key

_addresses = itertools.count(1)


def address():
    """A client address no other test uses."""
    n = next(_addresses)
    return {"X-Forwarded-For": f"10.{n // 250}.{n % 250}.{7 + n % 200}"}


def assert_limited(response, window_s):
    assert response.status_code == 429, response.text
    assert response.json()["error"]["code"] == "rate_limited"
    assert 1 <= int(response.headers["Retry-After"]) <= window_s


def test_an_address_over_its_byte_budget_is_refused_however_few_its_posts(stack, end_offsets, tmp_path):
    budget, window_s = 40_000, 600
    with services_beside(stack, ["ingest"], tmp_path, RATE_LIMIT_IP_BYTES=str(budget),
                         RATE_LIMIT_WINDOW_S=str(window_s)) as urls:
        base, room, me = urls["ingest"], new_room("bytes"), address()
        big = "x" * 3900  # about 3.9 KB a body: ten fit in the budget, the eleventh does not
        statuses = [post(base, room, user=f"u{i}", text=big, headers=me).status_code for i in range(10)]
        assert statuses == [201] * 10
        before = end_offsets()
        assert_limited(post(base, room, user="fresh", text=big, headers=me), window_s)
        assert end_offsets() == before
        assert post(base, room, user="fresh", text=big, headers=address()).status_code == 201  # others unaffected


def test_an_address_over_its_daily_budgets_is_refused_for_the_rest_of_the_day(stack, end_offsets, tmp_path):
    """The short window refills every 10 s; the day's budgets do not, so what one address
    leaves in Redis for a day (a client_id key per message) stays bounded."""
    with services_beside(stack, ["ingest"], tmp_path, RATE_LIMIT_IP_DAY="5",
                         RATE_LIMIT_IP_BYTES_DAY="100000000") as urls:
        base, room, me = urls["ingest"], new_room("day"), address()
        assert [post(base, room, user=f"u{i}", headers=me).status_code for i in range(5)] == [201] * 5
        before = end_offsets()
        refused = post(base, room, user="sixth", headers=me)
        assert_limited(refused, 86_400)
        assert int(refused.headers["Retry-After"]) > 86_000  # the rest of the day, not the 10 s window
        assert end_offsets() == before
    (tmp_path / "bytes").mkdir()
    with services_beside(stack, ["ingest"], tmp_path / "bytes", RATE_LIMIT_IP_BYTES_DAY="20000") as urls:
        base, room, me = urls["ingest"], new_room("day-bytes"), address()
        big = "x" * 3900
        assert [post(base, room, user=f"u{i}", text=big, headers=me).status_code for i in range(5)] == [201] * 5
        assert_limited(post(base, room, user="sixth", text=big, headers=me), 86_400)
        assert post(base, room, user="other", text=big, headers=address()).status_code == 201


def test_an_address_editing_spends_its_byte_budgets_and_redis_keeps_only_the_latest_text(stack, end_offsets,
                                                                                         tmp_path):
    """An edit carries up to 4,000 characters: its body spends the address's byte budgets, the
    window's and the day's, as a post does; and a message's edits replace each other in Redis."""
    gateway, big = stack.settings.gateway_url, "x" * 3900  # about 3.9 KB a body
    window_s = 600
    for n, (scope, budget, wait_s) in enumerate((("RATE_LIMIT_IP_BYTES", 10_000, window_s),
                                                 ("RATE_LIMIT_IP_BYTES_DAY", 10_000, 86_400))):
        (tmp_path / scope).mkdir()
        with services_beside(stack, ["ingest"], tmp_path / scope, RATE_LIMIT_WINDOW_S=str(window_s),
                             **{scope: str(budget)}) as urls:
            base, room, me = urls["ingest"], new_room(f"edit-bytes{n}"), address()
            mine = {**session_headers(gateway), **me}
            id = post(base, room, user="editor", text="v0", headers=mine).json()["id"]
            wait_applied(gateway, room, id)
            assert [edit(base, room, id, big + str(i), mine).status_code for i in (1, 2)] == [200, 200]
            before = end_offsets()
            refused = edit(base, room, id, big + "3", mine)  # two edits' bytes, not two requests, spent it
            assert_limited(refused, wait_s)
            assert int(refused.headers["Retry-After"]) > wait_s - 60
            assert end_offsets() == before
        redis = Redis.from_url(stack.settings.redis_url)
        deadline = time.monotonic() + 20
        while json.loads(redis.hget(edits_key(room), id) or '{"text": ""}')["text"] != big + "2":
            assert time.monotonic() < deadline, "the bridge did not apply the edit"
            time.sleep(0.05)
        assert redis.hlen(edits_key(room)) == 1  # the latest text only, whatever the number of edits


def edit(base, room, id, text, headers):
    return httpx.patch(f"{base}/api/rooms/{room}/messages/{id}", json={"text": text}, headers=headers, timeout=10)


def test_an_address_over_its_typing_budget_is_refused_whatever_names_it_uses(stack, tmp_path):
    budget, window_s = 5, 600
    with services_beside(stack, ["ingest"], tmp_path, RATE_LIMIT_IP_TYPING=str(budget),
                         RATE_LIMIT_WINDOW_S=str(window_s)) as urls:
        base, room, me = urls["ingest"], new_room("typing-budget"), address()
        assert [typing(base, room, f"name{i}", headers=me).status_code for i in range(budget)] == [204] * budget
        assert_limited(typing(base, room, "yet another", headers=me), window_s)
        assert typing(base, room, "someone", headers=address()).status_code == 204


def test_refused_deletes_spend_the_budget_before_kafka_is_read(stack, end_offsets, tmp_path):
    budget, window_s = 4, 600
    with services_beside(stack, ["ingest"], tmp_path, RATE_LIMIT_IP_DELETES=str(budget),
                         RATE_LIMIT_WINDOW_S=str(window_s)) as urls:
        base, room, me = urls["ingest"], new_room("delete-budget"), address()
        mine = session_headers(stack.settings.gateway_url)
        own = post(base, room, text="mine", headers={**mine, **me}).json()["id"]
        for missing in range(budget):  # no such message: 404 each, each counted
            response = httpx.delete(f"{base}/api/rooms/{room}/messages/{10**15 + missing}", headers=me)
            assert response.status_code == 404
        before = end_offsets()
        assert_limited(httpx.delete(f"{base}/api/rooms/{room}/messages/{own}", headers={**mine, **me}), window_s)
        assert end_offsets() == before  # no tombstone


def test_an_address_creating_rooms_is_refused_past_its_budget_but_may_post_in_existing_rooms(stack, tmp_path):
    budget, window_s = 3, 3600
    with services_beside(stack, ["ingest"], tmp_path, RATE_LIMIT_IP_ROOMS=str(budget),
                         RATE_LIMIT_ROOMS_WINDOW_S=str(window_s)) as urls:
        base, me = urls["ingest"], address()
        existing = new_room("existing")
        wait_applied(stack.settings.gateway_url, existing, post(base, existing, headers=address()).json()["id"])
        for _ in range(budget):
            assert post(base, new_room("created"), headers=me).status_code == 201
        assert_limited(post(base, new_room("one-more"), headers=me), window_s)
        assert post(base, existing, text="still here", headers=me).status_code == 201


def test_a_retry_is_answered_from_the_window_or_from_kafka_when_the_cid_key_holds_only_the_id(stack):
    """The cid key holds the id alone: a retry gets the stored message from the room's
    history window, or read back from Kafka once it has left the window."""
    base, room = stack.settings.gateway_url, new_room("cid")
    first = post(base, room, text="once", client_id="cid-1").json()
    wait_applied(base, room, first["id"])
    redis = Redis.from_url(stack.settings.redis_url, decode_responses=True)
    try:
        redis.set(client_id_key(room, "cid-1"), first["id"], keepttl=True)
        again = post(base, room, text="once", client_id="cid-1")
        assert again.status_code == 201 and again.json() == first

        redis.zremrangebyscore(history_key(room), first["id"], first["id"])  # it left the window
        again = post(base, room, text="once", client_id="cid-1")
        assert again.status_code == 201 and again.json() == first

        redis.set(client_id_key(room, "cid-1"), json.dumps(first), keepttl=True)  # written before the upgrade
        again = post(base, room, text="once", client_id="cid-1")
        assert again.status_code == 201 and again.json() == first
    finally:
        redis.close()
