"""Edits, reactions and replies: each a record in the room's log after the message it names,
folded into every read path and told to readers once."""

import json
import time
from urllib.parse import quote

import httpx
from prometheus_client.parser import text_string_to_metric_families
from redis import Redis
from support import (
    SseClient,
    delete_message,
    history,
    new_room,
    post,
    services_beside,
    session_headers,
    stream_url,
    wait_applied,
    whole_history,
)

HISTORY_MAX = 100  # the Redis window of the test stack (tests/support.py)
THUMBS = "👍"


def edit(base, room, id, text, headers=None):
    return httpx.patch(f"{base}/api/rooms/{room}/messages/{id}", json={"text": text}, headers=headers or {},
                       timeout=10)


def react(base, room, id, user, emoji=THUMBS, on=True, headers=None):
    return httpx.request("PUT" if on else "DELETE", f"{base}/api/rooms/{room}/messages/{id}/reactions/{quote(emoji)}",
                         json={"user": user}, headers=headers or {}, timeout=10)


def events(client, kind):
    return [(e.id, json.loads(e.data)) for e in client.received if e.event == kind]


def connected(client):
    return client.wait_for(lambda c: any(e.event == "presence" for e in c.received))


def shown(base, room, id):
    """The message ``id`` as a history page returns it."""
    return next(m for m in history(base, room)["messages"] if m["id"] == id)


def wait_shown(base, room, id, predicate, timeout=20):
    deadline = time.monotonic() + timeout
    while not predicate(shown(base, room, id)):
        assert time.monotonic() < deadline, "the bridge did not apply the change"
        time.sleep(0.05)
    return shown(base, room, id)


def refused(response, status, code):
    assert (response.status_code, response.json()["error"]["code"]) == (status, code), response.text
    assert response.json()["error"]["message"]


def test_an_edit_reaches_readers_once_and_every_read_path_shows_the_latest_text(stack, end_offsets):
    base, room = stack.settings.gateway_url, new_room("edit")
    mine = session_headers(base)
    first = post(base, room, text="helo", headers=mine).json()
    second = post(base, room, text="next", headers=mine).json()
    wait_applied(base, room, second["id"])
    reader = SseClient(stream_url(base, room))
    try:
        assert reader.wait_messages(2)
        before = end_offsets()
        response = edit(base, room, first["id"], "  hello  ", mine)
        assert response.status_code == 200
        body = response.json()
        assert body["id"] == first["id"] and body["text"] == "hello" and abs(body["edited_ts"] - time.time()) < 60
        assert sum(end_offsets().values()) == sum(before.values()) + 1
        assert reader.wait_for(lambda c: events(c, "edit"))
        [(edit_id, data)] = events(reader, "edit")
        assert data == {"id": first["id"], "text": "hello", "edited_ts": body["edited_ts"]}
        assert int(edit_id) > int(second["id"])
        # The same text again: 200, nothing written.
        after = end_offsets()
        again = edit(base, room, first["id"], "hello", mine)
        assert again.status_code == 200 and again.json() == body
        assert end_offsets() == after
    finally:
        reader.close()

    edited = wait_shown(base, room, first["id"], lambda m: m["text"] == "hello")
    assert edited["edited_ts"] == body["edited_ts"]
    assert "edited_ts" not in shown(base, room, second["id"])
    fresh = SseClient(stream_url(base, room))
    try:
        assert connected(fresh)
        assert [(m["text"], m.get("edited_ts")) for m in fresh.messages()] == [("hello", body["edited_ts"]),
                                                                              ("next", None)]
    finally:
        fresh.close()
    # A reader resuming from before the edit gets it once; one past it, not again.
    for last_seen, expected in ((second["id"], [edit_id]), (edit_id, [])):
        resumed = SseClient(stream_url(base, room), headers={"Last-Event-ID": last_seen})
        try:
            assert connected(resumed)
            assert [id for id, _ in events(resumed, "edit")] == expected
        finally:
            resumed.close()
    # A delete after an edit removes the message.
    assert delete_message(base, room, first["id"], mine).status_code == 204
    deadline = time.monotonic() + 20
    while first["id"] in [m["id"] for m in history(base, room)["messages"]]:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    refused(edit(base, room, first["id"], "too late", mine), 409, "message_deleted")


