"""Typing indicators and the lobby's room directory, two people in real browsers."""

import re

from playwright.sync_api import expect
from room_page import join, send, wait_shown

from support import new_room


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
