"""What the page says when things go wrong, in Chromium against a real server and model, on a phone
(390×844) and a desktop (1280×800): a message left unsent says the reason of now, offers Send now
when the connection is back, keeps its place and can be discarded; a server down at page load is
"Can't load your conversations yet", not an empty history; a revoked device gets no Send now and
its header keeps one row; switching versions halfway up keeps the message in place; Devices says
whether the browser keeps the key; the pairing screen's first words on a phone; import says
"already here"; a code block has no blank first line."""

from __future__ import annotations

import json
import time

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import (LAST_REPLY, PHONE_390, REPLY_TIMEOUT_MS, close_pair_banner, drawer_slid_in, frame_drawn,
                                    pair_with_link, wait_state)

pytestmark = pytest.mark.browser

UNSENT = '.message[data-status="failed"]'
USERS = "els => els.map(e => [e.querySelector('.message-body').textContent, e.dataset.status])"


def _users(page) -> list[list[str]]:
    return page.eval_on_selector_all('#messages .message[data-role="user"]', USERS)


def _paired(paired_page, name: str, device: str, options=PHONE_390, max_tokens: int = 16):
    """A stack with short replies and a page paired to it (a phone unless ``options`` says otherwise), banner closed."""
    stack, w = paired_page(name, {"generation": {"max_tokens": max_tokens}}, device=device, options=options)
    close_pair_banner(w.page)
    return stack, w


def _ask(page, text: str) -> None:
    """Sends ``text`` once the composer is free and waits for its own reply to complete (a Send may
    first count the message's tokens, so the reply view can appear a moment after Enter)."""
    expect(page.locator("#send-button")).to_be_visible()
    replies = page.locator('#messages .message[data-role="assistant"]')
    before = replies.count()
    _send(page, text)
    expect(replies).to_have_count(before + 1, timeout=REPLY_TIMEOUT_MS)
    expect(page.locator(LAST_REPLY)).to_have_attribute("data-status", "complete", timeout=REPLY_TIMEOUT_MS)
    page.wait_for_function("() => !document.querySelector('.message[data-status=streaming]')")


def _send(page, text: str) -> None:
    page.fill("#message-input", text)
    page.press("#message-input", "Enter")


def test_phone_offline_message_says_why_sends_now_in_order_and_can_be_discarded(paired_page) -> None:
    _stack, w = _paired(paired_page, "unsent", "says phone")
    page = w.page

    # Offline: "hello" is kept, says why, and offers nothing that cannot work.
    page.context.set_offline(True)
    wait_state(page, "offline")
    _send(page, "hello")
    unsent = page.locator(UNSENT)
    expect(unsent).to_have_count(1)
    expect(unsent.locator(".message-notice")).to_contain_text("offline")
    expect(unsent.locator(".retry-button")).to_have_count(0)
    expect(unsent.locator(".discard-button")).to_be_visible()
    w.shot("says-phone-01-offline-unsent")

    # Back online: the note says so, with one Send now.
    page.context.set_offline(False)
    wait_state(page, "ready", timeout=30_000)
    expect(unsent.locator(".message-notice")).not_to_contain_text("offline")
    expect(unsent.locator(".message-notice")).to_contain_text("connection is back")
    expect(unsent.locator(".retry-button")).to_have_text("Send now")
    w.shot("says-phone-02-back-online")

    # Two more, answered: "hello" stays where it was written, in this tab and after a reload.
    _ask(page, "Say one.")
    _ask(page, "Say two.")
    assert _users(page) == [["hello", "failed"], ["Say one.", "complete"], ["Say two.", "complete"]]
    page.reload()
    wait_state(page, "ready", timeout=30_000)
    expect(page.locator('#messages .message[data-role="user"]')).to_have_count(3)
    assert _users(page) == [["hello", "failed"], ["Say one.", "complete"], ["Say two.", "complete"]]
    expect(unsent.locator(".message-notice")).not_to_contain_text("Retry sends it")
    expect(unsent.locator(".retry-button")).to_have_text("Send now")
    page.locator(UNSENT).scroll_into_view_if_needed()
    w.shot("says-phone-03-reloaded-in-place")

    # Send now: it goes out as the newest message, its reply below it.
    unsent.locator(".retry-button").tap()
    expect(page.locator(LAST_REPLY)).to_have_attribute("data-status", "complete", timeout=REPLY_TIMEOUT_MS)
    expect(unsent).to_have_count(0)
    assert [u[0] for u in _users(page)] == ["Say one.", "Say two.", "hello"]
    w.shot("says-phone-04-sent-now")

    # Left unsent, it can be discarded: gone from the screen and from this browser.
    page.context.set_offline(True)
    wait_state(page, "offline")
    _send(page, "never mind")
    expect(unsent).to_have_count(1)
    unsent.locator(".discard-button").tap()
    expect(unsent).to_have_count(0)
    assert page.evaluate("Object.keys(localStorage).filter(k => k.startsWith('privchat.unsent.')).length") == 0
    page.context.set_offline(False)
    w.assert_clean()


