"""The page in Chromium against a real server with the real model, on two origins as in production."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import expect

from tests.browser.conftest import (LAST_REPLY, PHONE, REPLY_TIMEOUT_MS, assert_streamed, pair_with_link,
                                    send_and_watch, submit_pairing, wait_state)

pytestmark = pytest.mark.browser

FIRST_MESSAGE = "Say hello and tell me one fact about the sea."
LONG_MESSAGE = "Write a very long story about a dragon who learns to bake bread. Use many chapters."


def _poll(check, timeout: float = 10.0):
    """Polls a server-side fact (the server has no push channel to a test)."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.1)


def _message(export: dict, message_id: str) -> dict | None:
    for conv in export["conversations"]:
        for m in conv["messages"]:
            if m["id"] == message_id:
                return m
    return None


def test_full_flow_desktop(stack_factory, open_page) -> None:
    stack = stack_factory("flow")
    w = open_page()
    page = w.page

    # --- pair through the link `privchat pair` prints
    pairing = stack.pairing()
    page.goto(pairing["url"])
    expect(page.locator("#pair-code")).to_have_value(pairing["code"])
    assert "#" not in page.evaluate("location.href") and "#" not in page.url, "the pairing code stayed in the address bar"
    expect(page.locator("#pair-reason")).to_have_attribute("data-reason", "first")
    assert wait_state(page, "unpaired") == "unpaired"
    w.shot("desktop-01-pairing")
    submit_pairing(page, "e2e desktop")
    expect(page.locator("#pair-banner")).to_be_visible()
    [device] = stack.devices()
    assert device["name"] == "e2e desktop" and device["status"] == "active"
    expect(page.locator("#fingerprint")).to_have_text(device["fingerprint"])
    w.shot("desktop-02-paired")
    page.click("#pair-banner-close")
    expect(page.locator("#pair-banner")).to_be_hidden()

    # --- a message with Enter, a reply that streams in
    log = send_and_watch(page, FIRST_MESSAGE)
    assert_streamed(log)
    user = page.locator('.message[data-role="user"]')
    expect(user).to_have_count(1)
    expect(user).to_have_attribute("data-status", "complete")
    expect(user.locator(".message-body")).to_have_text(FIRST_MESSAGE)
    first_reply = page.locator(LAST_REPLY)
    first_reply_id = first_reply.get_attribute("data-id")
    first_reply_text = first_reply.locator(".message-body").inner_text().strip()
    assert first_reply_text and first_reply_id
    expect(page.locator("#message-input")).to_have_value("")
    expect(page.locator(".conversation-item")).to_have_count(1)
    w.shot("desktop-03-first-reply")

    # --- reload: the conversation is still there (kept by the server, opened from the sidebar)
    page.reload()
    wait_state(page, "ready")
    expect(page.locator("#app")).to_have_attribute("data-view", "chat")
    item = page.locator(".conversation-item")
    expect(item).to_have_count(1)
    first_conversation = item.get_attribute("data-id")
    item.locator(".conversation-open").click()
    expect(page.locator('.message[data-role="user"] .message-body')).to_have_text([FIRST_MESSAGE])
    expect(page.locator(f'.message[data-id="{first_reply_id}"]')).to_have_attribute("data-status", "complete")
    expect(page.locator(f'.message[data-id="{first_reply_id}"] .message-body')).to_have_text(first_reply_text)
    expect(item).to_have_class("conversation-item active")
    w.shot("desktop-04-after-reload")

    # --- a long reply (max tokens raised in the settings), stopped mid-stream with Escape
    page.click("#settings-button")
    dialog = page.locator("#settings-dialog")
    expect(dialog).to_be_visible()
    expect(page.locator("#setting-max-tokens")).to_have_value("512")  # loaded from the server
    page.fill("#setting-max-tokens", "2048")
    page.click("#settings-save")
    expect(page.locator("#settings-status")).to_have_text("Saved.")
    dialog.locator("button[value=close]").click()
    expect(dialog).to_be_hidden()
    page.click("#new-conversation")
    expect(page.locator(".message")).to_have_count(0)
    page.fill("#message-input", LONG_MESSAGE)
    page.press("#message-input", "Enter")
    page.wait_for_function("""() => {
        const m = [...document.querySelectorAll('.message[data-role="assistant"]')].pop();
        return m && m.dataset.status === "streaming" && m.querySelector(".message-body").textContent.length > 60;
    }""", timeout=REPLY_TIMEOUT_MS)
    expect(page.locator("#stop-button")).to_be_visible()
    w.shot("desktop-05-streaming")
    page.press("#message-input", "Escape")
    stopped = page.locator(LAST_REPLY)
    expect(stopped).to_have_attribute("data-status", "cancelled")
    expect(stopped.locator(".message-notice")).to_contain_text("Stopped")
    expect(page.locator("#stop-button")).to_be_hidden()
    expect(page.locator("#send-button")).to_be_visible()
    stopped_id = stopped.get_attribute("data-id")
    saved = _poll(lambda: (m := _message(stack.export(), stopped_id)) and m["status"] == "cancelled" and m)
    assert saved, f"the server did not keep the stopped reply as cancelled: {_message(stack.export(), stopped_id)}"
    assert saved["content"].strip(), "the partial reply was not kept"
    assert (saved.get("completion_tokens") or 0) < 2048
    expect(page.locator(".conversation-item")).to_have_count(2)
    w.shot("desktop-06-stopped")

    # --- export: JSON and Markdown downloads with the conversations
    with page.expect_download() as download_info:
        page.click("#export-json")
    download = download_info.value
    assert download.suggested_filename.endswith(".json"), download.suggested_filename
    exported = json.loads(Path(download.path()).read_text(encoding="utf-8"))
    assert exported["format"] == "privchat-export"
    by_id = {c["id"]: c for c in exported["conversations"]}
    assert first_conversation in by_id and len(by_id) == 2
    assert [m["content"] for m in by_id[first_conversation]["messages"] if m["role"] == "user"] == [FIRST_MESSAGE]
    assert _message(exported, stopped_id)["status"] == "cancelled"
    assert _message(exported, first_reply_id)["status"] == "complete"
    with page.expect_download() as download_info:
        page.click("#export-markdown")
    download = download_info.value
    assert download.suggested_filename.endswith(".md"), download.suggested_filename
    markdown = Path(download.path()).read_text(encoding="utf-8")
    assert FIRST_MESSAGE in markdown and LONG_MESSAGE in markdown
    expect(page.locator("#sidebar-message")).to_contain_text("Exported")

    # --- revoked with the CLI: the page says so at its next check (focus), and pairs again
    stack.server.cli("devices", "revoke", device["device_id"])
    page.evaluate("window.dispatchEvent(new Event('focus'))")
    assert wait_state(page, "revoked", timeout=25_000) == "revoked"  # the 15 s poll, if a check was in flight
    expect(page.locator("#status")).to_contain_text("revoked")
    expect(page.locator("#send-button")).to_be_disabled()
    w.shot("desktop-07-revoked")
    page.click("#status-repair")
    expect(page.locator("#app")).to_have_attribute("data-view", "pairing")
    expect(page.locator("#pair-reason")).to_have_attribute("data-reason", "revoked")
    page.fill("#pair-code", stack.pairing()["code"])
    submit_pairing(page, "e2e desktop again")
    devices = {d["name"]: d for d in stack.devices()}
    assert devices["e2e desktop"]["status"] == "revoked"
    assert devices["e2e desktop again"]["status"] == "active"
    new_fingerprint = devices["e2e desktop again"]["fingerprint"]
    assert new_fingerprint != device["fingerprint"]
    expect(page.locator("#fingerprint")).to_have_text(new_fingerprint)
    expect(page.locator(".conversation-item")).to_have_count(2)  # the history stays with the server
    expect(page.locator("#send-button")).to_be_enabled()
    w.shot("desktop-08-paired-again")

    # --- the server stops: the page says so, and comes back by itself when the server does
    stack.server.stop()
    page.evaluate("window.dispatchEvent(new Event('focus'))")
    state = wait_state(page, "reconnecting", "unreachable", timeout=25_000)
    w.shot(f"desktop-09-{state}")
    stack.server.start()
    wait_state(page, "ready", timeout=45_000)
    expect(page.locator("#status")).to_contain_text("Ready")
    w.shot("desktop-10-back")

    w.assert_clean()


