"""In Chromium: a message longer than the model can read is said before it is sent,
and the reply to it, sent anyway, says the start of it was cut."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import LAST_REPLY, REPLY_TIMEOUT_MS, pair_with_link

pytestmark = pytest.mark.browser

LONG = "The quick brown fox jumps over the lazy dog. " * 320 + "What animal jumps?"  # about 2,800 words


def test_a_message_longer_than_the_context_is_said_before_and_after(stack_factory, open_page) -> None:
    # A 2,048-token model (the default n_ctx) and short replies, as in the issue.
    stack = stack_factory("long", {"model": {"n_ctx": 2048}, "generation": {"max_tokens": 16}})
    w = open_page()
    page = w.page
    pair_with_link(page, stack, "long message owner")
    page.fill("#message-input", LONG)
    page.press("#message-input", "Enter")
    note = page.locator("#input-fit")
    expect(note).to_be_visible()
    expect(note).to_contain_text("longer than")
    expect(note).to_contain_text("can read: at most")
    expect(note).to_contain_text("its context is 2,048 tokens")
    expect(note).to_contain_text("press Send again")
    assert page.locator('.message[data-role="user"]').count() == 0, "nothing is sent on the first press"
    assert page.input_value("#message-input") == LONG
    w.shot("long-01-said-before-sending")

    page.press("#message-input", "Enter")  # sent anyway
    reply = page.locator(LAST_REPLY)
    expect(reply).to_have_attribute("data-status", "complete", timeout=REPLY_TIMEOUT_MS)
    expect(note).to_be_hidden()
    expect(reply.locator(".message-notice")).to_contain_text("the start of it was cut")
    w.shot("long-02-reply-says-cut")

    # A short message is sent on the first press, with nothing said.
    page.fill("#message-input", "Thanks!")
    page.press("#message-input", "Enter")
    expect(page.locator('.message[data-role="user"]')).to_have_count(2)
    expect(page.locator(LAST_REPLY)).to_have_attribute("data-status", "complete", timeout=REPLY_TIMEOUT_MS)
    w.assert_clean()
