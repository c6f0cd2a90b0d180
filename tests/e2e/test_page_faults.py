"""The page through a stream service crash and an ingest outage."""

import re
import threading
import time

import httpx
import redis
from playwright.sync_api import expect
from room_page import join, room_history, send, shown, texts, wait_until
from support import new_room

from chat_common.messages import meta_key


class Sender(threading.Thread):
    """Posts ``count`` messages at a steady pace and keeps the acknowledged ids."""

    def __init__(self, base, room, count, pause_s=0.04):
        super().__init__(daemon=True)
        self.base, self.room, self.count, self.pause_s = base, room, count, pause_s
        self.acked = []

    def run(self):
        with httpx.Client(base_url=self.base, timeout=10) as client:
            for i in range(self.count):
                response = client.post(f"/api/rooms/{self.room}/messages", json={"user": "jay", "text": f"flow {i:03}"})
                if response.status_code == 201:
                    self.acked.append(response.json()["id"])
                time.sleep(self.pause_s)


def test_the_stream_service_dies_mid_chat_and_each_page_shows_every_missed_message_once_in_order(open_page, stack):
    base = stack.settings.gateway_url
    room = new_room("e2e-crash")
    ann, bob = join(open_page(), room, "ann"), join(open_page(), room, "bob")
    sender = Sender(base, room, 80)
    try:
        sender.start()
        assert wait_until(lambda: len(sender.acked) >= 15)
        stack.kill("stream")
        for page in (ann, bob):
            expect(page.locator("#connection")).to_have_attribute("data-state", "reconnecting", timeout=10000)
            expect(page.locator("#connection")).to_contain_text("Reconnecting")
        send(ann, "sent while the stream was down")  # ingest is up: stored, shown at once
        expect(ann.locator("#messages > li.own")).to_have_attribute("data-state", "sent")
        sender.join(60)
        assert len(sender.acked) == 80
        own = ann.locator("#messages > li.own").get_attribute("data-id")
        expected = sorted(sender.acked + [own], key=int)
        for page in (ann, bob):
            expect(page.locator("#connection")).to_have_attribute("data-state", "connected", timeout=30000)
            assert wait_until(lambda page=page: len(shown(page)) >= len(expected), timeout=30)
            page.wait_for_timeout(500)
            assert [m["id"] for m in shown(page)] == expected  # each once, in Kafka order
            assert texts(page).count("sent while the stream was down") == 1
        assert not ann.problems and not bob.problems
    finally:
        sender.join(60)
        stack.wait_ready(120)


def test_a_send_during_an_ingest_outage_fails_visibly_and_its_retry_shows_once(open_page, stack):
    base = stack.settings.gateway_url
    room = new_room("e2e-outage")
    page = join(open_page(), room, "kim")
    item = page.locator("#messages > li", has_text="sent during the outage")
    stack.ctl("stop", "ingest")
    try:
        send(page, "sent during the outage")
        expect(item).to_have_attribute("data-state", "failed")
        # Plain words: the gateway's JSON error if it sends one, else the page's own.
        expect(page.locator("#composer-error")).to_have_text(re.compile(r"^[^<>{}]*(retry|try again)[^<>{}]*$", re.I))
        expect(item).to_contain_text("Not sent")
    finally:
        stack.ctl("start", "ingest")
        stack.wait_ready(120)
    item.get_by_role("button", name="Retry sending this message").click()
    expect(item).to_have_attribute("data-state", "sent")
    expect(page.locator("#composer-error")).to_be_empty()
    assert wait_until(lambda: [m["text"] for m in room_history(base, room)] == ["sent during the outage"])
    page.wait_for_timeout(500)
    assert texts(page) == ["sent during the outage"]
    assert shown(page)[0]["id"] == room_history(base, room)[0]["id"]


def test_a_lost_reply_leaves_no_double_the_streamed_copy_marks_the_message_sent(open_page, stack):
    base = stack.settings.gateway_url
    room = new_room("e2e-lost")
    page = join(open_page(), room, "lee")

    def lose_the_reply(route):
        route.fetch()  # the server stores the message...
        route.abort("connectionreset")  # ...and the 201 never reaches the page

    page.route(f"**/api/rooms/{room}/messages", lose_the_reply)
    send(page, "my reply got lost")
    item = page.locator("#messages > li", has_text="my reply got lost")
    # Whether the failure or the stream's copy comes first, the message ends up sent, once.
    expect(item).to_have_attribute("data-state", "sent")
    expect(item.get_by_role("button", name="Retry sending this message")).to_have_count(0)
    page.wait_for_timeout(500)
    assert texts(page) == ["my reply got lost"]
    assert [m["text"] for m in room_history(base, room)] == ["my reply got lost"]


def test_a_page_that_has_seen_no_message_yet_shows_everything_said_while_the_stream_was_away(open_page, stack):
    """The page holds only the position its connect handed it; more was said meanwhile
    than a fresh connect's history (50) would show."""
    base = stack.settings.gateway_url
    room = new_room("e2e-empty")
    page = join(open_page(), room, "ann")
    stack.ctl("stop", "stream")
    try:
        expect(page.locator("#connection")).to_have_attribute("data-state", "reconnecting", timeout=10000)
        with httpx.Client(base_url=base, timeout=10) as client:
            said = [client.post(f"/api/rooms/{room}/messages", json={"user": f"jay{i % 5}", "text": f"away {i:03}"})
                    .json()["id"] for i in range(60)]
        store = redis.Redis.from_url(stack.settings.redis_url)  # the stream service, and its history reads, are away
        assert wait_until(lambda: store.hget(meta_key(room), "last") == said[-1].encode())  # the bridge applied all
    finally:
        stack.ctl("start", "stream")
    try:
        expect(page.locator("#connection")).to_have_attribute("data-state", "connected", timeout=30000)
        assert wait_until(lambda: len(shown(page)) >= len(said), timeout=30)
        page.wait_for_timeout(500)
        assert [m["id"] for m in shown(page)] == said  # each once, in Kafka order
        assert not page.problems
    finally:
        stack.wait_ready(120)
