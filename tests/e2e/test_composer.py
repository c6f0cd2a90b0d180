"""Writing and sending: the length limit, the rate limit and a keyboard-only visit."""

import re
import uuid

import redis
from playwright.sync_api import expect
from room_page import join, room_history, send, shown, texts, wait_shown, wait_until
from support import new_room


def test_too_long_text_is_explained_while_typing_and_not_sent(open_page, stack):
    room = new_room("e2e-long")
    page = join(open_page(), room, "max")
    box, count = page.get_by_role("textbox", name="Message"), page.locator("#composer-count")
    box.fill("x" * 3700)
    expect(count).to_have_text("3700 / 4000")
    expect(count).to_have_attribute("data-level", "near")
    box.press("End")
    box.type("x" * 301)
    expect(count).to_have_text("4001 / 4000")
    expect(count).to_have_attribute("data-level", "over")
    expect(box).to_have_attribute("aria-invalid", "true")
    box.press("Enter")
    expect(page.locator("#composer-error")).to_have_text(
        "Too long: a message is at most 4000 characters, this one has 4001. Remove 1 to send it.")
    assert shown(page) == [] and box.input_value() == "x" * 4001

    box.press("Backspace")
    expect(page.locator("#composer-error")).to_be_empty()
    box.press("Enter")
    messages = wait_shown(page, 1)
    assert messages[0]["text"] == "x" * 4000  # the server's limit, exactly
    expect(count).to_have_text("0 / 4000")


def test_a_rate_limited_send_says_how_long_to_wait_and_can_be_retried(open_page, stack):
    room = new_room("e2e-rate")
    name = f"burst-{uuid.uuid4().hex[:6]}"
    page = join(open_page(), room, name)
    # This user has used up the window: ingest's counter, as a burst would have left it.
    limits = redis.Redis.from_url(stack.settings.redis_url)
    key = f"chat:ratelimit:user:{name}"
    limits.set(key, 1_000_000, ex=30)
    try:
        send(page, "one too many")
        item = page.locator("#messages > li", has_text="one too many")
        expect(item).to_have_attribute("data-state", "failed")
        error = page.locator("#composer-error")
        expect(error).to_have_text(re.compile(r"^Too many messages; wait \d+ s before sending again\.$"))
        wait_s = int(error.text_content().split("wait ")[1].split(" s")[0])
        assert 1 <= wait_s <= 30
    finally:
        limits.delete(key)
    item.get_by_role("button", name="Retry sending this message").click()
    expect(item).to_have_attribute("data-state", "sent")
    assert wait_until(lambda: [m["text"] for m in room_history(stack.settings.gateway_url, room)] == ["one too many"])
    assert texts(page) == ["one too many"]


def test_keyboard_only_pick_a_name_join_type_and_send(open_page, stack):
    room = new_room("e2e-keys")
    page = open_page()
    page.goto("/")
    focused = lambda: page.evaluate("document.activeElement.id")  # noqa: E731
    assert focused() == "lobby-name"
    page.keyboard.type("nia")
    page.keyboard.press("Tab")
    assert focused() == "lobby-room"
    page.keyboard.type(room)
    page.keyboard.press("Enter")
    page.wait_for_url(f"**/r/{room}")
    expect(page.locator("#connection")).to_have_attribute("data-state", "connected")
    assert focused() == "composer-text"
    page.keyboard.type("first line")
    page.keyboard.press("Shift+Enter")
    page.keyboard.type("second line")
    page.keyboard.press("Enter")
    messages = wait_shown(page, 1)
    assert messages[0]["text"] == "first line\nsecond line" and messages[0]["own"]
    assert focused() == "composer-text"
    page.keyboard.press("Tab")
    assert focused() == "" and page.evaluate("document.activeElement.textContent") == "Send"
    # Every control has a name a screen reader can say.
    for role, name in [("textbox", "Message"), ("button", "Send"), ("link", "Chatroom: all rooms")]:
        expect(page.get_by_role(role, name=name)).to_have_count(1)
    expect(page.get_by_role("status")).to_have_text("Connected")
    # The lobby remembers the room, reachable by keyboard too.
    page.goto("/")
    expect(page.get_by_role("list", name="Your recent rooms").get_by_role("link", name=f"#{room}")).to_be_visible()
    assert page.get_by_label("Your name", exact=True).input_value() == "nia"
    assert not page.problems
