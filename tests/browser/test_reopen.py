"""Reopen where you were, and honest waiting, in Chromium against a real
server: a reload goes back to the open conversation with its draft; a message sent while the server
is down stays (also across a reload), and Send now sends it once the server is back; a server on this machine that
comes back is noticed within the loopback backoff and one check (about 2 s on a quiet machine)."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import LAST_REPLY, PHONE_390, REPLY_TIMEOUT_MS, close_pair_banner, send_and_watch, wait_state

pytestmark = pytest.mark.browser

FORMS = {"phone": PHONE_390, "desktop": None}
# A server on this machine that answers again is noticed within the loopback backoff cap plus one
# check. The cap is the page's own (lib/connection.js), read from it so the two cannot drift apart.
# A check's cost is this machine's: the time a reload takes to be ready (page start, health, the
# sealed who-am-I) is measured in the test and stands for it, with half a second as its floor, what
# it costs on a quiet two-core machine.
_CONNECTION_JS = (Path(__file__).resolve().parents[2] / "pages" / "src" / "lib" / "connection.js").read_text()
BACKOFF_LOOPBACK_S = int(re.search(r"BACKOFF_LOOPBACK_MAX_MS = ([\d_]+);", _CONNECTION_JS)[1].replace("_", "")) / 1000
QUIET_CHECK_S = 0.5


def _sidebar(page, phone: bool) -> None:
    """Shows the conversation list (a drawer on the phone)."""
    if phone:
        page.locator("#sidebar-toggle").click()
    expect(page.locator("#new-conversation")).to_be_visible()


def _active_id(page) -> str:
    active = page.locator(".conversation-item.active")
    expect(active).to_have_count(1)
    return active.get_attribute("data-id")


def _open(page, phone: bool, conversation_id: str) -> None:
    _sidebar(page, phone)
    page.locator(f'.conversation-item[data-id="{conversation_id}"] .conversation-open').click()
    expect(page.locator(".conversation-item.active")).to_have_attribute("data-id", conversation_id)


@pytest.mark.parametrize("form", list(FORMS))
def test_reopen_draft_and_unsent_message(paired_page, form: str) -> None:
    phone = form == "phone"
    stack, w = paired_page(f"reopen-{form}", {"generation": {"max_tokens": 16}}, device=f"reopen {form}", options=FORMS[form])
    page = w.page
    close_pair_banner(page)

    # --- two conversations
    send_and_watch(page, "Name a colour.")
    colour = _active_id(page)
    _sidebar(page, phone)
    page.click("#new-conversation")
    send_and_watch(page, "Name a fruit.")
    fruit = _active_id(page)
    assert fruit != colour

    # --- a draft in each; the colour conversation is the open one
    page.fill("#message-input", "draft for the fruit")
    _open(page, phone, colour)
    expect(page.locator("#message-input")).to_have_value("")
    page.fill("#message-input", "draft for the colour")
    w.shot(f"reopen-{form}-01-drafts")

    # --- reload: the same conversation, its draft; the other draft is kept too
    reloading = time.monotonic()
    page.reload()
    wait_state(page, "ready")
    check_s = max(QUIET_CHECK_S, time.monotonic() - reloading)
    expect(page.locator(".conversation-item.active")).to_have_attribute("data-id", colour)
    expect(page.locator('.message[data-role="user"]').first).to_contain_text("Name a colour.")
    expect(page.locator("#message-input")).to_have_value("draft for the colour")
    w.shot(f"reopen-{form}-02-reloaded")
    _open(page, phone, fruit)
    expect(page.locator('.message[data-role="user"]').first).to_contain_text("Name a fruit.")
    expect(page.locator("#message-input")).to_have_value("draft for the fruit")

    # --- the server stops; a message sent now is not lost
    stack.server.stop()
    page.fill("#message-input", "Are you still there?")
    page.press("#message-input", "Enter")
    unsent = page.locator('.message[data-status="failed"]')
    expect(unsent).to_have_count(1)
    expect(unsent).to_contain_text("Are you still there?")
    expect(page.locator("#message-input")).to_have_value("")  # sent: the draft is cleared
    wait_state(page, "reconnecting", "unreachable")
    # While the server is away: no Send now that cannot work, only Discard.
    expect(unsent.locator(".retry-button")).to_have_count(0)
    expect(unsent.locator(".discard-button")).to_be_visible()
    page.wait_for_timeout(8_000)  # long enough for a 30 s-capped backoff to have grown past 4 s
    w.shot(f"reopen-{form}-03-server-down")
    # What the status said and when (ms on the page's clock), for the message if the bound is missed.
    page.evaluate("""() => { const el = document.querySelector('#status'); window.__states = [];
      new MutationObserver(() => window.__states.push([Math.round(performance.now()), el.dataset.state]))
        .observe(el, { attributes: true, attributeFilter: ['data-state'] }); }""")

    # --- the server is back: noticed within the loopback cap and one check; the message is still there with Send now
    stack.server.start()  # returns once the server answers /api/health with a ready model
    answered = time.monotonic()
    answered_on_page = page.evaluate("Math.round(performance.now())")
    wait_state(page, "ready", timeout=30_000)
    waited = time.monotonic() - answered
    allowed = BACKOFF_LOOPBACK_S + check_s
    states = page.evaluate("window.__states")
    assert waited <= allowed, (f"the page took {waited:.1f} s to notice the server was back ({allowed:.1f} s allowed: "
                               f"{BACKOFF_LOOPBACK_S} s backoff and a check measured at {check_s:.1f} s); "
                               f"status changes {states}, the server answered at {answered_on_page}")
    expect(unsent).to_have_count(1)
    expect(unsent.locator(".retry-button")).to_be_visible()
    w.shot(f"reopen-{form}-04-server-back")

    # --- a reload (the conversation comes from the server again): still there, with Send now
    page.reload()
    wait_state(page, "ready")
    expect(page.locator(".conversation-item.active")).to_have_attribute("data-id", fruit)
    expect(page.locator('.message[data-role="user"]').first).to_contain_text("Name a fruit.")
    expect(unsent).to_have_count(1)
    expect(unsent).to_contain_text("Are you still there?")
    w.shot(f"reopen-{form}-05-unsent-after-reload")

    # --- Send now sends it, into the same conversation
    unsent.locator(".retry-button").click()
    expect(page.locator(LAST_REPLY)).to_have_attribute("data-status", "complete", timeout=REPLY_TIMEOUT_MS)
    expect(unsent).to_have_count(0)
    expect(page.locator('.message[data-role="user"]').last).to_contain_text("Are you still there?")
    exported = {c["id"]: c for c in stack.export()["conversations"]}
    assert [m["content"] for m in exported[fruit]["messages"] if m["role"] == "user"] == ["Name a fruit.", "Are you still there?"]
    page.reload()
    wait_state(page, "ready")
    expect(page.locator('.message[data-role="user"]').last).to_contain_text("Are you still there?")
    expect(unsent).to_have_count(0)
    w.shot(f"reopen-{form}-06-retried")
    w.assert_clean()


def test_reopen_a_deleted_conversation_falls_back_to_a_new_one(paired_page) -> None:
    stack, w = paired_page("reopen-gone", {"generation": {"max_tokens": 16}}, device="reopen gone")
    page = w.page
    send_and_watch(page, "Say one word.")
    conversation = _active_id(page)
    stack.server.cli("history", "clear", "--yes")
    page.reload()
    wait_state(page, "ready")
    expect(page.locator(".empty-state")).to_be_visible()
    expect(page.locator(".conversation-item")).to_have_count(0)
    expect(page.locator("#sidebar-message")).to_have_text("")  # quietly
    # The page forgets the id it reopened once it learns the conversation is gone (waited for: on a
    # busy machine that comes a little after the empty state is drawn).
    page.wait_for_function("(id) => !Object.keys(localStorage).some((k) => localStorage.getItem(k) === JSON.stringify(id))",
                           arg=conversation, timeout=20_000)
    w.assert_clean()


def test_reload_mid_reply_reopens_and_attaches_to_the_running_reply(paired_page) -> None:
    """A reload while a reply is being written: the same conversation opens and the reply goes on
    (history hands the running reply to the chat's reattach); the text ends equal to the stored one."""
    stack, w = paired_page("reopen-running", {"generation": {"max_tokens": 160}}, device="reopen running", options=PHONE_390)
    page = w.page
    send_and_watch(page, "Name a colour.")
    conversation = _active_id(page)
    page.fill("#message-input", "Write a long story about a dragon who learns to bake bread.")
    page.press("#message-input", "Enter")
    reply = page.locator(LAST_REPLY)
    expect(reply).to_have_attribute("data-status", "streaming")
    page.wait_for_function("() => document.querySelector('.message[data-role=\"assistant\"]:last-of-type .message-body')"
                           "?.textContent.length > 20")
    page.reload()
    wait_state(page, "ready")
    expect(page.locator(".conversation-item.active")).to_have_attribute("data-id", conversation)
    expect(page.locator('.message[data-role="user"]').last).to_contain_text("dragon")
    expect(reply).to_have_attribute("data-status", "streaming")  # attached: still being written
    w.shot("reopen-phone-07-running-reply-attached")
    expect(reply).to_have_attribute("data-status", "complete", timeout=REPLY_TIMEOUT_MS)
    reply_id = reply.get_attribute("data-id")
    stored = stack.stored(reply_id)
    assert stored["status"] == "complete"
    shown = page.evaluate("(id) => window.privchat.messages.views.find((v) => v.el.dataset.id === id).text", reply_id)
    assert shown == stored["content"], (shown, stored["content"])
    w.shot("reopen-phone-08-running-reply-done")
    w.assert_clean()