@pytest.mark.parametrize("form", ["desktop", "phone"])
def test_server_down_at_page_load_cannot_load_yet(paired_page, form: str) -> None:
    phone = form == "phone"
    stack, w = _paired(paired_page, f"down-{form}", f"says down {form}", PHONE_390 if phone else None)
    page = w.page
    _ask(page, "Name a colour.")

    stack.server.stop()
    page.reload()
    wait_state(page, "unreachable", "reconnecting")
    main = page.locator(".empty-state")
    expect(main).to_contain_text("Can't load your conversations yet")
    expect(main).not_to_contain_text("Start a conversation")
    note = page.locator("#input-note")
    expect(note).to_be_visible()
    expect(note).to_contain_text("kept in this browser, to send when the server is back")
    w.shot(f"says-{form}-05-server-down-at-load")
    if phone:
        page.locator("#sidebar-toggle").tap()
        drawer_slid_in(page)
    listed = page.locator("#conversation-empty")
    expect(listed).to_be_visible()
    expect(listed).to_contain_text("Can't load your conversations yet")
    expect(page.locator("#sidebar")).not_to_contain_text("No conversations yet")
    w.shot(f"says-{form}-06-server-down-sidebar")

    stack.server.start()
    wait_state(page, "ready", timeout=30_000)
    expect(page.locator(".conversation-item")).to_have_count(1)
    expect(listed).to_be_hidden()
    expect(note).to_be_hidden()
    w.assert_clean()


def test_phone_revoked_device_gets_no_send_now_and_one_header_row(paired_page) -> None:
    stack, w = _paired(paired_page, "revoked", "says revoked")
    page = w.page
    _ask(page, "Name a colour.")

    stack.server.stop()
    _send(page, "are you there?")
    expect(page.locator(UNSENT)).to_have_count(1)
    stack.server.start()
    (device,) = [d for d in stack.devices() if d["name"] == "says revoked"]
    stack.server.cli("devices", "revoke", device["device_id"])

    page.reload()
    wait_state(page, "revoked", timeout=30_000)
    unsent = page.locator(UNSENT)
    expect(unsent).to_have_count(1)
    expect(unsent.locator(".message-notice")).to_contain_text("revoked")
    expect(unsent.locator(".message-notice")).not_to_contain_text("Retry")
    expect(unsent.locator(".retry-button")).to_have_count(0)
    expect(unsent.locator(".discard-button")).to_be_visible()
    # The header keeps one row: "Device revoked" beside "Pair again", not above it.
    status = page.locator("#status").bounding_box()
    repair = page.locator("#status-repair").bounding_box()
    assert status and repair
    assert abs((status["y"] + status["height"] / 2) - (repair["y"] + repair["height"] / 2)) < 6, (status, repair)
    assert page.locator(".topbar").bounding_box()["height"] < 60
    w.shot("says-phone-07-revoked")
    w.assert_clean()


