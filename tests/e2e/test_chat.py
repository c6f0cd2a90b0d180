"""Two people chatting in a room, through the real stack, in a real browser."""

import datetime
import zoneinfo

from playwright.sync_api import expect
from room_page import join, room_history, send, shown, texts, wait_shown
from support import new_room, post

BURST = 20  # messages one person sends as fast as the page takes them


def test_people_in_a_room_see_each_others_messages_and_another_room_does_not(open_page):
    room, elsewhere = new_room("e2e"), new_room("e2e")
    ann = join(open_page(), room, "ann")
    bob = join(open_page(), room, "bob")
    cid = join(open_page(), elsewhere, "cid")

    # Presence is live: each sees the other arrive.
    expect(ann.locator("#people-list")).to_contain_text("bob")
    expect(ann.locator("#people-list")).to_contain_text("ann (you)")
    expect(bob.locator("#people-list")).to_contain_text("ann")
    expect(bob.locator("#people-summary")).to_have_text("2 here: bob, ann")

    send(ann, "hello from ann")
    wait_shown(bob, 1)
    send(bob, "hi ann, bob here")
    for page in (ann, bob):
        messages = wait_shown(page, 2)
        assert [m["text"] for m in messages] == ["hello from ann", "hi ann, bob here"]
        assert [m["user"] for m in messages] == ["ann", "bob"]
        assert int(messages[0]["id"]) < int(messages[1]["id"])
    # Own messages look different.
    assert [m["own"] for m in shown(ann)] == [True, False]
    assert [m["own"] for m in shown(bob)] == [False, True]
    # Times are local (the browsers run in Asia/Kolkata, UTC+05:30).
    for message in shown(ann):
        local = datetime.datetime.fromtimestamp(message["ts"] / 1000, zoneinfo.ZoneInfo("Asia/Kolkata"))
        assert message["time"] == local.strftime("%H:%M")
    # A message from someone else is announced politely to screen readers.
    expect(ann.locator("#announcer")).to_have_text("bob: hi ann, bob here")

    # The other room heard nothing, and its own message stays there.
    send(cid, "only for the other room")
    assert [m["text"] for m in wait_shown(cid, 1)] == ["only for the other room"]
    ann.wait_for_timeout(500)
    assert texts(ann) == ["hello from ann", "hi ann, bob here"]
    assert texts(cid) == ["only for the other room"]

    # Leaving shows in presence.
    bob.context.close()
    expect(ann.locator("#people-summary")).to_have_text("1 here: ann", timeout=20000)
    assert not ann.problems and not cid.problems


def test_messages_typed_in_quick_succession_reach_everyone_in_the_order_typed(open_page, stack):
    room = new_room("e2e-burst")
    ann = join(open_page(), room, "ann")
    bob = join(open_page(), room, "bob")
    typed = [f"quick {i:02}" for i in range(BURST)]
    # Each sent as soon as the last left the box, with no wait for the server between them
    # (a fast typist on a slow link): their POSTs would overlap.
    ann.evaluate("""texts => { const box = document.querySelector('#composer-text');
        for (const text of texts) { box.value = text; box.form.requestSubmit(); } }""", typed)
    assert [m["text"] for m in wait_shown(bob, BURST)] == typed
    assert [m["text"] for m in wait_shown(ann, BURST)] == typed
    assert [m["text"] for m in room_history(stack.settings.gateway_url, room)] == typed
    assert not ann.problems and not bob.problems


def test_a_reload_shows_the_history_in_order_once(open_page, stack):
    base = stack.settings.gateway_url
    room = new_room("e2e")
    posted = [post(base, room, user="dora", text=f"before {i}").json()["id"] for i in range(5)]
    page = join(open_page(), room, "eve")
    send(page, "from the page")
    expected = [f"before {i}" for i in range(5)] + ["from the page"]
    assert [m["text"] for m in wait_shown(page, 6)] == expected

    for _ in range(2):
        page.reload()
        expect(page.locator("#connection")).to_have_attribute("data-state", "connected")
        messages = wait_shown(page, 6)
        assert [m["text"] for m in messages] == expected
        assert [m["id"] for m in messages][:5] == posted
        assert [m["id"] for m in messages] == [m["id"] for m in room_history(base, room)]
        assert messages[-1]["own"] and messages[-1]["state"] == "sent"
    # The name was asked once and remembered.
    expect(page.locator("#name-form")).to_be_hidden()
    expect(page.locator("#name-label")).to_have_text("eve")

    # The room's other address, and one that is not a room.
    page.goto(f"/#{room}")
    assert [m["text"] for m in wait_shown(page, 6)] == expected
    page.goto("/r/Not%20A%20Room!")
    expect(page.locator("#lobby-error")).to_contain_text("That address is not a room")
    expect(page.get_by_label("Room", exact=True)).to_have_value("not-a-room")
    assert not page.problems


def test_a_name_someone_in_the_room_holds_is_refused_and_the_page_asks_for_another(open_page):
    room = new_room("e2e")
    ann = join(open_page(), room, "ann")
    impostor = join(open_page(), room, "Ann")  # another browser: its own session

    send(impostor, "it is me, ann")
    expect(impostor.locator("#name-form")).to_be_visible()
    expect(impostor.locator("#name-error")).to_contain_text("pick another name")
    expect(impostor.get_by_label("Your name in this room")).to_be_focused()
    assert texts(impostor) == []  # nothing shown as sent
    expect(impostor.locator("#composer-text")).to_have_value("it is me, ann")  # the text is kept

    impostor.get_by_label("Your name in this room").fill("not ann")
    impostor.locator("#name-form").get_by_role("button", name="Join").click()
    impostor.get_by_role("textbox", name="Message").press("Enter")
    assert [(m["user"], m["text"]) for m in wait_shown(ann, 1)] == [("not ann", "it is me, ann")]

    # The holder itself keeps posting under its name, in the same browser's other tab too.
    send(ann, "still ann")
    second_tab = join(ann.context.new_page(), room, "ann")
    send(second_tab, "ann again")
    assert [m["text"] for m in wait_shown(ann, 3)] == ["it is me, ann", "still ann", "ann again"]
