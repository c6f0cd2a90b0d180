"""Processes die and come back; nothing acknowledged is lost and nothing is shown twice.

Each test restores the stack (supervisord restarts what was killed; stopped programs are
started again) and waits until every service is ready before it ends.
"""

import threading
import time

import httpx

from support import SseClient, new_room, post, stream_url


class Sender(threading.Thread):
    """Posts ``count`` messages into ``room``, retrying each with its client_id until it
    is acknowledged, as the web page does."""

    def __init__(self, base, room, count, pause=0.01):
        super().__init__(daemon=True)
        self.base, self.room, self.count, self.pause = base, room, count, pause
        self.acked = []
        self.refusals = 0

    def run(self):
        for i in range(self.count):
            client_id = f"{self.room}-{i}"
            while True:
                try:
                    response = post(self.base, self.room, user=f"sender{i % 4}", text=f"m{i}", client_id=client_id)
                    if response.status_code == 201:
                        self.acked.append(response.json()["id"])
                        break
                except httpx.HTTPError:
                    pass
                self.refusals += 1
                time.sleep(0.2)
            time.sleep(self.pause)


def assert_everything_once_in_order(clients, sender, timeout=90):
    expected = sorted(set(sender.acked), key=int)
    assert len(expected) == sender.count
    for client in clients:
        client.wait_for(lambda c: len(c.messages()) >= len(expected), timeout)
        ids = [m["id"] for m in client.messages()]
        assert ids == expected, f"lost {set(expected) - set(ids)}; extra {len(ids) - len(set(ids))}"


def test_killing_the_bridge_mid_flow_loses_and_repeats_nothing(stack):
    base = stack.settings.gateway_url
    room = new_room("killbridge")
    clients = [SseClient(stream_url(base, room, history=0), reconnect=True) for _ in range(2)]
    sender = Sender(base, room, 300)
    try:
        sender.start()
        while len(sender.acked) < 80:
            time.sleep(0.05)
        stack.kill("bridge")
        sender.join(120)
        assert_everything_once_in_order(clients, sender)
    finally:
        for client in clients:
            client.close()
        stack.wait_ready(120)


def test_killing_the_stream_service_mid_flow_clients_resume_without_gap_or_repeat(stack):
    base = stack.settings.gateway_url
    room = new_room("killstream")
    clients = [SseClient(stream_url(base, room, history=0), reconnect=True) for _ in range(2)]
    sender = Sender(base, room, 300)
    try:
        sender.start()
        while len(sender.acked) < 80:
            time.sleep(0.05)
        stack.kill("stream")
        sender.join(120)
        assert_everything_once_in_order(clients, sender)
        assert all(client.connects >= 2 for client in clients)  # they did reconnect
    finally:
        for client in clients:
            client.close()
        stack.wait_ready(120)


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
        after = post(base, room, text="after the restart").json()["id"]
        assert client.wait_messages(6, timeout=60)
        assert [m["id"] for m in client.messages()] == before + [after]
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if history() == before + [after]:
                    break
            except (httpx.HTTPError, ValueError):
                pass
            time.sleep(0.2)
        assert history() == before + [after]
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
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        response = post(base, room, text="while down", client_id="down-1")
        if response.status_code == 201:
            break
        time.sleep(1)
    assert response.status_code == 201
    stack.wait_ready(120)
    client = SseClient(stream_url(base, room))
    try:
        assert client.wait_for(lambda c: [m["text"] for m in c.messages()] == ["before", "while down"], 60)
    finally:
        client.close()


def test_a_graceful_stream_restart_drains_clients_who_resume_without_gap_or_repeat(stack):
    base = stack.settings.gateway_url
    room = new_room("drain")
    clients = [SseClient(stream_url(base, room, history=0), reconnect=True) for _ in range(3)]
    sender = Sender(base, room, 200)
    try:
        sender.start()
        while len(sender.acked) < 50:
            time.sleep(0.05)
        started = time.monotonic()
        stack.ctl("restart", "stream")  # SIGTERM: stop accepting, close streams in batches, exit
        restart_s = time.monotonic() - started
        sender.join(120)
        assert_everything_once_in_order(clients, sender)
        assert all(client.connects >= 2 for client in clients)
        # the drain closed the streams itself instead of waiting out gunicorn's graceful timeout
        assert restart_s < 20, restart_s
    finally:
        for client in clients:
            client.close()
        stack.wait_ready(120)


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
