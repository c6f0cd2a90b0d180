"""Browser fixtures: Debian's Chromium driven by Playwright, one context per person.

Every page gets the real stack's gateway as its origin (``stack.settings.gateway_url``),
records JavaScript errors and CSP refusals, and is screenshotted into
test-artifacts/ when its test fails.
"""

import pytest
from playwright.sync_api import sync_playwright
from room_page import ARTIFACTS, CHROMIUM, CHROMIUM_ARGS, DESKTOP, is_problem


@pytest.fixture(scope="session")
def browser():
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    if report.when == "call":
        item.failed_call = report.failed
    return report


@pytest.fixture
def open_page(request, browser, stack):
    """``open_page(viewport=..., color_scheme=...)``: a page in a fresh browser context
    (its own storage, like another person's browser)."""
    contexts = []

    def make(viewport=DESKTOP, color_scheme="light", **options):
        context = browser.new_context(
            base_url=stack.settings.gateway_url,
            viewport=viewport,
            color_scheme=color_scheme,
            locale="en-GB",
            timezone_id=options.pop("timezone_id", "Asia/Kolkata"),  # not UTC: times must be local
            **options,
        )
        context.set_default_timeout(15000)
        contexts.append(context)
        page = context.new_page()
        page.problems = []
        page.on("pageerror", lambda error: page.problems.append(f"error: {error}"))
        page.on("console", lambda msg: is_problem(msg) and page.problems.append(f"console: {msg.text}"))
        return page

    yield make
    if getattr(request.node, "failed_call", False):
        ARTIFACTS.mkdir(exist_ok=True)
        for number, context in enumerate(contexts):
            for page in context.pages:
                page.screenshot(path=ARTIFACTS / f"failed-{request.node.name}-{number}.png", full_page=True)
    for context in contexts:
        context.close()
