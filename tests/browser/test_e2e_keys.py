"""The server's end-to-end key as the owner meets it in Chromium: the pairing link pins
it, a link naming another key is refused before anything is sent, the page shows the same short
fingerprint `privchat pair` prints, and after `privchat e2e rotate` the page moves to the new key
by itself and keeps chatting, without pairing again."""

from __future__ import annotations

import json

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import pair_with_link, send_and_watch, wait_state

pytestmark = pytest.mark.browser


def test_a_link_naming_another_key_is_refused_before_anything_is_sent(stack_factory, open_page) -> None:
    stack = stack_factory("e2e-mismatch", {"generation": {"max_tokens": 16}})
    w = open_page()
    page = w.page
    pairing = stack.pairing()
    other_kid = "A" * 43  # a well-formed thumbprint of no key this server holds
    assert f"e2e={pairing['server_key']['kid']}" in pairing["url"]
    page.goto(pairing["url"].replace(pairing["server_key"]["kid"], other_kid))
    expect(page.locator("#pair-code")).to_have_value(pairing["code"])
    page.fill("#device-name", "mismatch")
    page.click("#pair-button")
    error = page.locator("#pair-error")
    expect(error).to_be_visible()
    expect(error).to_contain_text("key")
    w.shot("e2e-key-mismatch")
    devices = json.loads(stack.server.cli("devices", "list", "--json").stdout)["devices"]
    assert devices == [], "a device registered although the link named another server key"
    # Control: the right link pairs, and the code was not used up by the refusal.
    page.goto(pairing["url"])
    expect(page.locator("#pair-code")).to_have_value(pairing["code"])
    page.fill("#device-name", "right key")
    page.click("#pair-button")
    wait_state(page, "ready", timeout=30_000)


def test_the_page_shows_the_fingerprint_and_follows_a_rotation(stack_factory, open_page) -> None:
    stack = stack_factory("e2e-rotate", {"generation": {"max_tokens": 16}})
    w = open_page()
    page = w.page
    pairing = pair_with_link(page, stack, "rotating")
    if page.locator("#pair-banner-close").is_visible():
        page.click("#pair-banner-close")
    send_and_watch(page, "Say one word.")
    before = pairing["server_key"]["fingerprint"]

    rotated = json.loads(stack.server.cli("e2e", "rotate", "--json").stdout)
    assert rotated["current"]["fingerprint"] != before and rotated["previous"][0]["fingerprint"] == before
    # The page notices at its next health check (focus triggers one), re-pins through a request
    # sealed to the old key, and the next message is sealed to the new one.
    page.evaluate("window.dispatchEvent(new Event('focus'))")
    send_and_watch(page, "Say another word.")
    page.click("#devices-button")
    expect(page.locator("#this-device-server-key")).to_have_text(rotated["current"]["fingerprint"], timeout=20_000)
    w.shot("e2e-key-rotated")
    assert wait_state(page, "ready") == "ready"
