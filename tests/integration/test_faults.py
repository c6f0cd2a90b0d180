"""Processes die and come back; nothing acknowledged is lost and nothing is shown twice.

Each test restores the stack (supervisord restarts what was killed; stopped programs are
started again) and waits until every service is ready before it ends.
"""

import json
import os
import signal
import threading
import time

import httpx
import pytest
from support import (
    SseClient,
    delete_events,
    delete_message,
    history,
    hub_refills,
    longest_pause,
    new_room,
    post,
    report,
    session_headers,
    stream_url,
    wait_applied,
    whole_history,
)


class Sender(threading.Thread):
    """Posts ``count`` messages into ``room``, retrying each with its client_id until it
    is acknowledged, as the web page does."""

    def __init__(self, base, room, count, pause=0.01, headers=None):
        super().__init__(daemon=True)
        self.base, self.room, self.count, self.pause, self.headers = base, room, count, pause, headers
        self.acked = []
        self.posted_at = []  # time.monotonic() of the attempt that was acknowledged, per message
        self.refusals = 0
        self.client_ids = [f"{room}-{i}" for i in range(count)]

    def run(self):
        for i, client_id in enumerate(self.client_ids):
            while True:
                try:
                    posted_at = time.monotonic()
                    response = post(self.base, self.room, user=f"sender{i % 4}", text=f"m{i}", client_id=client_id,
                                    headers=self.headers)
                    if response.status_code == 201:
                        self.posted_at.append(posted_at)
                        self.acked.append(response.json()["id"])
                        break
                except httpx.HTTPError:
                    pass
                self.refusals += 1
                time.sleep(0.2)
            time.sleep(self.pause)


def assert_everything_once_in_order(clients, sender, timeout=90):
    """Each reader shows every sent message once, in the order sent (one sender, so that is
    Kafka's order), with increasing ids. Messages are matched by client_id: a retry whose
    first attempt was stored but not answered may be acknowledged with its duplicate's id,
    which is never shown."""
    assert len(sender.acked) == sender.count
    for client in clients:
        client.wait_for(lambda c: len(c.messages()) >= sender.count, timeout)
        shown = [m["client_id"] for m in client.messages()]
        assert shown == sender.client_ids, (
            f"lost {set(sender.client_ids) - set(shown)}; repeated {len(shown) - len(set(shown))}")
        ids = [int(m["id"]) for m in client.messages()]
        assert ids == sorted(set(ids))


def kill_9(stack, service):
    """``kill -9`` of the service's process group; returns when the signal went (time.monotonic())."""
    pid = stack.pid(service)
    killed_at = time.monotonic()
    os.killpg(pid, signal.SIGKILL)
    return killed_at


