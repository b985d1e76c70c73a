"""Regenerate, edit, branches, search and rename in Chromium against a real server and model
: the branch chosen with `‹ ›` is the one shown after a reload and on a second device;
the sidebar's search finds the conversation with the words marked; a rename shows everywhere."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import LAST_REPLY, REPLY_TIMEOUT_MS, pair_with_link, send_and_watch, wait_state
from tests.support.browser import screenshot

pytestmark = pytest.mark.browser

SHOWN = "els => els.map(e => e.dataset.id || '')"


def _shown(page) -> list[str]:
    return page.eval_on_selector_all("#messages .message", SHOWN)


def _stores_the_choice(response) -> bool:
    """The server's answer to the page's PATCH of a conversation (here, its current_leaf)."""
    return response.request.method == "PATCH" and "/api/history/" in response.url


def _message(page, message_id: str):
    return page.locator(f'#messages .message[data-id="{message_id}"]')


def _wait_reply(page) -> None:
    expect(page.locator(LAST_REPLY)).to_have_attribute("data-status", "complete", timeout=REPLY_TIMEOUT_MS)
    page.wait_for_function("() => !document.querySelector('.message[data-status=streaming]')")


def _settled(page, count: int) -> list[str]:
    expect(page.locator("#messages .message")).to_have_count(count)
    page.wait_for_function("() => [...document.querySelectorAll('#messages .message')].every(e => e.dataset.id)")
    return _shown(page)


def test_regenerate_edit_switch_reload_second_device_search_rename(shared_stack, open_page) -> None:
    w = open_page()
    page = w.page
    pair_with_link(page, shared_stack, "branches desktop")
    if page.locator("#pair-banner-close").is_visible():
        page.click("#pair-banner-close")

    send_and_watch(page, "Say hi to the pelican")
    q1, a1 = _settled(page, 2)

    # Regenerate: a second reply to the same message; the first is kept, one arrow away.
    _message(page, a1).locator(".regenerate").click()
    _wait_reply(page)
    q1_again, a1b = _settled(page, 2)
    assert q1_again == q1 and a1b != a1
    expect(_message(page, a1b).locator(".branch-count")).to_have_text("2/2")
    _message(page, a1b).locator(".branch-prev").click()
    assert _settled(page, 2) == [q1, a1]
    expect(_message(page, a1).locator(".branch-count")).to_have_text("1/2")

    # Edit the first message: a new branch from the start; the old one is kept.
    _message(page, q1).locator(".edit").click()
    page.fill(f'#messages .message[data-id="{q1}"] .edit-box', "Say hello to the pelican")
    page.click(f'#messages .message[data-id="{q1}"] .edit-save')
    _wait_reply(page)
    q1b, a2 = _settled(page, 2)
    assert q1b != q1
    expect(_message(page, q1b).locator(".branch-count")).to_have_text("2/2")
    expect(_message(page, q1b).locator(".message-body")).to_have_text("Say hello to the pelican")

    # Back to the first version of the question, then its first reply: that branch is remembered.
    # Each switch stores the choice (a PATCH of current_leaf): the reload below waits for both answers.
    with page.expect_response(_stores_the_choice):
        _message(page, q1b).locator(".branch-prev").click()
    assert _settled(page, 2) == [q1, a1b]  # the newest reply under the original question
    with page.expect_response(_stores_the_choice):
        _message(page, a1b).locator(".branch-prev").click()
    assert _settled(page, 2) == [q1, a1]
    conversation = page.locator(".conversation-item.active").get_attribute("data-id")

    page.reload()
    wait_state(page, "ready", timeout=30_000)
    assert _settled(page, 2) == [q1, a1]
    expect(_message(page, q1).locator(".branch-count")).to_have_text("1/2")

    # A second device opens the same branch.
    other = open_page().page
    pair_with_link(other, shared_stack, "branches second")
    other.locator(f'.conversation-item[data-id="{conversation}"] .conversation-open').click()
    assert _settled(other, 2) == [q1, a1]

    # Search from the second device: the conversation, the word marked.
    other.fill("#search-box", "pelican")
    result = other.locator(f'#search-results .search-result[data-id="{conversation}"]')
    expect(result).to_be_visible()
    expect(result.locator("mark").first).to_have_text("pelican", ignore_case=True)
    expect(other.locator("#conversation-list")).to_be_hidden()
    other.fill("#search-box", "")
    expect(other.locator("#conversation-list")).to_be_visible()

    # Rename on the first device; the second sees it after a reload.
    page.locator(f'.conversation-item[data-id="{conversation}"] .conversation-rename').click()
    page.fill(".rename-box", "Pelican greetings")
    page.press(".rename-box", "Enter")
    expect(page.locator(f'.conversation-item[data-id="{conversation}"] .conversation-title')).to_have_text("Pelican greetings")
    other.reload()
    wait_state(other, "ready", timeout=30_000)
    expect(other.locator(f'.conversation-item[data-id="{conversation}"] .conversation-title')).to_have_text("Pelican greetings")
    # Copy on a reply is there; nothing went wrong in either page.
    expect(_message(page, a1).locator(".copy-reply")).to_be_visible()
    w.shot("branches-desktop")
    other.fill("#search-box", "pelican")
    expect(other.locator("#search-results mark").first).to_be_visible()
    marks = other.locator("#search-results mark").all_inner_texts()
    assert marks and all(m.lower().startswith("pelican") for m in marks), marks  # exact, also after emoji
    screenshot(other, "search-desktop")
    w.assert_clean()
