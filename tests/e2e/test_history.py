"""Scrolling back through a room, and coming back after the room's window moved on."""

import httpx
from playwright.sync_api import expect
from room_page import join, send, shown, wait_until
from support import new_room, wait_applied

HISTORY_MAX = 100  # the Redis window of the test stack (tests/conftest.py)


def post_many(base, room, count, user="fay", prefix="message"):
    """Post ``count`` messages one after another and wait until the bridge applied
    them; return their ids (Kafka order)."""
    with httpx.Client(base_url=base, timeout=10) as client:
        ids = []
        for i in range(count):
            response = client.post(f"/api/rooms/{room}/messages", json={"user": user, "text": f"{prefix} {i:03}"})
            assert response.status_code == 201, response.text
            ids.append(response.json()["id"])
    wait_applied(base, room, ids[-1])
    return ids


def scroll_to_the_start(page):
    scroller = page.locator("#scroller")
    scroller.hover()
    note = page.locator("#history-note")
    for _ in range(40):
        if "This is the start" in (note.text_content() or ""):
            return
        page.mouse.wheel(0, -4000)
        page.wait_for_timeout(150)
    expect(note).to_contain_text("This is the start")


def test_scrolling_up_reaches_past_the_redis_window_into_kafka_without_gap_or_duplicate(open_page, stack):
    base = stack.settings.gateway_url
    room = new_room("e2e-deep")
    ids = post_many(base, room, HISTORY_MAX + 30)
    page = join(open_page(), room, "gil")

    # Joining shows the latest 50, scrolled to the bottom.
    assert wait_until(lambda: len(shown(page)) == 50)
    assert [m["id"] for m in shown(page)] == ids[-50:]
    assert page.locator("#scroller").evaluate("s => s.scrollHeight - s.scrollTop - s.clientHeight") < 50

    # Scrolling to the top loads the page before, and what was on screen stays on screen.
    first = page.locator(f'#messages > li[data-id="{ids[-50]}"]')
    page.locator("#scroller").evaluate("s => { s.scrollTop = 0; }")
    assert wait_until(lambda: len(shown(page)) == 100)
    box, view = first.bounding_box(), page.locator("#scroller").bounding_box()
    assert view["y"] <= box["y"] < view["y"] + view["height"]

    # And on, through the messages only Kafka still holds, to the very first.
    scroll_to_the_start(page)
    messages = shown(page)
    assert [m["id"] for m in messages] == ids
    assert [m["text"] for m in messages] == [f"message {i:03}" for i in range(len(ids))]
    expect(page.get_by_role("button", name="Load older messages")).to_be_hidden()
    assert not page.problems


def test_back_online_after_the_window_moved_on_the_page_starts_again_from_the_latest(open_page, stack):
    base = stack.settings.gateway_url
    room = new_room("e2e-reset")
    page = join(open_page(), room, "hal")
    send(page, "just before going offline")
    assert wait_until(lambda: [m["state"] for m in shown(page)] == ["sent"] and shown(page)[0]["id"])

    page.context.set_offline(True)
    expect(page.locator("#connection")).to_have_attribute("data-state", "offline")
    expect(page.locator("#connection")).to_contain_text("Offline")
    ids = post_many(base, room, HISTORY_MAX + 20, user="ida", prefix="while away")
    page.context.set_offline(False)

    # The last id seen left the window: the stream says reset, the page shows the latest 50.
    expect(page.locator("#connection")).to_have_attribute("data-state", "connected")
    latest = lambda: [m["id"] for m in shown(page)]  # noqa: E731
    assert wait_until(lambda: latest() == ids[-50:], timeout=45), (
        f"shown {len(latest())}: {latest()[:3]} … {latest()[-3:]}; expected {ids[-50]} … {ids[-1]}; "
        f"announced {page.locator('#announcer').text_content()!r}")
    expect(page.locator("#announcer")).to_have_text("Reloaded the latest messages.")
    # Scrolling back still reaches everything, once, in order.
    scroll_to_the_start(page)
    messages = shown(page)
    away = [f"while away {i:03}" for i in range(len(ids))]
    assert [m["text"] for m in messages] == ["just before going offline"] + away
    assert len({m["id"] for m in messages}) == len(messages)
    assert not page.problems


def test_new_messages_follow_at_the_bottom_and_wait_behind_a_pill_while_reading_back(open_page, stack):
    base = stack.settings.gateway_url
    room = new_room("e2e-follow")
    post_many(base, room, 40, user="pat")
    page = join(open_page(), room, "quin")
    scroller, pill = page.locator("#scroller"), page.locator("#new-pill")
    distance = lambda: scroller.evaluate("s => s.scrollHeight - s.scrollTop - s.clientHeight")  # noqa: E731
    assert wait_until(lambda: len(shown(page)) == 40)

    # At the bottom, a new message is followed.
    post_many(base, room, 1, user="pat", prefix="followed")
    assert wait_until(lambda: len(shown(page)) == 41)
    assert wait_until(lambda: distance() < 50)
    expect(pill).to_be_hidden()

    # Reading back, the view stays put and a pill counts what arrived below.
    scroller.evaluate("s => { s.scrollTop = s.scrollHeight / 2; }")
    page.wait_for_timeout(300)
    top = scroller.evaluate("s => s.scrollTop")
    post_many(base, room, 2, user="pat", prefix="waiting")
    expect(pill).to_have_text("Jump to latest (2 new)")
    assert scroller.evaluate("s => s.scrollTop") == top
    # The page's own message always brings the view down.
    send(page, "mine")
    assert wait_until(lambda: distance() < 50)
    expect(pill).to_be_hidden()
    scroller.evaluate("s => { s.scrollTop = 0; }")
    post_many(base, room, 1, user="pat", prefix="one more")
    expect(pill).to_have_text("Jump to latest (1 new)")
    pill.click()
    assert wait_until(lambda: distance() < 50)
    expect(pill).to_be_hidden()
    assert not page.problems
