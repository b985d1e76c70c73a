"""A reply that survives a dropped connection, in Chromium on a phone viewport
against a real server with the real model: the phone goes offline mid-reply for 3 s and comes back;
the page reattaches by itself and the text on screen ends equal to the stored reply. A reload
mid-reply reopens the conversation and the reply goes on.
"""

from __future__ import annotations

import time

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import LAST_REPLY, PHONE_390, REPLY_TIMEOUT_MS, frame_drawn, pair_with_link, wait_state

pytestmark = pytest.mark.browser

LONG_MESSAGE = "Write a very long story about a dragon who learns to bake bread. Use many chapters."
OFFLINE_SECONDS = 3.0


def _body(page) -> str:
    return page.locator(LAST_REPLY).locator(".message-body").inner_text()


def _wait_streaming(page, chars: int) -> None:
    page.wait_for_function("""(chars) => {
        const m = [...document.querySelectorAll('.message[data-role="assistant"]')].pop();
        return m && m.dataset.status === "streaming" && m.dataset.id && m.querySelector(".message-body").textContent.length > chars;
    }""", arg=chars, timeout=REPLY_TIMEOUT_MS)


def _long_replies(stack):
    """The stack, its replies set long enough to be still being written when the connection comes back."""
    owner = stack.server.pair(name="settings")
    # 300 tokens: still being written 3 s after it started, on a quiet machine or a busy one.
    assert owner.put("/api/settings", {"max_tokens": 300, "temperature": 0}).status_code == 200
    return stack


def _phone_mid_reply(open_page, stack, device: str, chars: int = 40):
    """A phone paired to ``stack`` as ``device`` that sent LONG_MESSAGE and shows the reply streaming,
    past ``chars`` characters: returns the watched page and the reply's id."""
    w = open_page(PHONE_390)
    pair_with_link(w.page, stack, device)
    w.page.fill("#message-input", LONG_MESSAGE)
    w.page.press("#message-input", "Enter")
    _wait_streaming(w.page, chars)
    return w, w.page.locator(LAST_REPLY).get_attribute("data-id")


def _rendered_from_server(page, phone: bool, conversation_id: str) -> str:
    """The reply as the page draws it from the stored text (the conversation opened afresh)."""
    if phone:
        page.locator("#sidebar-toggle").click()
    page.locator(f'.conversation-item[data-id="{conversation_id}"] .conversation-open').click()
    expect(page.locator(LAST_REPLY)).to_have_attribute("data-status", "complete")
    frame_drawn(page)  # the text is drawn in an animation frame
    return _body(page)


def test_offline_for_three_seconds_mid_reply_then_the_reply_completes_token_for_token(stack_factory, open_page) -> None:
    stack = _long_replies(stack_factory("resume-offline"))
    w, reply_id = _phone_mid_reply(open_page, stack, "phone")
    page = w.page
    reply = page.locator(LAST_REPLY)

    page.context.set_offline(True)
    went_offline = time.monotonic()
    # The page notices the drop and says it is picking the reply up again.
    expect(reply.locator(".message-notice")).to_contain_text("picking the reply up again", timeout=5_000)
    expect(reply).to_have_attribute("data-status", "streaming")
    length_offline = len(_body(page))
    w.shot("resume-01-offline")
    page.wait_for_timeout(max(0, OFFLINE_SECONDS - (time.monotonic() - went_offline)) * 1000)
    assert len(_body(page)) == length_offline, "text arrived while the browser was offline"
    page.context.set_offline(False)

    expect(reply).to_have_attribute("data-status", "complete", timeout=REPLY_TIMEOUT_MS)
    expect(reply.locator(".message-notice")).to_be_hidden()
    frame_drawn(page)
    on_screen = _body(page)
    w.shot("resume-02-complete")

    stored = stack.stored(reply_id)
    assert stored["status"] == "complete"
    # The reply went on while the phone was away: more was stored than was shown before the drop.
    assert len(stored["content"]) > length_offline
    # The same stored text drawn by the same renderer: token for token what was streamed.
    assert _rendered_from_server(page, True, stored["conversation_id"]) == on_screen
    # And the words of the stored reply, in order, are the words on screen (markdown aside).
    assert " ".join(on_screen.split())[-40:] in " ".join(stored["content"].replace("*", "").replace("#", "").split()) \
        or on_screen.split()[-1] in stored["content"]
    w.assert_clean()


def test_reload_mid_reply_reopens_the_conversation_and_the_reply_continues(stack_factory, open_page) -> None:
    stack = _long_replies(stack_factory("resume-reload"))
    w, reply_id = _phone_mid_reply(open_page, stack, "phone")
    page = w.page

    page.reload()
    wait_state(page, "ready", timeout=30_000)
    reply = page.locator(f'.message[data-id="{reply_id}"]')
    expect(reply).to_have_count(1, timeout=20_000)
    # It is still being written, and it grows on this page.
    expect(reply).to_have_attribute("data-status", "streaming", timeout=10_000)
    grown = len(reply.locator(".message-body").inner_text())
    page.wait_for_function("""([id, chars]) => {
        const m = document.querySelector(`.message[data-id="${id}"]`);
        return m && m.querySelector(".message-body").textContent.length > chars;
    }""", arg=[reply_id, grown], timeout=REPLY_TIMEOUT_MS)
    expect(reply).to_have_attribute("data-status", "complete", timeout=REPLY_TIMEOUT_MS)
    frame_drawn(page)
    on_screen = reply.locator(".message-body").inner_text()
    stored = stack.stored(reply_id)
    assert stored["status"] == "complete"
    assert _rendered_from_server(page, True, stored["conversation_id"]) == on_screen
    w.assert_clean()


def test_a_second_phone_watches_the_running_reply(stack_factory, open_page) -> None:
    stack = _long_replies(stack_factory("resume-watch"))
    first, reply_id = _phone_mid_reply(open_page, stack, "phone one", chars=20)
    conversation_id = stack.stored(reply_id)["conversation_id"]

    second = open_page(PHONE_390)
    page = second.page
    pair_with_link(page, stack, "phone two")
    page.locator("#sidebar-toggle").click()
    page.locator(f'.conversation-item[data-id="{conversation_id}"] .conversation-open').click()
    reply = page.locator(f'.message[data-id="{reply_id}"]')
    expect(reply).to_have_attribute("data-status", "streaming", timeout=20_000)
    expect(reply).to_have_attribute("data-status", "complete", timeout=REPLY_TIMEOUT_MS)
    expect(first.page.locator(LAST_REPLY)).to_have_attribute("data-status", "complete", timeout=REPLY_TIMEOUT_MS)
    frame_drawn(page)
    assert reply.locator(".message-body").inner_text() == _body(first.page)
    first.assert_clean()
    second.assert_clean()
