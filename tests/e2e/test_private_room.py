"""A private room in Chromium, with three people: its owner, a member who opened the invite
link, and an outsider who has the room's address but no invite."""

import re

from playwright.sync_api import expect
from room_page import send, texts, wait_until

ROOM_IN_LINK = re.compile(r"/r/(_[0-9a-f]{32})\?invite=\S+$")


def test_the_owner_invites_a_member_and_the_outsider_sees_no_room(open_page):
    owner, member, outsider = open_page(), open_page(), open_page()

    owner.goto("/")
    owner.get_by_label("Your name", exact=True).fill("Olive")
    owner.get_by_label(re.compile("^Private")).check()
    owner.get_by_role("button", name="Join room").click()
    expect(owner.locator("#invite-link")).to_have_value(ROOM_IN_LINK)
    expect(owner.locator("#title .lock")).to_be_visible()
    link = owner.locator("#invite-link").input_value()
    room = ROOM_IN_LINK.search(link).group(1)
    expect(owner.locator("#connection")).to_have_attribute("data-state", "connected")

    member.goto(link)
    member.get_by_label("Your name in this room").fill("Mia")
    member.locator("#name-form").get_by_role("button", name="Join").click()
    expect(member.locator("#connection")).to_have_attribute("data-state", "connected")
    assert "invite" not in member.url  # the token left the address bar
    send(member, "hello team")
    assert wait_until(lambda: texts(owner) == ["hello team"])

    outsider.goto(f"/r/{room}")
    expect(outsider.locator("#private-denied")).to_contain_text("private")
    expect(outsider.get_by_role("textbox", name="Message")).to_be_hidden()
    assert texts(outsider) == []

    assert owner.problems == [] and member.problems == [] and outsider.problems == []

    owner.reload()  # the member list as it is now
    owner.locator("#private-panel summary").click()
    expect(owner.locator("#member-list li")).to_have_count(2)
    owner.get_by_role("button", name=re.compile("^Remove")).click()
    expect(owner.locator("#member-list li")).to_have_count(1)
    member.reload()  # (its stream was ended by the removal)
    expect(member.locator("#private-denied")).to_contain_text("private")
    assert owner.problems == []
