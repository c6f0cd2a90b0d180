"""Typing indicators and the lobby's room directory, two people in real browsers."""

import re

from playwright.sync_api import expect
from room_page import join, send, shown, texts, wait_shown, wait_until
from support import new_room
from test_history import HISTORY_MAX, post_many, scroll_to_the_start


def test_the_other_person_sees_who_is_typing_until_the_message_arrives(open_page):
    room = new_room("e2e-typing")
    ann = join(open_page(), room, "ann")
    bob = join(open_page(), room, "bob")

    ann.get_by_role("textbox", name="Message").press_sequentially("hello b")
    expect(bob.locator("#typing")).to_have_text("ann is typing…")
    expect(bob.locator("#composer-hint")).to_be_hidden()
    expect(ann.locator("#typing")).to_be_hidden()  # never for yourself

    ann.get_by_role("textbox", name="Message").press_sequentially("ob")
    ann.get_by_role("textbox", name="Message").press("Enter")
    assert [m["text"] for m in wait_shown(bob, 1)] == ["hello bob"]
    expect(bob.locator("#typing")).to_be_hidden()  # her message is here
    expect(bob.locator("#composer-hint")).to_be_visible()

    # Typing without sending: the indicator goes away by itself after a few seconds.
    bob.get_by_role("textbox", name="Message").press_sequentially("hm")
    expect(ann.locator("#typing")).to_have_text("bob is typing…")
    expect(ann.locator("#typing")).to_be_hidden(timeout=15000)
    assert not ann.problems and not bob.problems


def test_the_lobby_lists_a_room_someone_just_joined_without_a_reload(open_page):
    lobby = open_page()
    lobby.goto("/")
    expect(lobby.locator("#directory-heading")).to_have_text("Rooms now")
    room = new_room("e2e-dir")
    listed = lobby.locator(f'#directory-rooms li[data-room="{room}"]')
    expect(listed).to_have_count(0)

    cat = join(open_page(), room, "cat")
    expect(listed).to_contain_text("1 here", timeout=20000)
    send(cat, "first words")
    expect(listed).to_contain_text("last message just now", timeout=20000)
    listed.get_by_role("link", name=f"#{room}").click()
    expect(lobby).to_have_url(re.compile(rf"/r/{room}$"))
    assert not lobby.problems


# Headless Chromium shows no desktop notifications and its pages are never hidden: this
# stands in for both, recording what the page asked for and what it would have shown.
NOTIFICATIONS_AND_VISIBILITY = """
(() => {
  let hidden = false;
  Object.defineProperty(Document.prototype, "hidden", { get: () => hidden, configurable: true });
  Object.defineProperty(Document.prototype, "visibilityState", {
    get: () => (hidden ? "hidden" : "visible"), configurable: true,
  });
  window.setHidden = (value) => { hidden = value; document.dispatchEvent(new Event("visibilitychange")); };
  window.asked = 0;
  window.shown = [];
  class RecordedNotification extends EventTarget {
    static permission = "default";
    static requestPermission() {
      window.asked += 1;
      RecordedNotification.permission = "granted";
      return Promise.resolve("granted");
    }
    constructor(title, options = {}) {
      super();
      window.shown.push({ title, body: options.body });
    }
  }
  window.Notification = RecordedNotification;
})();
"""


def test_a_mention_is_highlighted_for_that_person_counted_apart_and_notified_while_hidden(open_page):
    room = new_room("e2e-mention")
    ann_page = open_page()
    ann_page.add_init_script(NOTIFICATIONS_AND_VISIBILITY)
    ann = join(ann_page, room, "Ann")
    bob = join(open_page(), room, "bob")

    # Asked for once, from the button, never on load.
    button = ann.get_by_role("button", name="Notify me of mentions")
    expect(button).to_be_visible()
    assert ann.evaluate("window.asked") == 0
    button.click()
    expect(button).to_be_hidden()
    assert ann.evaluate("window.asked") == 1

    send(bob, "hi @ann, and not @annabel nor bob@ann.example")
    wait_shown(ann, 1)
    marks = ann.locator("#messages mark.mention")
    expect(marks).to_have_count(1)
    expect(marks).to_have_text("@ann")
    expect(ann.locator("#messages > li.mentions-me")).to_have_count(1)
    wait_shown(bob, 1)
    expect(bob.locator("#messages mark.mention")).to_have_count(0)  # only for the person named

    # In the background: mentions are counted apart from the rest, and notified.
    ann.evaluate("window.setHidden(true)")
    send(bob, "something for everyone")
    send(bob, "@Ann are you there?")
    send(bob, "and one more")
    wait_shown(ann, 4)
    expect(ann).to_have_title(f"(@1) (2) #{room} · Chatroom")
    assert ann.evaluate("window.shown") == [{"title": f"\u2068bob\u2069 mentioned you in #{room}",
                                              "body": "@Ann are you there?"}]
    ann.evaluate("window.setHidden(false)")
    expect(ann).to_have_title(f"#{room} · Chatroom")

    # Your own mention of yourself is not news.
    ann.evaluate("window.setHidden(true)")
    send(ann, "note to self, @ann")
    wait_shown(bob, 5)
    expect(bob.locator("#messages > li").last).to_contain_text("note to self")
    expect(ann.locator("#messages mark.mention")).to_have_count(2)
    assert ann.evaluate("window.shown.length") == 1
    assert not ann.problems and not bob.problems


def test_a_message_deleted_on_one_screen_is_gone_on_the_other_after_a_reload_and_in_scrollback(open_page, stack):
    base = stack.settings.gateway_url
    room = new_room("e2e-delete")
    ann = join(open_page(), room, "ann")
    bob = join(open_page(), room, "bob")
    send(ann, "a secret, sent by mistake")
    send(ann, "hello bob")
    assert [m["text"] for m in wait_shown(bob, 2)] == ["a secret, sent by mistake", "hello bob"]
    delete_label = "Delete this message for everyone"
    expect(bob.get_by_role("button", name=delete_label)).to_have_count(0)  # only on your own messages

    ann.on("dialog", lambda dialog: dialog.accept())
    mistake = ann.locator("#messages > li", has_text="a secret")
    mistake.hover()
    mistake.get_by_role("button", name=delete_label).click()
    for page in (ann, bob):
        assert wait_until(lambda page=page: texts(page) == ["hello bob"]), texts(page)
    bob.reload()
    assert [m["text"] for m in wait_shown(bob, 1)] == ["hello bob"]
    bob.wait_for_timeout(300)
    assert texts(bob) == ["hello bob"]

    # Deleted once the room has moved on past the Redis window: scrolling back into Kafka
    # never shows it, nor the first one.
    send(ann, "another secret")
    assert wait_until(lambda: any(m["id"] and m["state"] == "sent"
                                  for m in shown(ann) if m["text"] == "another secret"))
    secret_id = next(m["id"] for m in shown(ann) if m["text"] == "another secret")
    later = post_many(base, room, HISTORY_MAX + 10, user="cid", prefix="later")
    response = ann.context.request.delete(f"/api/rooms/{room}/messages/{secret_id}")  # her browser's session
    assert response.status == 204
    bob.reload()
    expect(bob.locator("#connection")).to_have_attribute("data-state", "connected")
    scroll_to_the_start(bob)
    messages = shown(bob)
    assert [m["text"] for m in messages] == ["hello bob"] + [f"later {i:03}" for i in range(len(later))]
    assert not ann.problems and not bob.problems