def test_edit_refusals_write_nothing(stack, end_offsets):
    base, room = stack.settings.gateway_url, new_room("edit-refused")
    mine, theirs = session_headers(base), session_headers(base)
    message = post(base, room, text="mine", headers=mine).json()
    gone = post(base, room, text="gone", headers=mine).json()
    assert delete_message(base, room, gone["id"], mine).status_code == 204
    wait_applied(base, room, message["id"])
    before = end_offsets()
    refused(edit(base, room, message["id"], "theirs now", theirs), 403, "forbidden")
    refused(edit(base, room, message["id"], "no session"), 403, "forbidden")
    refused(edit(base, room, str(int(gone["id"]) + 10**6), "nothing", mine), 404, "message_not_found")
    refused(edit(base, room, "12x", "bad id", mine), 400, "invalid_message_id")
    refused(edit(base, room, gone["id"], "deleted", mine), 409, "message_deleted")
    refused(edit(base, room, message["id"], "   ", mine), 422, "invalid_text")
    refused(edit(base, room, message["id"], "x" * 4001, mine), 422, "text_too_long")
    refused(edit(base, "Not-A-Room", message["id"], "bad room", mine), 400, "invalid_room")
    refused(httpx.patch(f"{base}/api/rooms/{room}/messages/{message['id']}", content=b"{", timeout=10,
                        headers={**mine, "Content-Type": "application/json"}), 400, "invalid_json")
    refused(httpx.patch(f"{base}/api/rooms/{room}/messages/{message['id']}", json={"text": "x"}, timeout=10,
                        headers={**mine, "Origin": "https://evil.example"}), 403, "cross_origin")
    assert end_offsets() == before
    assert shown(base, room, message["id"])["text"] == "mine"


def test_reactions_count_each_person_once_and_reach_every_read_path(stack, end_offsets):
    base, room = stack.settings.gateway_url, new_room("react")
    message = post(base, room, text="lunch?").json()
    wait_applied(base, room, message["id"])
    reader = SseClient(stream_url(base, room))
    try:
        assert reader.wait_messages(1)
        assert react(base, room, message["id"], "ann").status_code == 204
        assert react(base, room, message["id"], "bob").status_code == 204
        assert react(base, room, message["id"], "bob", emoji="\u2764").status_code == 204  # stored as ❤️
        assert reader.wait_for(lambda c: len(events(c, "reaction")) == 3)
        latest = events(reader, "reaction")[-1][1]
        assert latest == {"id": message["id"], "reactions": {THUMBS: {"count": 2, "users": ["ann", "bob"]},
                                                             "❤️": {"count": 1, "users": ["bob"]}}}
        # Idempotent: already there, already gone: 204, nothing written.
        wait_shown(base, room, message["id"], lambda m: "❤️" in m.get("reactions", {}))
        before = end_offsets()
        assert react(base, room, message["id"], "ann").status_code == 204
        assert react(base, room, message["id"], "cy", on=False).status_code == 204
        assert end_offsets() == before
        assert react(base, room, message["id"], "ann", on=False).status_code == 204
        assert reader.wait_for(lambda c: len(events(c, "reaction")) == 4)
        assert events(reader, "reaction")[-1][1]["reactions"] == {THUMBS: {"count": 1, "users": ["bob"]},
                                                                  "❤️": {"count": 1, "users": ["bob"]}}
    finally:
        reader.close()
    counted = wait_shown(base, room, message["id"], lambda m: m["reactions"][THUMBS]["count"] == 1)
    assert counted["reactions"] == {THUMBS: {"count": 1, "users": ["bob"]}, "❤️": {"count": 1, "users": ["bob"]}}
    fresh = SseClient(stream_url(base, room))
    try:
        assert connected(fresh)
        assert fresh.messages()[0]["reactions"] == counted["reactions"]
    finally:
        fresh.close()
    reaction_ids = [id for id, _ in events(reader, "reaction")]
    resumed = SseClient(stream_url(base, room), headers={"Last-Event-ID": reaction_ids[1]})
    try:
        assert connected(resumed)
        assert [id for id, _ in events(resumed, "reaction")] == reaction_ids[2:]
    finally:
        resumed.close()


