"""Two people chatting through the cluster's ingress in Chromium, driven as the local e2e tests
drive it (tests/e2e: Debian's Chromium through Playwright, the page helpers of room_page.py).
Run inside the cluster's network namespace (the ingress listens only there) by
tests/cluster/test_node.py:

    python tests/cluster/chat_in_chromium.py BASE_URL

Ann and Bob join a new room, each in a browser context of their own; Ann sends a message, Bob
answers once he sees it; prints as JSON what each page shows (user and text, in order), their
presence summaries, and the JavaScript errors the pages logged."""

import json
import sys

from playwright.sync_api import sync_playwright
from room_page import CHROMIUM, CHROMIUM_ARGS, DESKTOP, is_problem, join, send, wait_shown, wait_until
from support import new_room


def main(base):
    room = new_room("cluster")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        problems = []

        def person():
            context = browser.new_context(base_url=base, viewport=DESKTOP, locale="en-GB")
            context.set_default_timeout(30000)
            page = context.new_page()
            page.on("pageerror", lambda error: problems.append(f"error: {error}"))
            page.on("console", lambda msg: is_problem(msg) and problems.append(f"console: {msg.text}"))
            return page

        ann = join(person(), room, "ann")
        bob = join(person(), room, "bob")
        wait_until(lambda: "2 here" in ann.locator("#people-summary").text_content(), timeout=30)
        send(ann, "hello through the cluster")
        wait_shown(bob, 1, timeout=30)
        send(bob, "hi ann, bob here")
        seen = {name: [{"user": m["user"], "text": m["text"]} for m in wait_shown(page, 2, timeout=30)]
                for name, page in (("ann", ann), ("bob", bob))}
        summary = ann.locator("#people-summary").text_content()
        browser.close()
    return {"shown": seen, "ann_people": summary, "problems": problems}


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1])))
