"""The model picker in Chromium against a real server with two embedded models: the
owner picks the second one, the reply is written by it and says so, and the choice survives a reload."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import LAST_REPLY, pair_with_link, send_and_watch

pytestmark = pytest.mark.browser


def _two_models(max_tokens: int) -> dict:
    """Config overrides: two embedded models, "first" the default, on one thread each."""
    return {"models": {"list": [{"name": "first", "engine": "embedded"}, {"name": "second", "engine": "embedded"}]},
            "generation": {"max_tokens": max_tokens}, "model": {"n_threads": 1}}


def test_pick_a_model_and_see_it_named_on_the_reply(paired_page) -> None:
    stack, w = paired_page("models", _two_models(24), device="e2e models")
    page = w.page
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
    assert stack.stored(reply_id)["model"] == "second"
    page.reload()
    expect(page.locator("#model-picker")).to_have_value("second")  # remembered in this browser
    expect(page.locator(f'.message[data-id="{reply_id}"]')).to_contain_text("second")  # from history
    w.assert_clean()


def test_the_default_model_set_in_the_settings_reaches_another_browser(paired_page, open_page) -> None:
    """The settings hold the default: set on one device, a second browser that picked nothing uses it."""
    stack, w = paired_page("models-default", _two_models(16), device="settings device")
    page = w.page
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
    assert stack.stored(reply_id)["model"] == "second"