def test_reaction_refusals_write_nothing(stack, end_offsets):
    base, room = stack.settings.gateway_url, new_room("react-refused")
    mine = session_headers(base)
    message = post(base, room, text="hi", headers=mine).json()
    gone = post(base, room, text="gone", headers=mine).json()
    assert delete_message(base, room, gone["id"], mine).status_code == 204
    wait_applied(base, room, message["id"])
    holder = SseClient(stream_url(base, room, user="Zed", history=0), headers=mine)
    try:
        assert connected(holder)
        before = end_offsets()
        refused(react(base, room, message["id"], "ann", emoji="💩"), 422, "invalid_emoji")
        refused(react(base, room, message["id"], "ann", emoji="👍👍"), 422, "invalid_emoji")
        refused(react(base, room, str(int(gone["id"]) + 10**6), "ann"), 404, "message_not_found")
        refused(react(base, room, gone["id"], "ann"), 409, "message_deleted")
        refused(react(base, room, message["id"], "zed"), 409, "name_taken")  # another session holds it
        refused(react(base, room, message["id"], " "), 422, "invalid_user")
        refused(react(base, room, "x", "ann"), 400, "invalid_message_id")
        assert end_offsets() == before
        assert react(base, room, message["id"], "Zed", headers=mine).status_code == 204  # its holder may
    finally:
        holder.close()


def test_a_reply_quotes_its_original_and_says_when_it_is_deleted(stack, end_offsets):
    base, room = stack.settings.gateway_url, new_room("reply")
    mine = session_headers(base)
    original = post(base, room, user="ann", text="first line\nsecond line", headers=mine).json()
    wait_applied(base, room, original["id"])
    response = httpx.post(f"{base}/api/rooms/{room}/messages", timeout=10,
                          json={"user": "bob", "text": "agreed", "reply_to": original["id"]})
    assert response.status_code == 201
    quote_ = {"id": original["id"], "user": "ann", "text": "first line"}
    reply = response.json()
    assert reply["reply_to"] == quote_
    wait_applied(base, room, reply["id"])
    assert shown(base, room, reply["id"])["reply_to"] == quote_
    assert delete_message(base, room, original["id"], mine).status_code == 204
    gone = wait_shown(base, room, reply["id"], lambda m: m["reply_to"].get("deleted"))
    assert gone["reply_to"] == {"id": original["id"], "deleted": True}
    # Refused: deleted, unknown, another room's, not an id; nothing written.
    other = post(base, new_room("reply-other"), text="elsewhere").json()
    before = end_offsets()
    for reply_to in (original["id"], str(int(reply["id"]) + 10**6), other["id"], 5, "5x", ""):
        refused(httpx.post(f"{base}/api/rooms/{room}/messages", timeout=10,
                           json={"user": "bob", "text": "to what?", "reply_to": reply_to}), 422, "invalid_reply_to")
    assert end_offsets() == before


