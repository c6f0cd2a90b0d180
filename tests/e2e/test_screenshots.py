"""The page at 360 px and on a desktop, light and dark: fits, and is saved for a look.

Pictures go to test-artifacts/screenshots/; `make screenshots` runs this file alone and copies
them into docs/screenshots/ for the README.
"""

import json
from urllib.parse import quote

import httpx
import pytest
from playwright.sync_api import expect
from room_page import ARTIFACTS, DESKTOP, MOBILE, join, message, room_history, wait_shown, wait_until
from support import new_room, session_headers

CONVERSATION = [
    ("Maya", "Morning! Is the release still on for today?"),
    ("Theo", "Yes, after the standup. The notes are here: https://example.com/releases/2.4"),
    ("you", "Great, I'll watch the dashboards while it rolls out."),
    ("Maya", "Thanks!\nI'll post in here if the canary looks off."),
    ("Theo", "Deploying now"),
    ("you", "Error rate flat, latency normal. Looks good from here!"),
    ("Maya", "Canary is clean too. Closing the incident channel."),
]
LEFT_AFTER = 2  # "you" left the room after this message, and came back for the rest
EDITS = {4: "Deploying 2.4 now…"}  # message index -> the text it was changed to
REPLIES = {6: 5}  # message index -> the index of the message it answers
REACTIONS = [(5, "🎉", "Maya"), (5, "🎉", "Theo"), (5, "👍", "Maya"), (4, "🚀", "sam")]


@pytest.fixture(scope="module")
def conversation(stack):
    """A room with a short conversation: a reply, reactions, an edited message; "you" is the
    person looking at it. Returns the room and the id of the last message "you" saw before
    leaving."""
    base = stack.settings.gateway_url
    room = new_room("release")
    ids = []
    with httpx.Client(base_url=base, timeout=10, headers=session_headers(base)) as client:
        for index, (user, text) in enumerate(CONVERSATION):
            body = {"user": "sam" if user == "you" else user, "text": text}
            if index in REPLIES:
                body["reply_to"] = ids[REPLIES[index]]
            response = client.post(f"/api/rooms/{room}/messages", json=body)
            assert response.status_code == 201, response.text
            ids.append(response.json()["id"])
        for index, text in EDITS.items():  # the same session as the post: its author's
            assert client.patch(f"/api/rooms/{room}/messages/{ids[index]}", json={"text": text}).status_code == 200
    for index, emoji, user in REACTIONS:
        response = httpx.put(f"{base}/api/rooms/{room}/messages/{ids[index]}/reactions/{quote(emoji)}",
                             json={"user": user}, timeout=10)
        assert response.status_code == 204, response.text
    last = ids[REACTIONS[-1][0]]
    assert wait_until(lambda: "reactions" in next(m for m in room_history(base, room) if m["id"] == last))
    return room, ids[LEFT_AFTER]


def came_back(page, room, seen_id):
    """The page as a browser that last showed ``seen_id`` in ``room`` has it."""
    seen = json.dumps(json.dumps({room: seen_id}))
    page.add_init_script(f"localStorage.setItem('chatroom.seen', {seen})")
    return page


@pytest.mark.parametrize("scheme", ["light", "dark"])
@pytest.mark.parametrize("size, viewport", [("desktop", DESKTOP), ("mobile", MOBILE)])
def test_the_room_fits_and_reads_well(open_page, conversation, scheme, size, viewport):
    room, seen_id = conversation
    page = open_page(viewport=viewport, color_scheme=scheme, timezone_id="Europe/Paris")
    join(came_back(page, room, seen_id), room, "sam")
    join(open_page(), room, "Maya")  # someone else is here too
    expect(page.locator("#people-summary")).to_contain_text("2 here")
    messages = wait_shown(page, len(CONVERSATION))
    assert [m["own"] for m in messages] == [user == "you" for user, _ in CONVERSATION]
    assert [m["text"] for m in messages] == [EDITS.get(i, text) for i, (_, text) in enumerate(CONVERSATION)]
    expect(page.locator("#new-divider")).to_be_visible()
    expect(page.locator(".msg-edited")).to_have_count(len(EDITS))
    expect(page.locator(".msg-quote")).to_have_count(len(REPLIES))
    expect(message(page, CONVERSATION[5][1]).locator(".chip")).to_have_text(["👍 1", "🎉 2"])
    expect(message(page, EDITS[4]).locator(".chip")).to_have_attribute("aria-pressed", "true")
    last = message(page, CONVERSATION[-1][1])
    last.hover()
    last.get_by_role("button", name="Reply to this message").click()
    expect(page.locator("#reply-bar")).to_contain_text("Replying to Maya")
    page.locator("#scroller").evaluate("s => { s.scrollTop = s.scrollHeight; }")
    page.get_by_role("textbox", name="Message").fill("Thanks both! Closing the release ticket.")
    page.mouse.move(0, 0)

    width = viewport["width"]
    assert page.evaluate("document.documentElement.scrollWidth") <= width  # no sideways scrolling
    assert page.locator("#scroller").evaluate("s => s.scrollWidth <= s.clientWidth")
    for selector in ("#composer-text", ".send", "#connection", "#name-button"):
        box = page.locator(selector).bounding_box()
        assert box and box["x"] >= 0 and box["x"] + box["width"] <= width, selector
    ARTIFACTS.joinpath("screenshots").mkdir(parents=True, exist_ok=True)
    page.screenshot(path=ARTIFACTS / "screenshots" / f"room-{size}-{scheme}.png")
    assert not page.problems


@pytest.mark.parametrize("size, viewport", [("desktop", DESKTOP), ("mobile", MOBILE)])
def test_the_lobby_fits(open_page, conversation, size, viewport):
    room, _ = conversation
    page = open_page(viewport=viewport)
    join(page, room, "sam")
    page.goto("/")
    recent = page.get_by_role("list", name="Your recent rooms")
    expect(recent.get_by_role("link", name=f"#{room}")).to_be_visible()
    expect(page.locator(f'#directory-rooms li[data-room="{room}"]')).to_be_visible()
    assert page.evaluate("document.documentElement.scrollWidth") <= viewport["width"]
    ARTIFACTS.joinpath("screenshots").mkdir(parents=True, exist_ok=True)
    page.screenshot(path=ARTIFACTS / "screenshots" / f"lobby-{size}.png")
