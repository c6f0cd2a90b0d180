"""Text is text: nothing a person sends becomes markup or runs."""

from playwright.sync_api import expect
from room_page import join, send, wait_shown
from support import new_room, post

PAYLOADS = [
    '<img src=x onerror="window.pwned=1">',
    "<script>window.pwned=2</script>",
    '<a href="javascript:window.pwned=3">click me</a>',
    "javascript:window.pwned=4",
    "[click](javascript:window.pwned=5)",
    '<svg onload="window.pwned=6"></svg>',
    '"><iframe src="javascript:window.pwned=7"></iframe>',
    "read https://example.com/a?q=1&r=<b>2</b> or (see http://example.org/wiki/X_(y)).",
]
NAMES = ["<b>mallory</b>", "<img src=x>"]


def test_markup_and_script_in_messages_render_as_text_and_run_nothing(open_page, stack):
    base = stack.settings.gateway_url
    room = new_room("e2e-xss")
    for i, text in enumerate(PAYLOADS):
        assert post(base, room, user=NAMES[i % 2], text=text).status_code == 201
    page = join(open_page(), room, "oz")
    dialogs = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    send(page, '<img src=x onerror="window.pwned=8">')  # the page's own, pending, copy too

    messages = wait_shown(page, len(PAYLOADS) + 1)
    assert [m["text"] for m in messages] == PAYLOADS + ['<img src=x onerror="window.pwned=8">']
    assert [m["user"] for m in messages[:2]] == NAMES
    assert page.locator("#messages").locator("img, script, svg, iframe, b").count() == 0
    links = page.locator("#messages a")
    assert links.evaluate_all("links => links.map(a => [a.textContent, a.href, a.rel, a.target])") == [
        ["https://example.com/a?q=1&r=", "https://example.com/a?q=1&r=", "noopener noreferrer", "_blank"],
        ["http://example.org/wiki/X_(y)", "http://example.org/wiki/X_(y)", "noopener noreferrer", "_blank"],
    ]
    # Clicking the would-be javascript: links does nothing: they are text.
    for text in ("click me", "javascript:window.pwned=4", "[click](javascript:window.pwned=5)"):
        page.locator("#messages .msg-text", has_text=text).click()
    page.wait_for_timeout(300)
    assert page.evaluate("window.pwned") is None
    assert dialogs == []
    assert not page.problems  # no CSP refusals either: the page needs no inline code
    expect(page.locator("#messages > li").first).to_contain_text("<b>mallory</b>")


def test_names_and_texts_are_isolated_so_bidi_cannot_reorder_what_follows(open_page, stack):
    """A name in a right-to-left script (or one holding bidi controls) is isolated in <bdi>:
    the time after it stays after it. Texts take their own direction (dir="auto"), and a
    right-to-left override in one ("safe \u202egnp.exe") stops at the end of that text."""
    base, room = stack.settings.gateway_url, new_room("e2e-bidi")
    posts = [("נועה", "שלום לכולם"), ("ann", "safe \u202egnp.exe"), ("ann", "after it")]
    for user, text in posts:
        assert post(base, room, user=user, text=text).status_code == 201
    page = join(open_page(), room, "oz")
    assert [(m["user"], m["text"]) for m in wait_shown(page, len(posts))] == posts

    layout = page.locator("#messages > li").evaluate_all("""items => items.map(li => {
        const author = li.querySelector('.msg-author'), text = li.querySelector('.msg-text');
        return {tag: author.tagName, authorRight: author.getBoundingClientRect().right,
                timeLeft: li.querySelector('time').getBoundingClientRect().left,
                dir: text.dir, direction: getComputedStyle(text).direction};
    })""")
    first = layout[0]  # the right-to-left name: without isolation, the time's digits are drawn before it
    assert first["tag"] == "BDI"
    assert first["timeLeft"] >= first["authorRight"] - 0.5, first
    assert [m["dir"] for m in layout] == ["auto"] * len(posts)
    assert [m["direction"] for m in layout] == ["rtl", "ltr", "ltr"]
    # The override in the second text does not reach the third message.
    third = page.locator("#messages > li .msg-text").nth(2)
    assert third.evaluate("p => { const r = document.createRange(); r.selectNodeContents(p);"
                          " return r.getClientRects()[0].left - p.getBoundingClientRect().left; }") < 2
    assert page.locator("#people-list bdi").count() >= 1  # present names are isolated too
