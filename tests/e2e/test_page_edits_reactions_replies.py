"""Editing a message in place, reactions and replies, two people in real browsers."""

import re

from playwright.sync_api import expect
from room_page import MOBILE, join, message, send, shown, texts, wait_shown, wait_until
from support import new_room
from test_history import post_many


def edited(page, text):
    """Whether the message ``text`` is shown, marked "(edited)"."""
    return any(m["text"] == text and m["edited"] for m in shown(page))


def test_an_edit_in_place_shows_the_new_text_marked_edited_on_both_screens_and_after_a_reload(open_page):
    room = new_room("e2e-edit")
    ann = join(open_page(), room, "ann")
    bob = join(open_page(), room, "bob")
    send(ann, "helo bob")
    wait_shown(bob, 1)
    expect(bob.get_by_role("button", name="Edit this message")).to_have_count(0)  # only on your own

    # Edit, from the message's own button: Enter saves.
    mine = message(ann, "helo bob")
    mine.hover()
    mine.get_by_role("button", name="Edit this message").click()
    box = ann.get_by_role("textbox", name="Edit your message")
    expect(box).to_be_focused()
    expect(box).to_have_value("helo bob")
    box.fill("hello bob")
    box.press("Enter")
    expect(box).to_have_count(0)
    for page in (ann, bob):
        assert wait_until(lambda page=page: edited(page, "hello bob")), shown(page)
    expect(bob.locator("#announcer")).to_have_text("ann edited a message: hello bob")
    expect(ann.get_by_role("textbox", name="Message")).to_be_focused()

    # Up in the empty box edits your last message; Escape leaves it as it was.
    send(ann, "see you at 3")
    wait_shown(bob, 2)
    composer = ann.get_by_role("textbox", name="Message")
    composer.press("ArrowUp")
    expect(box).to_have_value("see you at 3")
    box.press_sequentially(" or 4")
    box.press("Escape")
    expect(box).to_have_count(0)
    expect(composer).to_be_focused()
    assert texts(ann)[-1] == "see you at 3" and not shown(ann)[-1]["edited"]
    composer.press("ArrowUp")
    box.fill("see you at 4")
    box.press("Enter")
    assert wait_until(lambda: edited(bob, "see you at 4")), shown(bob)

    # History on connect shows the latest text, still marked.
    bob.reload()
    wait_shown(bob, 2)
    assert [(m["text"], m["edited"]) for m in shown(bob)] == [("hello bob", True), ("see you at 4", True)]
    assert not ann.problems and not bob.problems


def chip(page, text, name):
    return message(page, text).get_by_role("button", name=re.compile(f"^{name}: "))