def published_again_s(clients, sender, since, timeout=60):
    """Seconds from ``since`` until a reader got the first message posted after it: after a
    kill of the bridge at ``since``, when the restarted one published again."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        # the sender and the readers append as they go: pair what is there so far (not strict)
        later = {cid for cid, at in zip(sender.client_ids, list(sender.posted_at), strict=False) if at > since}
        arrivals = [at for client in clients
                    for event, at in zip(list(client.received), list(client.arrived), strict=False)
                    if event.event == "message" and event.data and json.loads(event.data)["client_id"] in later]
        if arrivals:
            return round(min(arrivals) - since, 2)
        time.sleep(0.02)
    raise TimeoutError(f"nothing posted after the fault was delivered within {timeout} s")


def fault_mid_flow(stack, fault, name, messages=300, readers=2, after=80, figures=None, room=None, headers=None):
    """Readers follow a room while a sender posts; ``fault(clients, sender)`` strikes after
    ``after`` acks (with ``after=0``, before the sender starts: the readers have no message
    yet). Every reader must end with every acknowledged message once, in order. ``room`` and
    ``headers``: a room of the test's own (a private one) and the session that reads and posts.

    The report's ``longest_pause_s`` is the longest wait any reader had between two
    messages from the fault on: what a person in the room would notice. ``figures(clients,
    sender, struck_at, result)`` adds figures of its own."""
    base = stack.settings.gateway_url
    room = room or new_room("fault")
    clients = [SseClient(stream_url(base, room, history=0), headers=headers, reconnect=True) for _ in range(readers)]
    sender = Sender(base, room, messages, headers=headers)
    try:
        for client in clients:  # the connect is complete (history, then presence): it has its position
            assert client.wait_for(lambda c: any(e.event == "presence" for e in c.received))
        if after:
            sender.start()
        while len(sender.acked) < after:
            time.sleep(0.05)
        struck_at, refusals_before = time.monotonic(), sender.refusals
        result = fault(clients, sender)
        if not after:
            sender.start()
        sender.join(120)
        assert_everything_once_in_order(clients, sender)
        report(name, {
            "messages": messages, "readers": readers, "lost": 0, "duplicated": 0, "out_of_order": 0,
            "refused_then_retried": sender.refusals - refusals_before,
            "reconnects": sum(client.connects - 1 for client in clients),
            "longest_pause_s": round(max(longest_pause(client.message_arrivals(), struck_at) for client in clients), 2),
            **(figures(clients, sender, struck_at, result) if figures else {}),
        })
        return clients, result
    finally:
        for client in clients:
            client.close()
        stack.wait_ready(120)


@pytest.mark.parametrize("service", ["bridge", "stream"])
def test_kill_9_mid_flow_in_a_private_room_loses_and_repeats_nothing(stack, service):
    """A private room's members through a kill: the same invariants as in a public room; the
    restarted service checks their membership again and lets them back in."""
    base = stack.settings.gateway_url
    member = session_headers(base)
    created = httpx.post(f"{base}/api/rooms", json={"private": True}, headers=member, timeout=10)
    assert created.status_code == 201, created.text
    clients, _ = fault_mid_flow(stack, lambda *_: kill_9(stack, service), f"kill-9-{service}-private-room",
                                messages=150, after=40, room=created.json()["room"], headers=member)
    if service == "stream":
        assert all(client.connects >= 2 for client in clients)


@pytest.mark.parametrize("service", ["bridge", "ingest", "stream"])
def test_kill_9_of_a_service_mid_flow_loses_and_repeats_nothing(stack, service):
    figures = None
    if service == "stream":
        figures = lambda *_: {"hub_refills_after_restart": hub_refills(stack)}  # noqa: E731
    if service == "bridge":
        figures = lambda clients, sender, struck_at, killed_at: {  # noqa: E731
            "published_again_s": published_again_s(clients, sender, killed_at)}
    clients, _ = fault_mid_flow(stack, lambda *_: kill_9(stack, service), f"kill-9-{service}", figures=figures)
    if service == "stream":
        assert all(client.connects >= 2 for client in clients)  # they did reconnect and resume


def test_the_bridge_killed_again_as_soon_as_it_publishes_loses_and_repeats_nothing(stack):
    """Two kills in a row: the second strikes the moment the restarted bridge has published
    its first message, within a second or two of its start."""
    def kill_twice(clients, sender):
        published_again = []
        for _ in range(2):
            published_again.append(published_again_s(clients, sender, kill_9(stack, "bridge")))
        return published_again

    fault_mid_flow(stack, kill_twice, "kill-9-bridge-twice",
                   figures=lambda clients, sender, struck_at, result: {"published_again_s": result})


def test_readers_that_had_no_message_yet_resume_exactly_after_a_kill_of_stream(stack):
    """Readers of a new room hold only the position their connect handed them when the
    stream service dies; what is said while it restarts reaches them all the same."""
    clients, _ = fault_mid_flow(stack, lambda *_: kill_9(stack, "stream"), "kill-9-stream-before-any-message",
                                messages=100, after=0,
                                figures=lambda *_: {"hub_refills_after_restart": hub_refills(stack)})
    assert all(client.connects >= 2 for client in clients)


def test_redis_restarted_empty_history_is_rebuilt_from_kafka_and_live_delivery_resumes(stack):
    base = stack.settings.gateway_url
    room = new_room("redisgone")
    before = [post(base, room, text=f"before {i}").json()["id"] for i in range(5)]
    history = lambda: [m["id"] for m in httpx.get(f"{base}/stream/rooms/{room}/history", timeout=10).json()["messages"]]  # noqa: E731
    deadline = time.monotonic() + 20
    while history() != before and time.monotonic() < deadline:
        time.sleep(0.1)
    client = SseClient(stream_url(base, room), reconnect=True)
    try:
        assert client.wait_messages(5)
        stack.ctl("stop", "redis")
        stack.ctl("start", "redis")  # no persistence: it comes back empty
        back_at = time.monotonic()
        after = post(base, room, text="after the restart").json()["id"]
        assert client.wait_messages(6, timeout=60)
        assert [m["id"] for m in client.messages()] == before + [after]
        live_s = client.arrival_of(id=after) - back_at
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if history() == before + [after]:
                    break
            except (httpx.HTTPError, ValueError):
                pass
            time.sleep(0.2)
        assert history() == before + [after]
        report("redis-restarted-empty", {
            "lost": 0, "duplicated": 0, "live_again_s": round(live_s, 2),
            "history_rebuilt_s": round(time.monotonic() - back_at, 2),
        })
    finally:
        client.close()
        stack.wait_ready(120)


def test_with_kafka_down_posts_fail_fast_with_503_and_succeed_once_it_is_back(stack):
    base = stack.settings.gateway_url
    room = new_room("kafkagone")
    assert post(base, room, text="before").status_code == 201
    stack.ctl("stop", "kafka")
    try:
        started = time.monotonic()
        response = post(base, room, text="while down", client_id="down-1")
        elapsed = time.monotonic() - started
        assert response.status_code == 503
        assert response.json()["error"]["code"] == "kafka_unavailable"
        assert int(response.headers["Retry-After"]) >= 1
        assert elapsed < 10  # answered within the bound, not hung
    finally:
        stack.ctl("start", "kafka")
    back_at = time.monotonic()
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        response = post(base, room, text="while down", client_id="down-1")
        if response.status_code == 201:
            break
        time.sleep(1)
    assert response.status_code == 201
    accepted_s = time.monotonic() - back_at
    stack.wait_ready(120)
    client = SseClient(stream_url(base, room))
    try:
        assert client.wait_for(lambda c: [m["text"] for m in c.messages()] == ["before", "while down"], 60)
        report("kafka-stopped", {
            "lost": 0, "duplicated": 0, "refused_with_503_in_s": round(elapsed, 2),
            "posts_accepted_again_s": round(accepted_s, 2),
            "shown_to_a_new_reader_s": round(client.arrival_of(client_id="down-1") - back_at, 2),
        })
    finally:
        client.close()


def test_a_graceful_stream_restart_drains_clients_who_resume_without_gap_or_repeat(stack):
    def restart():
        started = time.monotonic()
        stack.ctl("restart", "stream")  # SIGTERM: stop accepting, close streams in batches, exit
        return time.monotonic() - started

    clients, restart_s = fault_mid_flow(stack, lambda *_: restart(), "stream-graceful-restart", messages=200, readers=3,
                                        after=50, figures=lambda *_: {"hub_refills_after_restart": hub_refills(stack)})
    assert all(client.connects >= 2 for client in clients)
    # the drain closed the streams itself instead of waiting out gunicorn's graceful timeout
    assert restart_s < 20, restart_s


def test_while_ingest_is_down_the_gateway_answers_a_json_503(stack):
    stack.ctl("stop", "ingest")
    try:
        response = post(stack.settings.gateway_url, new_room("down"), text="anyone?")
        assert response.status_code == 503
        assert response.json()["error"]["code"] == "unavailable"
        assert int(response.headers["Retry-After"]) >= 1
    finally:
        stack.ctl("start", "ingest")
        stack.wait_ready(120)


def test_kill_9_of_the_bridge_between_a_message_and_its_tombstone_the_message_stays_deleted(stack):
    base, room = stack.settings.gateway_url, new_room("delete-kill")
    mine = session_headers(base)
    gone = post(base, room, text="about to be taken back", headers=mine).json()["id"]
    kept = post(base, room, text="stays", headers=mine).json()["id"]
    wait_applied(base, room, kept)
    reader = SseClient(stream_url(base, room), reconnect=True)
    try:
        assert reader.wait_messages(2)
        stack.kill("bridge")  # it applied the message; it dies before the tombstone
        assert delete_message(base, room, gone, mine).status_code == 204  # Kafka holds it: no bridge needed
        assert reader.wait_for(lambda c: delete_events(c), 90)  # the restarted bridge applies it
        stack.wait_ready(120)
        assert [m["id"] for m in reader.messages()] == [gone, kept]  # shown once, then taken back
        assert [e[1] for e in delete_events(reader)] == [{"id": gone}]
        assert [m["id"] for m in history(base, room)["messages"]] == [kept]
        fresh = SseClient(stream_url(base, room))
        try:
            assert fresh.wait_for(lambda c: any(e.event == "presence" for e in c.received))
            assert [m["id"] for m in fresh.messages()] == [kept]
        finally:
            fresh.close()
    finally:
        reader.close()
        stack.wait_ready(120)


def test_redis_restarted_empty_after_a_delete_the_message_never_comes_back(stack):
    """Redis loses the deleted ids with everything else; the bridge's rebuild from Kafka
    brings them back with the history, also for the part of the room only Kafka holds."""
    base, room = stack.settings.gateway_url, new_room("delete-redis")
    mine = session_headers(base)
    gone = post(base, room, text="taken back", headers=mine).json()["id"]
    with httpx.Client(base_url=base, timeout=10) as client:  # enough to push it out of the Redis window
        ids = [client.post(f"/api/rooms/{room}/messages", json={"user": "ann", "text": f"after {i}"}).json()["id"]
               for i in range(110)]
    assert delete_message(base, room, gone, mine).status_code == 204
    wait_applied(base, room, ids[-1])
    assert [m["id"] for m in whole_history(base, room)] == ids
    reader = SseClient(stream_url(base, room, history=5), reconnect=True)
    try:
        assert reader.wait_messages(5)
        stack.ctl("stop", "redis")
        stack.ctl("start", "redis")  # no persistence: it comes back empty
        after = post(base, room, text="after the restart").json()["id"]
        assert reader.wait_for(lambda c: after in [m["id"] for m in c.messages()], 60)
        stack.wait_ready(120)
        deadline = time.monotonic() + 60
        while True:
            try:
                if [m["id"] for m in history(base, room, limit=1)["messages"]] == [after]:
                    break
            except (AssertionError, httpx.HTTPError):  # 503 while the bridge rebuilds
                pass
            assert time.monotonic() < deadline, "history not rebuilt"
            time.sleep(0.2)
        assert [m["id"] for m in whole_history(base, room)] == ids + [after]
        assert gone not in [m["id"] for m in reader.messages()]
    finally:
        reader.close()
        stack.wait_ready(120)


def _edit(base, room, id, text, headers):
    return httpx.patch(f"{base}/api/rooms/{room}/messages/{id}", json={"text": text}, headers=headers, timeout=10)


def _react(base, room, id, user):
    return httpx.put(f"{base}/api/rooms/{room}/messages/{id}/reactions/%F0%9F%91%8D", json={"user": user},
                     timeout=10)


def _changes(client, kind):
    return [json.loads(e.data) for e in client.received if e.event == kind]


def test_kill_9_of_the_bridge_between_a_message_and_its_edit_and_reaction_each_arrives_once(stack):
    base, room = stack.settings.gateway_url, new_room("change-kill")
    mine = session_headers(base)
    id = post(base, room, user="kill-ann", text="helo", headers=mine).json()["id"]
    wait_applied(base, room, id)
    reader = SseClient(stream_url(base, room), reconnect=True)
    try:
        assert reader.wait_messages(1)
        stack.kill("bridge")  # it applied the message; it dies before the changes
        assert _edit(base, room, id, "hello", mine).status_code == 200  # Kafka holds them: no bridge needed
        assert _react(base, room, id, "bob").status_code == 204
        assert reader.wait_for(lambda c: _changes(c, "reaction"), 90)  # the restarted bridge applies them
        stack.wait_ready(120)
        assert [(e["id"], e["text"]) for e in _changes(reader, "edit")] == [(id, "hello")]
        assert [e["reactions"] for e in _changes(reader, "reaction")] == [{"👍": {"count": 1, "users": ["bob"]}}]
        [shown] = history(base, room)["messages"]
        assert shown["text"] == "hello" and shown["reactions"] == {"👍": {"count": 1, "users": ["bob"]}}
    finally:
        reader.close()
        stack.wait_ready(120)


def test_redis_restarted_empty_after_an_edit_and_reactions_they_come_back_from_kafka(stack):
    base, room = stack.settings.gateway_url, new_room("change-redis")
    mine = session_headers(base)
    id = post(base, room, user="redis-ann", text="first", headers=mine).json()["id"]
    assert _edit(base, room, id, "latest", mine).status_code == 200
    for user in ("redis-ann", "redis-bob"):
        assert _react(base, room, id, user).status_code == 204
    last = post(base, room, user="redis-ann", text="after").json()["id"]
    wait_applied(base, room, last)
    expected = {"👍": {"count": 2, "users": ["redis-ann", "redis-bob"]}}
    deadline = time.monotonic() + 20
    while history(base, room)["messages"][0].get("reactions") != expected:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    stack.ctl("stop", "redis")
    stack.ctl("start", "redis")  # no persistence: it comes back empty
    stack.wait_ready(120)
    deadline = time.monotonic() + 60
    while True:
        try:
            messages = history(base, room)["messages"]
            if [m["id"] for m in messages] == [id, last]:
                break
        except (AssertionError, httpx.HTTPError):  # 503 while the bridge rebuilds
            pass
        assert time.monotonic() < deadline, "history not rebuilt"
        time.sleep(0.2)
    assert messages[0]["text"] == "latest" and "edited_ts" in messages[0]
    assert messages[0]["reactions"] == expected
