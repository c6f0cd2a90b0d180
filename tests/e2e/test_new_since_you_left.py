"""Coming back to a room: a "New messages" divider where what arrived since the last visit
starts, and a "Jump to latest" button while reading back, two people in real browsers."""

from playwright.sync_api import expect
from room_page import join, send, shown, wait_remembered, wait_shown, wait_until
from support import new_room
from test_history import post_many, scroll_to_the_start

# The divider's neighbours, top to bottom: the message before it and the one after it.
AROUND_DIVIDER = """d => [d.previousElementSibling?.querySelector('.msg-text')?.textContent ?? null,
                          d.nextElementSibling?.querySelector('.msg-text')?.textContent ?? null]"""


def in_view(page, selector):
    return page.locator(selector).evaluate("""(e) => {
        const s = document.querySelector('#scroller').getBoundingClientRect(), r = e.getBoundingClientRect();
        return r.top >= s.top && r.bottom <= s.bottom; }""")


def test_coming_back_shows_what_is_new_since_the_last_visit_and_jumps_to_the_latest(open_page, stack):
    base = stack.settings.gateway_url
    room = new_room("e2e-unread")
    ann = join(open_page(), room, "ann")
    bob = join(open_page(), room, "bob")
    send(ann, "see you later")
    wait_shown(bob, 1)
    expect(bob.locator("#new-divider")).to_have_count(0)  # a first visit: nothing is "new"

    # Bob goes back to the lobby; the room moves on without him.
    bob.goto("/")
    send(ann, "while you were away")
    wait_shown(ann, 2)  # stored before the posts below: its POST could still be on its way
    away = post_many(base, room, 30, user="cat", prefix="away")
    wait_shown(ann, 32)

    join(bob, room, "bob")
    wait_shown(bob, 32)
    divider = bob.locator("#new-divider")
    expect(divider).to_have_text("New messages")
    assert divider.evaluate(AROUND_DIVIDER) == ["see you later", "while you were away"]
    expect(bob.locator("#announcer")).to_have_text("31 new messages since your last visit.")
    assert in_view(bob, "#new-divider")  # the view starts where the news starts
    # Ann was here all along: nothing is new for her, after a reload too.
    expect(ann.locator("#new-divider")).to_have_count(0)

    # Reading from the divider, new messages wait below, counted on the jump button.
    pill = bob.get_by_role("button", name="Jump to latest")
    expect(pill).to_be_hidden()
    send(ann, "one more")
    send(ann, "and another")
    expect(pill).to_have_text("Jump to latest (2 new)")
    assert in_view(bob, "#new-divider")  # the view stayed put
    pill.click()
    assert wait_until(lambda: in_view(bob, f'#messages > li[data-id="{shown(bob)[-1]["id"]}"]'))
    expect(pill).to_be_hidden()
    assert bob.evaluate("document.activeElement.id") == "composer-text"

    # Back again with nothing new since: no divider; the latest message is in view.
    bob.reload()
    wait_shown(bob, 34)
    expect(bob.locator("#connection")).to_have_attribute("data-state", "connected")
    bob.wait_for_timeout(300)
    expect(bob.locator("#new-divider")).to_have_count(0)
    wait_remembered(ann, room, shown(ann)[-1]["id"])  # her last two came back on her stream too
    ann.reload()
    wait_shown(ann, 34)
    expect(ann.locator("#new-divider")).to_have_count(0)
    assert len(away) == 30 and not ann.problems and not bob.problems


def test_more_news_than_the_first_page_moves_the_divider_up_as_older_pages_load(open_page, stack):
    base = stack.settings.gateway_url
    room = new_room("e2e-unread-deep")
    ann = join(open_page(), room, "ann")
    send(ann, "last thing I saw")
    wait_remembered(ann, room, wait_shown(ann, 1)[-1]["id"])
    ann.goto("/")
    post_many(base, room, 70, user="cat", prefix="away")

    join(ann, room, "ann")
    expect(ann.locator("#announcer")).to_have_text("At least 50 new messages since your last visit.")
    scroll_to_the_start(ann)
    assert len(shown(ann)) == 71
    assert ann.locator("#new-divider").evaluate(AROUND_DIVIDER) == ["last thing I saw", "away 000"]
    expect(ann.locator("#new-divider")).to_have_count(1)
    assert not ann.problems