def test_kafka_scrollback_folds_later_edits_reactions_and_deletes_into_older_messages(stack):
    base, room = stack.settings.gateway_url, new_room("change-deep")
    mine = session_headers(base)
    with httpx.Client(base_url=base, timeout=10, headers=mine) as client:
        # Names of their own: per-name budgets are shared by every test of the stack.
        ids = [client.post(f"/api/rooms/{room}/messages", json={"user": f"deep{i % 10}", "text": f"m{i:03}"}
                           ).json()["id"] for i in range(HISTORY_MAX + 30)]
    deep = ids[5]  # only in Kafka now
    assert edit(base, room, deep, "deep, edited", mine).status_code == 200
    assert react(base, room, deep, "bob").status_code == 204
    reply = httpx.post(f"{base}/api/rooms/{room}/messages", headers=mine, timeout=10,
                       json={"user": "deep0", "text": "a reply", "reply_to": ids[6]}).json()
    assert delete_message(base, room, ids[6], mine).status_code == 204
    wait_applied(base, room, reply["id"])
    deadline = time.monotonic() + 20
    while True:
        whole = {m["id"]: m for m in whole_history(base, room)}
        if whole[deep]["text"] == "deep, edited" and "reactions" in whole[deep] and ids[6] not in whole:
            break
        assert time.monotonic() < deadline, "the changes were not folded into the Kafka pages"
        time.sleep(0.2)
    assert whole[deep]["reactions"] == {THUMBS: {"count": 1, "users": ["bob"]}} and "edited_ts" in whole[deep]
    assert whole[reply["id"]]["reply_to"] == {"id": ids[6], "deleted": True}


def test_edits_and_reactions_spend_their_budgets_and_past_them_write_nothing(stack, end_offsets, tmp_path):
    """An edit spends the author's post budget; reactions a per-name budget of their own.
    A separate ingest with small budgets, its address named in X-Forwarded-For."""
    budget, window_s = 3, 600
    with services_beside(stack, ["ingest"], tmp_path, RATE_LIMIT_USER=str(budget),
                         RATE_LIMIT_USER_REACTIONS=str(budget), RATE_LIMIT_WINDOW_S=str(window_s)) as urls:
        base, room, me = urls["ingest"], new_room("change-budget"), {"X-Forwarded-For": "10.250.1.9"}
        mine = {**session_headers(stack.settings.gateway_url), **me}
        id = post(base, room, user="budget-ann", text="v0", headers=mine).json()["id"]
        wait_applied(stack.settings.gateway_url, room, id)
        assert [edit(base, room, id, f"v{i}", mine).status_code for i in (1, 2)] == [200, 200]  # 3 stored
        assert [react(base, room, id, "budget-bob", emoji=e, headers=me).status_code for e in "👍🎉🔥"] == [204] * 3
        before = end_offsets()
        for response in (edit(base, room, id, "v3", mine), react(base, room, id, "budget-bob", emoji="🚀", headers=me)):
            assert response.status_code == 429, response.text
            assert response.json()["error"]["code"] == "rate_limited"
            assert 1 <= int(response.headers["Retry-After"]) <= window_s
        assert end_offsets() == before
        assert react(base, room, id, "budget-cy", headers=me).status_code == 204  # another name has its own


def test_a_message_full_of_reactions_refuses_one_more_and_still_takes_one_back(stack, end_offsets, tmp_path):
    """REACTIONS_PER_MESSAGE_MAX bounds the (user, emoji) reactions a message holds, whatever
    names one address uses. A separate ingest with a bound of 3."""
    gateway = stack.settings.gateway_url
    with services_beside(stack, ["ingest"], tmp_path, REACTIONS_PER_MESSAGE_MAX="3") as urls:
        base, room, me = urls["ingest"], new_room("react-full"), {"X-Forwarded-For": "10.250.1.10"}
        id = post(base, room, text="vote", headers=me).json()["id"]
        wait_applied(gateway, room, id)
        assert [react(base, room, id, user, emoji=e, headers=me).status_code
                for user, e in (("full-a", THUMBS), ("full-b", THUMBS), ("full-a", "🎉"))] == [204] * 3
        wait_shown(gateway, room, id, lambda m: sum(r["count"] for r in m.get("reactions", {}).values()) == 3)
        before = end_offsets()
        refused(react(base, room, id, "full-c", headers=me), 409, "reactions_full")  # a new name
        refused(react(base, room, id, "full-b", emoji="🔥", headers=me), 409, "reactions_full")  # a new emoji
        assert react(base, room, id, "full-a", headers=me).status_code == 204  # already there: nothing to add
        assert end_offsets() == before
        assert shown(gateway, room, id)["reactions"] == {THUMBS: {"count": 2, "users": ["full-a", "full-b"]},
                                                          "🎉": {"count": 1, "users": ["full-a"]}}
        assert react(base, room, id, "full-a", on=False, headers=me).status_code == 204  # taking back: always
        wait_shown(gateway, room, id, lambda m: m["reactions"][THUMBS]["count"] == 1)
        assert react(base, room, id, "full-c", headers=me).status_code == 204  # room for one again