def test_reactions_are_picked_counted_toggled_and_seen_by_the_other_person(open_page):
    room = new_room("e2e-react")
    ann = join(open_page(), room, "ann")
    bob = join(open_page(), room, "bob")
    send(ann, "shall we ship it?")
    wait_shown(bob, 1)

    # Bob picks 👍 from the picker: the twelve the server accepts.
    item = message(bob, "shall we ship it?")
    item.hover()
    react = item.get_by_role("button", name="Add a reaction")
    react.click()
    expect(react).to_have_attribute("aria-expanded", "true")
    choices = bob.get_by_role("group", name="Pick a reaction").get_by_role("button")
    expect(choices).to_have_count(12)
    assert choices.all_text_contents() == ["👍", "👎", "❤️", "😂", "🎉", "😮", "😢", "🙏", "✅", "👀", "🔥", "🚀"]
    choices.get_by_text("👍").click()
    expect(bob.get_by_role("group", name="Pick a reaction")).to_have_count(0)
    expect(chip(bob, "shall we ship it?", "thumbs up")).to_have_text("👍 1")
    expect(chip(bob, "shall we ship it?", "thumbs up")).to_have_attribute("aria-pressed", "true")
    expect(chip(ann, "shall we ship it?", "thumbs up")).to_have_text("👍 1")
    expect(chip(ann, "shall we ship it?", "thumbs up")).to_have_attribute("aria-pressed", "false")
    expect(ann.locator("#announcer")).to_have_text("bob reacted with thumbs up to ann's message.")

    # Ann's click adds hers; Bob's click on his own takes his back.
    chip(ann, "shall we ship it?", "thumbs up").click()
    for page in (ann, bob):
        expect(chip(page, "shall we ship it?", "thumbs up")).to_have_text("👍 2")
    expect(chip(ann, "shall we ship it?", "thumbs up")).to_have_attribute("aria-pressed", "true")
    chip(bob, "shall we ship it?", "thumbs up").click()
    for page in (ann, bob):
        expect(chip(page, "shall we ship it?", "thumbs up")).to_have_text("👍 1")
    expect(chip(bob, "shall we ship it?", "thumbs up")).to_have_attribute("aria-pressed", "false")

    # By keyboard: the picker opens on its first choice, Escape closes it back to the button.
    react.focus()
    bob.keyboard.press("Enter")
    expect(choices.first).to_be_focused()
    expect(choices.first).to_have_accessible_name("thumbs up")
    bob.keyboard.press("Tab")
    bob.keyboard.press("Enter")  # 👎
    expect(chip(ann, "shall we ship it?", "thumbs down")).to_have_text("👎 1")
    react.focus()
    bob.keyboard.press("Enter")
    bob.keyboard.press("Escape")
    expect(bob.get_by_role("group", name="Pick a reaction")).to_have_count(0)
    expect(react).to_be_focused()

    # The counts come back with the history after a reload, hers still pressed.
    ann.reload()
    wait_shown(ann, 1)
    expect(chip(ann, "shall we ship it?", "thumbs up")).to_have_attribute("aria-pressed", "true")
    expect(message(ann, "shall we ship it?").locator(".chip")).to_have_text(["👍 1", "👎 1"])
    assert not ann.problems and not bob.problems


def test_a_reply_quotes_the_original_leads_back_to_it_through_older_pages_and_says_when_it_is_gone(open_page, stack):
    base = stack.settings.gateway_url
    room = new_room("e2e-reply")
    ann = join(open_page(), room, "ann")
    bob = join(open_page(), room, "bob")
    question = "which port does the gateway use?"
    send(bob, question)
    wait_shown(ann, 1)

    # Reply, then Escape: no longer a reply.
    original = message(ann, question)
    original.hover()
    original.get_by_role("button", name="Reply to this message").click()
    expect(ann.locator("#reply-bar")).to_have_text(re.compile(r"^\s*Replying to bob\s*Cancel\s*$"))
    composer = ann.get_by_role("textbox", name="Message")
    expect(composer).to_be_focused()
    composer.press("Escape")
    expect(ann.locator("#reply-bar")).to_be_hidden()

    # The room moves on, then Ann answers the question from far above.
    post_many(base, room, 60, user="cat", prefix="chatter")
    wait_shown(ann, 61)
    original.scroll_into_view_if_needed()
    original.hover()
    original.get_by_role("button", name="Reply to this message").click()
    expect(ann.locator("#reply-bar")).to_contain_text("Replying to bob")
    send(ann, "8080, through nginx")
    expect(ann.locator("#reply-bar")).to_be_hidden()
    for page in (ann, bob):
        reply = message(page, "8080, through nginx")
        expect(reply.locator(".msg-quote")).to_have_text(f"bob{question}")
        expect(reply.get_by_role("button", name=f"In reply to bob: {question}. Show that message")).to_be_visible()

    # Bob comes back: the latest page has the reply, not the question; the quote finds it.
    bob.reload()
    assert wait_until(lambda: len(shown(bob)) == 50)
    assert question not in texts(bob)
    message(bob, "8080, through nginx").locator(".msg-quote").click()
    asked = message(bob, question)
    expect(asked).to_be_in_viewport()
    expect(asked).to_be_focused()
    expect(asked).to_have_class(re.compile(r"\bflash\b"))

    # Bob deletes the question: every quote of it says so, live and after a reload.
    bob.on("dialog", lambda dialog: dialog.accept())
    asked.hover()
    asked.get_by_role("button", name="Delete this message for everyone").click()
    for page in (ann, bob):
        quote = message(page, "8080, through nginx").locator(".msg-quote")
        expect(quote).to_have_text("deleted message")
        assert wait_until(lambda page=page: question not in texts(page))
    ann.reload()
    wait_shown(ann, 50)
    expect(message(ann, "8080, through nginx").locator(".msg-quote")).to_have_text("deleted message")
    assert not ann.problems and not bob.problems


