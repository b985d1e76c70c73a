"""In Chromium: the rough edges a new user hits, on a phone (390×844) and a desktop."""

from __future__ import annotations

import time

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import LAST_REPLY, PHONE_390, send_and_watch, submit_pairing, wait_state

pytestmark = pytest.mark.browser


def _in_view_above(page, selector: str, other: str, timeout: float = 10.0) -> None:
    """``selector`` ends on screen and above ``other`` (the footer, the composer), once the page's
    scroll (smooth, so it takes a few frames) has brought it there."""
    deadline = time.monotonic() + timeout
    while True:
        box = page.locator(selector).bounding_box()
        limit = page.locator(other).bounding_box()
        if box and limit and box["y"] >= 0 and box["y"] + box["height"] <= limit["y"] + 1:
            return
        assert time.monotonic() < deadline, (selector, box, other, limit)
        time.sleep(0.05)


def test_phone_pairing_error_link_in_open_tab_and_chat_layout(shared_stack, open_page) -> None:
    w = open_page(PHONE_390)
    page = w.page
    page.goto(shared_stack.chat_url)
    expect(page.locator("#pair-code")).to_be_focused()
    # The long intro steps are hidden on a phone; the fingerprint step stays.
    expect(page.locator(".pair-step-detail").first).to_be_hidden()
    expect(page.locator("#pair-compare")).to_be_visible()

    # A wrong code: the error is brought into view above the footer, and focused.
    page.locator("#pair-code").fill("ZZZZZ-ZZZZZ")
    page.locator("#pair-button").tap()
    error = page.locator("#pair-error")
    expect(error).to_be_visible()
    expect(error).to_be_focused()
    expect(error).to_be_in_viewport()
    _in_view_above(page, "#pair-error", ".footer")
    w.shot("rough-phone-01-pair-error")

    # A used code says so.
    used = shared_stack.pairing()["code"]
    other = open_page(PHONE_390)
    other.page.goto(shared_stack.chat_url)
    other.page.locator("#pair-code").fill(used)
    submit_pairing(other.page, "rough used-code owner", tap=True)
    page.locator("#pair-code").fill(used)
    page.locator("#pair-button").tap()
    expect(error).to_contain_text("already used")
    expect(error).not_to_contain_text("typo")

    # A pairing link opened in this already open tab: only the fragment changes (hashchange).
    pairing = shared_stack.pairing()
    page.goto(pairing["url"])
    expect(page.locator("#pair-code")).to_have_value(pairing["code"])
    assert "#" not in page.evaluate("location.href"), "the pairing code stayed in the address bar"
    expect(page.locator("#pair-button")).to_be_focused()  # one tap is enough
    expect(page.locator("#pair-error")).to_be_hidden()
    w.shot("rough-phone-02-link")
    page.locator("#pair-button").tap()
    expect(page.locator("#app")).to_have_attribute("data-view", "chat")
    wait_state(page, "ready", timeout=30_000)

    # The status pill shares the top row with the drawer toggle.
    status = page.locator("#status").bounding_box()
    toggle = page.locator("#sidebar-toggle").bounding_box()
    assert status and toggle
    assert abs((status["y"] + status["height"] / 2) - (toggle["y"] + toggle["height"] / 2)) < toggle["height"] / 2, (status, toggle)

    # The line under a finished reply is not hidden under the composer.
    send_and_watch(page, "Say hi.", click=lambda: page.locator("#send-button").tap())
    meta = page.locator(f"{LAST_REPLY} >> .message-meta")
    expect(meta).to_be_visible()
    expect(meta).to_contain_text("tokens")
    _in_view_above(page, f"{LAST_REPLY} >> .message-meta", "#composer")
    w.shot("rough-phone-03-reply")

    # The open conversation is marked for assistive technology.
    page.locator("#sidebar-toggle").tap()
    expect(page.locator('#conversation-list .conversation-open[aria-current="true"]')).to_have_count(1)
    w.assert_clean()


def test_desktop_focus_after_reload_history_meta_and_one_import_tab_stop(shared_stack, open_page) -> None:
    w = open_page()
    page = w.page
    page.goto(shared_stack.chat_url)
    page.locator("#pair-code").fill(shared_stack.pairing()["code"])
    submit_pairing(page, "rough desktop")
    send_and_watch(page, "Name a colour.")
    live = page.locator(f"{LAST_REPLY} >> .message-meta").text_content()
    assert "tokens" in (live or "")

    page.reload()
    wait_state(page, "ready", timeout=30_000)
    expect(page.locator("#message-input")).to_be_focused()
    # The reply loaded from history keeps the line it had live (token count and speed).
    reloaded = page.locator(f"{LAST_REPLY} >> .message-meta")
    expect(reloaded).to_contain_text("tokens")
    expect(reloaded).to_contain_text("tokens/s")
    expect(page.locator('#conversation-list .conversation-open[aria-current="true"]')).to_have_count(1)

    # "Import JSON…" is one tab stop: the next one is "Clear all history".
    page.locator("#import-label").focus()
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.id") == "clear-history"

    # Settings: both invalid fields marked at once; the reset and the scope notes are there.
    page.click("#settings-button")
    expect(page.locator("#settings-reset")).to_be_visible()
    page.fill("#setting-temperature", "5")
    page.fill("#setting-max-tokens", "0")
    page.click("#settings-save")
    expect(page.locator("#setting-temperature-error")).to_be_visible()
    expect(page.locator("#setting-max-tokens-error")).to_be_visible()
    expect(page.locator("#settings-local-note")).to_contain_text("this browser")
    w.shot("rough-desktop-01-settings")
    w.assert_clean()