def test_desktop_switching_versions_halfway_up_keeps_the_place(paired_page) -> None:
    _stack, w = _paired(paired_page, "versions", "says versions", None, max_tokens=24)
    page = w.page
    tall = "\n".join(f"line {i} of a long question" for i in range(8))
    for n in range(3):
        _ask(page, f"Question {n}.\n{tall}")
    replies = page.locator('#messages .message[data-role="assistant"]')
    second = replies.nth(1)
    second_id = second.get_attribute("data-id")
    second.locator(".regenerate").click()
    expect(page.locator(LAST_REPLY)).to_have_attribute("data-status", "complete", timeout=REPLY_TIMEOUT_MS)
    page.wait_for_function("() => !document.querySelector('.message[data-status=streaming]')")
    for n in range(3, 5):
        _ask(page, f"Question {n}.\n{tall}")

    # The regenerated reply, halfway up; ‹ switches to the first one (with its own long thread).
    new = page.locator('#messages .message[data-role="assistant"]').nth(1)
    expect(new.locator(".branch-count")).to_have_text("2/2")
    new.evaluate("el => el.scrollIntoView({block: 'center'})")
    frame_drawn(page)  # the list has heard its scroll event
    before = new.bounding_box()
    assert page.evaluate("(() => { const s = document.querySelector('#messages'); return s.scrollHeight - s.scrollTop - s.clientHeight; })()") > 200
    w.shot("says-desktop-08-before-switch")
    new.locator(".branch-prev").click()
    switched = page.locator(f'#messages .message[data-id="{second_id}"]')
    expect(switched.locator(".branch-count")).to_have_text("1/2")
    frame_drawn(page)  # the switched version is drawn in its place
    after = switched.bounding_box()
    assert before and after
    assert abs(after["y"] - before["y"]) <= 2, (before, after)
    assert page.evaluate("(() => { const s = document.querySelector('#messages'); return s.scrollHeight - s.scrollTop - s.clientHeight; })()") > 48, \
        "jumped to the bottom"
    w.shot("says-desktop-09-after-switch")
    w.assert_clean()


def test_phone_pairing_words_devices_storage_import_and_code_block(shared_stack, open_page) -> None:
    w = open_page(PHONE_390)
    page = w.page
    page.goto(shared_stack.chat_url)
    expect(page.locator("#pair-code")).to_be_focused()
    # The first step a phone shows makes sense by itself.
    first = page.locator(".pair-steps li:visible").first
    expect(first).to_have_id("pair-compare")
    assert not (first.text_content() or "").startswith("Afterwards")
    expect(first).to_contain_text("Once this browser is paired")
    w.shot("says-phone-10-pairing")

    pair_with_link(page, shared_stack, "says storage")
    close_pair_banner(page)
    page.locator("#devices-button").tap()
    storage = page.locator("#this-device-storage")
    expect(storage).not_to_be_empty()
    kept = page.evaluate("navigator.storage.persisted()")
    if kept:
        expect(storage).to_contain_text("keeps this site's storage")
    else:
        expect(storage).to_contain_text("add the page to your home screen")
    storage.scroll_into_view_if_needed()
    w.shot("says-phone-11-devices-storage")
    page.locator("#devices-dialog .dialog-head button").tap()

    # An export with a code block that opens with an empty line; imported twice: "already here".
    now = time.time()
    cid = f"says-{int(now)}"
    document = {"format": "privchat-export", "version": 1, "exported_at": now, "conversations": [{
        "id": cid, "title": "code", "created_at": now, "updated_at": now + 1, "messages": [
            {"id": f"{cid}-u", "role": "user", "content": "Print one in Python.", "status": "complete", "created_at": now},
            {"id": f"{cid}-a", "role": "assistant", "content": "Here:\n\n```python\n\nprint(1)\n```\n", "status": "complete",
             "created_at": now + 1, "ttft_ms": 123.0},
        ]}]}
    body = json.dumps(document).encode()
    page.locator("#sidebar-toggle").tap()
    page.set_input_files("#import-file", files=[{"name": "code.json", "mimeType": "application/json", "buffer": body}])
    expect(page.locator("#sidebar-message")).to_contain_text("Imported 1 conversations, 2 messages")
    page.set_input_files("#import-file", files=[{"name": "code.json", "mimeType": "application/json", "buffer": body}])
    expect(page.locator("#sidebar-message")).to_have_text("Imported 0 conversations, 0 messages, 2 already here.")
    page.locator(f'.conversation-item[data-id="{cid}"] .conversation-open').tap()
    reply = page.locator(f'.message[data-id="{cid}-a"]')
    expect(reply.locator("pre code")).to_have_text("print(1)\n")
    expect(reply.locator(".code-head .code-lang")).to_have_text("python")
    expect(reply.locator(".message-meta")).to_contain_text("first token 123 ms")
    # The code's first line is the first thing in the block below its head: no blank line above it.
    gap = reply.evaluate("""el => {
      const pre = el.querySelector('pre'), code = pre.querySelector('code');
      const r = document.createRange(); r.selectNodeContents(code);
      return r.getClientRects()[0].top - pre.getBoundingClientRect().top;
    }""")
    assert gap < 16, gap
    reply.scroll_into_view_if_needed()
    w.shot("says-phone-12-code-block")
    w.assert_clean()