def counted(stack):
    """Every hop's /metrics as {(name, labels): value}, summed over its workers."""
    samples = {}
    for service in ("ingest", "bridge", "stream"):
        text = httpx.get(stack.settings.service_url(service) + "/metrics", timeout=10).text
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                key = (sample.name, tuple(sorted(sample.labels.items())))
                samples[key] = samples.get(key, 0) + sample.value
    return samples


def grown(before, after, name, **labels):
    def total(samples):
        return sum(v for (n, ls), v in samples.items() if n == name and set(labels.items()) <= set(ls))
    return total(after) - total(before)


def test_each_hop_counts_edits_reactions_and_replies_by_kind(stack):
    base, room = stack.settings.gateway_url, new_room("change-metrics")
    mine = session_headers(base)
    id = post(base, room, user="metrics-ann", text="count me", headers=mine).json()["id"]
    wait_applied(base, room, id)
    reader = SseClient(stream_url(base, room))
    try:
        assert reader.wait_messages(1)
        before = counted(stack)
        assert edit(base, room, id, "counted", mine).status_code == 200
        assert react(base, room, id, "metrics-bob").status_code == 204
        assert httpx.post(f"{base}/api/rooms/{room}/messages", timeout=10,
                          json={"user": "metrics-bob", "text": "yes", "reply_to": id}).status_code == 201
        assert reader.wait_for(lambda c: events(c, "reaction") and events(c, "edit") and len(c.messages()) == 2)
        deadline = time.monotonic() + 10
        while grown(before, after := counted(stack), "chat_stream_events_sent_total", event="reaction") < 1:
            assert time.monotonic() < deadline
            time.sleep(0.1)
    finally:
        reader.close()
    for kind in ("edit", "reaction", "reply"):
        assert grown(before, after, "chat_ingest_changes_total", kind=kind) == 1, kind
    for kind in ("edit", "reaction"):
        assert grown(before, after, "chat_bridge_changes_applied_total", kind=kind, outcome="written") == 1, kind
        assert grown(before, after, "chat_stream_live_received_total", event=kind) >= 1, kind
        assert grown(before, after, "chat_stream_events_sent_total", event=kind) >= 1, kind


def test_while_redis_is_full_edits_reactions_and_replies_are_refused_and_nothing_is_produced(stack, end_offsets):
    """Redis over its maxmemory with noeviction (as the chart runs it): the budget checks
    cannot be made, so each is refused with 503 and Retry-After, never let through."""
    base, room = stack.settings.gateway_url, new_room("change-full")
    mine = session_headers(base)
    id = post(base, room, user="full-ann", text="mine", headers=mine).json()["id"]
    wait_applied(base, room, id)
    before = end_offsets()
    redis = Redis.from_url(stack.settings.redis_url)
    policy = redis.config_get("maxmemory-policy")["maxmemory-policy"]
    redis.config_set("maxmemory-policy", "noeviction")
    redis.config_set("maxmemory", 1)
    try:
        for response in (edit(base, room, id, "while full", mine), react(base, room, id, "full-bob"),
                         httpx.post(f"{base}/api/rooms/{room}/messages", timeout=10,
                                    json={"user": "full-bob", "text": "re", "reply_to": id})):
            assert response.status_code == 503, response.text
            assert response.json()["error"]["code"] == "redis_unavailable"
            assert int(response.headers["Retry-After"]) >= 1
        assert end_offsets() == before
    finally:
        redis.config_set("maxmemory", 0)
        redis.config_set("maxmemory-policy", policy)
        redis.close()
    assert edit(base, room, id, "after", mine).status_code == 200  # back as soon as Redis takes writes