def test_phone_pairing_and_first_reply(shared_stack, open_page) -> None:
    w = open_page(PHONE)
    page = w.page
    page.goto(shared_stack.chat_url)
    code = page.locator("#pair-code")
    expect(code).to_be_focused()
    expect(page.locator("#sidebar-toggle")).to_be_hidden()  # no drawer while pairing
    code.press_sequentially(shared_stack.pairing()["code"])
    w.shot("phone-01-pairing")
    submit_pairing(page, "e2e phone", tap=True)
    width, height = PHONE["viewport"]["width"], PHONE["viewport"]["height"]

    # The sidebar is a drawer: hidden, opened by the toggle, closed by the scrim.
    toggle = page.locator("#sidebar-toggle")
    expect(toggle).to_be_visible()
    expect(page.locator("#sidebar")).to_be_hidden()
    toggle.tap()
    expect(toggle).to_have_attribute("aria-expanded", "true")
    expect(page.locator("#new-conversation")).to_be_in_viewport()
    w.shot("phone-02-drawer")
    page.locator("#scrim").tap(position={"x": width - 20, "y": height // 2})
    expect(toggle).to_have_attribute("aria-expanded", "false")
    expect(page.locator("#sidebar")).to_be_hidden()

    log = send_and_watch(page, FIRST_MESSAGE, click=lambda: page.locator("#send-button").tap())
    assert_streamed(log)
    box = page.locator("#message-input").bounding_box()
    assert box is not None
    assert box["x"] >= 0 and box["y"] >= 0 and box["x"] + box["width"] <= width and box["y"] + box["height"] <= height, box
    expect(page.locator("#send-button")).to_be_in_viewport()
    assert page.evaluate("document.documentElement.scrollWidth") <= width, "the page scrolls sideways on a phone"
    w.shot("phone-03-reply")
    w.assert_clean()


def test_markdown_payloads_are_inert(shared_stack, open_page) -> None:
    w = open_page()
    page = w.page
    pair_with_link(page, shared_stack, "e2e markdown")
    conversation_id = f"xss-{os.getpid()}"
    assistant = "\n\n".join([
        "Some **bold** text and a [safe link](https://example.org/).",
        '<img src=x onerror="window.__pwned=1">',
        "<script>window.__pwned=1</script>",
        "[x](javascript:window.__pwned=1)",
        '<a href="JaVaScRiPt:window.__pwned=1">raw link</a>',
        '<svg onload="window.__pwned=1"><circle r="1"/></svg>',
        '<iframe srcdoc="&lt;script&gt;parent.__pwned=1&lt;/script&gt;"></iframe>',
        '<details open ontoggle="window.__pwned=1"><summary>s</summary>t</details>',
        '<form action="javascript:window.__pwned=1"><button>go</button></form>',
    ])
    user_text = '<img src=x onerror="window.__pwned=1"> please'
    now = time.time()
    document = {"format": "privchat-export", "version": 1, "exported_at": now, "conversations": [{
        "id": conversation_id, "title": "payloads", "created_at": now, "updated_at": now + 1, "messages": [
            {"id": f"{conversation_id}-u", "role": "user", "content": user_text, "status": "complete", "created_at": now},
            {"id": f"{conversation_id}-a", "role": "assistant", "content": assistant, "status": "complete", "created_at": now + 1},
        ]}]}
    page.set_input_files("#import-file", files=[{"name": "payloads.json", "mimeType": "application/json",
                                                 "buffer": json.dumps(document).encode()}])
    expect(page.locator("#sidebar-message")).to_contain_text("Imported 1 conversations, 2 messages")
    assert _message(shared_stack.export(), f"{conversation_id}-a")["content"] == assistant  # stored as written
    page.locator(f'.conversation-item[data-id="{conversation_id}"] .conversation-open').click()
    reply = page.locator(f'.message[data-id="{conversation_id}-a"]')
    expect(reply.locator("strong")).to_have_text("bold")  # markdown was rendered, not shown raw
    safe = reply.locator('a[href="https://example.org/"]')
    expect(safe).to_have_attribute("rel", "noopener noreferrer")
    expect(safe).to_have_attribute("target", "_blank")
    expect(page.locator(f'.message[data-id="{conversation_id}-u"] .message-body')).to_have_text(user_text)
    page.wait_for_load_state("networkidle")
    found = page.evaluate("""() => {
        const root = document.querySelector("#messages");
        const all = [...root.querySelectorAll("*")];
        return {
          pwned: typeof window.__pwned,
          handlers: all.flatMap((el) => [...el.attributes].filter((a) => a.name.startsWith("on")).map((a) => `${el.tagName} ${a.name}`)),
          tags: all.map((el) => el.tagName.toLowerCase()).filter((t) => ["script", "img", "svg", "iframe", "form", "details"].includes(t)),
          jsLinks: [...root.querySelectorAll("a[href]")].map((a) => a.getAttribute("href")).filter((h) => /^\\s*javascript:/i.test(h)),
          imgOnerror: root.querySelectorAll("img[onerror]").length,
        };
    }""")
    assert found == {"pwned": "undefined", "handlers": [], "tags": [], "jsLinks": [], "imgOnerror": 0}, found
    assert page.locator('#messages a[href^="javascript:" i]').count() == 0
    w.shot("desktop-markdown-payloads")
    # Chromium reports the on* attributes the sanitizer parsed (and dropped) as blocked handlers;
    # nothing else may be refused (no image load, no connection, no script).
    w.assert_clean(blocked_handlers=True)


def test_wrong_pairing_code_says_so_and_the_form_still_works(shared_stack, open_page) -> None:
    w = open_page()
    page = w.page
    shared_stack.pairing()  # the owner's code is open: a typed code is checked against it (an OPAQUE login)
    page.goto(shared_stack.chat_url)
    expect(page.locator("#pair-reason")).to_have_attribute("data-reason", "first")
    page.fill("#pair-code", "WRONG-CODE1")
    page.fill("#device-name", "e2e wrong code")
    page.click("#pair-button")
    error = page.locator("#pair-error")
    expect(error).to_be_visible()
    expect(error).to_have_text("That pairing code is not valid. Check it for typos, or run privchat pair again for a new one.")
    expect(error.locator("code")).to_have_text("privchat pair")  # the backticks are drawn as <code>
    expect(page.locator("#pair-button")).to_be_enabled()
    expect(page.locator("#app")).to_have_attribute("data-view", "pairing")
    assert "e2e wrong code" not in {d["name"] for d in shared_stack.devices()}
    w.shot("desktop-pair-wrong-code")
    page.fill("#pair-code", shared_stack.pairing()["code"])
    submit_pairing(page, "e2e right code")
    expect(error).to_be_hidden()
    w.assert_clean()


def test_model_error_is_shown_with_the_servers_sentence(stack_factory, open_page, tmp_path: Path) -> None:
    not_gguf = tmp_path / "model.bin"
    not_gguf.write_bytes(b"PK\x03\x04" + os.urandom(4096))
    stack = stack_factory("broken-model", {"model": {"path": str(not_gguf)}}, wait_for="error")
    health = stack.server.health()
    assert health["model"]["state"] == "error" and "not a GGUF file" in health["model"]["error"]
    w = open_page()
    page = w.page
    pairing = stack.pairing()
    page.goto(pairing["url"])
    page.fill("#device-name", "e2e broken model")
    page.click("#pair-button")
    expect(page.locator("#app")).to_have_attribute("data-view", "chat")
    assert wait_state(page, "model_error") == "model_error"
    expect(page.locator("#status")).to_contain_text(health["model"]["error"])
    expect(page.locator("#status-retry")).to_be_visible()
    # A message cannot reach the model: it stays, with the reason and a Retry button.
    page.fill("#message-input", "Are you there?")
    page.press("#message-input", "Enter")
    user = page.locator('.message[data-role="user"]')
    expect(user).to_have_attribute("data-status", "failed")
    expect(user.locator(".message-notice")).to_contain_text("not a GGUF file")
    expect(user.locator(".retry-button")).to_be_visible()
    expect(page.locator('.message[data-role="assistant"]')).to_have_count(0)
    w.shot("desktop-model-error")
    w.assert_clean()


def test_csp_header_is_served_and_enforced(shared_stack, open_page) -> None:
    site_headers = (shared_stack.site.directory / "_headers").read_text()
    expected = next(line.split(":", 1)[1].strip() for line in site_headers.splitlines()
                    if line.strip().startswith("Content-Security-Policy:"))
    assert f"connect-src 'self' {shared_stack.server.url};" in expected, expected
    w = open_page()
    page = w.page
    response = page.goto(shared_stack.chat_url)
    assert response is not None and response.ok
    assert response.headers.get("content-security-policy") == expected
    assert response.headers.get("x-frame-options") == "DENY"
    script = httpx.get(shared_stack.site.origin + "/chat/app.js")
    assert script.headers.get("content-security-policy") == expected
    wait_state(page, "unpaired")
    w.assert_clean()  # the page itself needs nothing the policy forbids

    # The browser enforces it: an origin outside connect-src and an inline script are refused,
    # and the watcher every test relies on sees both.
    outside = "http://127.0.0.1:9/"  # not in connect-src
    blocked = page.evaluate("(url) => fetch(url).then(() => 'fetched', (e) => 'refused')", outside)
    assert blocked == "refused"
    page.evaluate("""() => { const s = document.createElement("script"); s.textContent = "window.__inline = 1";
                             document.head.appendChild(s); }""")
    page.wait_for_function("window.__cspViolations.length >= 2")
    assert page.evaluate("typeof window.__inline") == "undefined"
    problems = w.csp_problems()
    assert any("connect-src" in p for p in problems) and any("script-src" in p for p in problems), problems
    with pytest.raises(AssertionError, match="CSP violations"):
        w.assert_clean()
