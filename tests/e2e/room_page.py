"""What a test does with the chat page, in a person's terms."""

import json
import pathlib
import re
import time

import httpx
from playwright.sync_api import expect

ARTIFACTS = pathlib.Path(__file__).resolve().parents[2] / "test-artifacts"
DESKTOP = {"width": 1200, "height": 800}
MOBILE = {"width": 360, "height": 740}


def join(page, room, name):
    """Open the room's address and, if the page asks, give the name."""
    page.goto(f"/r/{room}")
    name_form = page.locator("#name-form")
    expect(page.locator("#composer:not([hidden]), #name-form:not([hidden])")).to_be_visible()
    if name_form.is_visible():
        page.get_by_label("Your name in this room").fill(name)
        name_form.get_by_role("button", name="Join").click()
    expect(page.get_by_role("textbox", name="Message")).to_be_visible()
    expect(page.locator("#connection")).to_have_attribute("data-state", "connected")
    return page


def send(page, text):
    box = page.get_by_role("textbox", name="Message")
    box.fill(text)
    box.press("Enter")


def shown(page):
    """The messages on the page, top to bottom: [{id, user, text, state, own, edited}]."""
    return page.locator("#messages > li.msg").evaluate_all(
        """items => items.map(li => ({
            id: li.dataset.id ?? null,
            user: li.dataset.user,
            text: li.querySelector('.msg-text').textContent,
            state: li.dataset.state,
            own: li.classList.contains('own'),
            edited: Boolean(li.querySelector('.msg-edited')),
            time: li.querySelector('time').textContent,
            ts: Number(li.dataset.ts),
        }))"""
    )


def message(page, text):
    """The message whose text is exactly ``text`` (a reply quoting it is another message)."""
    return page.locator("#messages > li.msg").filter(
        has=page.locator(".msg-text", has_text=re.compile(f"^{re.escape(text)}$")))


def texts(page):
    return [m["text"] for m in shown(page)]


def wait_until(predicate, timeout=20, interval=0.1):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()


def wait_shown(page, count, timeout=20):
    """Wait until ``count`` messages are shown, all sent; return them."""
    wait_until(lambda: len([m for m in shown(page) if m["state"] == "sent" and m["id"]]) >= count, timeout)
    return shown(page)


def wait_remembered(page, room, message_id, timeout=20):
    """Wait until the page remembers ``message_id`` as the newest message seen in ``room`` (for the
    "new since you left" divider). It does once the stream brought it, which for the page's
    own message can be after the POST's answer showed it sent."""
    seen = "room => (JSON.parse(localStorage.getItem('chatroom.seen')) ?? {})[room] ?? null"
    assert wait_until(lambda: page.evaluate(seen, room) == message_id, timeout), f"{message_id} not remembered"


def room_history(base_url, room):
    """Every message the room holds, oldest first, read from the history endpoint."""
    messages, before = [], None
    while True:
        query = "?limit=500" + (f"&before={before}" if before else "")
        page = httpx.get(f"{base_url}/stream/rooms/{room}/history{query}", timeout=20).json()
        messages = page["messages"] + messages
        if not page["more"] or not page["messages"]:
            return messages
        before = page["messages"][0]["id"]


def assert_in_kafka_order(messages, expected_ids):
    ids = [m["id"] for m in messages]
    assert ids == [str(i) for i in sorted(int(i) for i in expected_ids)], json.dumps(ids)


# The browser: Debian's Chromium, as the e2e fixtures and the cluster's chat script launch it.
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def is_problem(message):
    """Console errors, except the network failures that fault tests cause on purpose
    (CSP refusals and script errors stay problems)."""
    return message.type == "error" and not message.text.startswith("Failed to load resource")