def test_a_page_that_was_offline_gets_the_edit_and_the_reaction_it_missed_once_back(open_page):
    room = new_room("e2e-resume")
    ann = join(open_page(), room, "ann")
    bob = join(open_page(), room, "bob")
    send(ann, "lunch at noon")
    send(ann, "at the usual place")
    wait_shown(bob, 2)

    bob.context.set_offline(True)
    expect(bob.locator("#connection")).to_have_attribute("data-state", "offline")
    ann.get_by_role("textbox", name="Message").press("ArrowUp")
    box = ann.get_by_role("textbox", name="Edit your message")
    box.fill("at the new place")
    box.press("Enter")
    # The edit shown on Ann's own page before she points at another message, as a person
    # would see it: once, on a loaded machine, the edit arriving between the hover and the
    # click left the reaction button without the pointer, and the click waited 15 s.
    assert wait_until(lambda: edited(ann, "at the new place")), shown(ann)
    first = message(ann, "lunch at noon")
    first.hover()
    first.get_by_role("button", name="Add a reaction").click()
    ann.get_by_role("group", name="Pick a reaction").get_by_role("button", name="done").click()
    expect(chip(ann, "lunch at noon", "done")).to_have_text("✅ 1")

    # Back online, the stream resumes after the last id Bob saw: both changes, once.
    bob.context.set_offline(False)
    expect(bob.locator("#connection")).to_have_attribute("data-state", "connected")
    expect(chip(bob, "lunch at noon", "done")).to_have_text("✅ 1")
    assert wait_until(lambda: edited(bob, "at the new place")), shown(bob)
    assert texts(bob) == ["lunch at noon", "at the new place"]
    assert not ann.problems and not bob.problems


def test_markup_in_an_edit_and_in_a_quote_stays_text(open_page):
    room = new_room("e2e-markup")
    ann = join(open_page(), room, "ann")
    bob = join(open_page(), room, "<b>bob</b>")
    payload = '<img src=x onerror="window.pwned=1"><b>bold</b>'
    send(ann, "plain words")
    wait_shown(bob, 1)
    ann.get_by_role("textbox", name="Message").press("ArrowUp")
    box = ann.get_by_role("textbox", name="Edit your message")
    box.fill(payload)
    box.press("Enter")
    assert wait_until(lambda: edited(bob, payload)), shown(bob)
    asked = message(bob, payload)
    asked.hover()
    asked.get_by_role("button", name="Reply to this message").click()
    send(bob, "<script>window.pwned=2</script>")
    for page in (ann, bob):
        reply = message(page, "<script>window.pwned=2</script>")
        expect(reply.locator(".msg-quote")).to_have_text(f"ann{payload}")
        expect(reply.locator(".msg-author")).to_have_text("<b>bob</b>")
        assert page.locator("#messages img, #messages b, #messages script").count() == 0
        assert page.evaluate("window.pwned") is None
    assert not ann.problems and not bob.problems


def test_on_a_phone_a_tap_on_a_message_shows_its_actions(open_page):
    room = new_room("e2e-tap")
    ann = join(open_page(), room, "ann")
    bob = join(open_page(viewport=MOBILE, has_touch=True, is_mobile=True), room, "bob")
    send(ann, "anyone for coffee?")
    wait_shown(bob, 1)
    asked = message(bob, "anyone for coffee?")
    react = asked.get_by_role("button", name="Add a reaction")
    bob.mouse.move(0, 0)  # nothing under the pointer: the actions are hidden
    bar = asked.locator(".msg-actions")
    expect(bar).to_have_css("opacity", "0")
    asked.tap()
    expect(bar).to_have_css("opacity", "1")
    react.tap()
    bob.get_by_role("group", name="Pick a reaction").get_by_role("button", name="heart").tap()
    expect(chip(ann, "anyone for coffee?", "heart")).to_have_text("❤️ 1")
    asked.get_by_role("button", name="Reply to this message").tap()
    expect(bob.locator("#reply-bar")).to_contain_text("Replying to ann")
    assert not ann.problems and not bob.problems
