"""The model picker in Chromium against a real server with two embedded models: the
owner picks the second one, the reply is written by it and says so, and the choice survives a reload."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import LAST_REPLY, pair_with_link, send_and_watch

pytestmark = pytest.mark.browser


def test_pick_a_model_and_see_it_named_on_the_reply(stack_factory, open_page) -> None:
    stack = stack_factory("models", {
        "models": {"list": [{"name": "first", "engine": "embedded"}, {"name": "second", "engine": "embedded"}]},
        "generation": {"max_tokens": 24},
        "model": {"n_threads": 1},
    })
    w = open_page()
    page = w.page
    pair_with_link(page, stack, "e2e models")
    picker = page.locator("#model-picker")
    expect(picker).to_be_visible()
    expect(picker).to_have_value("first")  # the server's default
    expect(picker.locator("option")).to_have_text(["first", "second — loads when used"])
    expect(page.locator("#status .status-text")).to_have_text("Ready — first")
    picker.select_option("second")
    expect(page.locator("#status .status-text")).to_have_text("Ready — second")  # what replies go to now
    send_and_watch(page, "Say hello in three words.")
    expect(page.locator(LAST_REPLY)).to_contain_text("second")
    # The reply loaded "second" and unloaded "first" (models.max_loaded: 1): the picker says so at once.
    expect(picker.locator("option")).to_have_text(["first — loads when used", "second"])
    reply_id = page.locator(LAST_REPLY).get_attribute("data-id")
    stored = [m for c in stack.export()["conversations"] for m in c["messages"] if m["id"] == reply_id]
    assert stored and stored[0]["model"] == "second"
    page.reload()
    expect(page.locator("#model-picker")).to_have_value("second")  # remembered in this browser
    expect(page.locator(f'.message[data-id="{reply_id}"]')).to_contain_text("second")  # from history
    w.assert_clean()


def test_the_default_model_set_in_the_settings_reaches_another_browser(stack_factory, open_page) -> None:
    """The settings hold the default: set on one device, a second browser that picked nothing uses it."""
    stack = stack_factory("models-default", {
        "models": {"list": [{"name": "first", "engine": "embedded"}, {"name": "second", "engine": "embedded"}]},
        "generation": {"max_tokens": 16},
        "model": {"n_threads": 1},
    })
    w = open_page()
    page = w.page
    pair_with_link(page, stack, "settings device")
    page.click("#settings-button")
    choice = page.locator("#setting-default-model")
    expect(choice).to_have_value("first")
    choice.select_option("second")
    page.click("#settings-save")
    expect(page.locator("#settings-status")).to_have_text("Saved.")
    w.shot("desktop-settings-default-model")
    other = open_page().page
    pair_with_link(other, stack, "second browser")
    expect(other.locator("#model-picker")).to_have_value("second")
    # Health names the config's first model; the status names the settings' default, which replies use.
    expect(other.locator("#status .status-text")).to_have_text("Ready — second")
    send_and_watch(other, "Say hi.")
    reply_id = other.locator(LAST_REPLY).get_attribute("data-id")
    stored = [m for c in stack.export()["conversations"] for m in c["messages"] if m["id"] == reply_id]
    assert stored and stored[0]["model"] == "second"
