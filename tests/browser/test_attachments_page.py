"""Attachments in Chromium: a text file attached from the composer shows its chip and
gets a reply from the real model; an image is downsized by the page (a real canvas) before it is
sealed, and reaches a model that can see (an OpenAI stand-in that records the request) as an
image_url part no longer than 1024 px; a model that cannot see refuses the image at the button."""

from __future__ import annotations

import base64
from typing import Iterator

import pytest
from playwright.sync_api import expect

from privchat.attachments import image_size
from tests.browser.conftest import LAST_REPLY, pair_with_link, send_and_watch
from tests.support.documents import make_png
from tests.support.upstreams import FakeUpstream

pytestmark = pytest.mark.browser

CODE_WORD = "WALRUS5150"


@pytest.fixture
def fake() -> Iterator[FakeUpstream]:
    upstream = FakeUpstream()
    yield upstream
    upstream.stop()


def test_attach_a_text_file_see_its_chip_and_a_reply(stack_factory, open_page) -> None:
    stack = stack_factory("attach", {"generation": {"max_tokens": 16}, "model": {"n_threads": 1}})
    w = open_page()
    page = w.page
    pair_with_link(page, stack, "attach device")
    content = f"Shopping list\nmilk\nbread\nThe code word is {CODE_WORD}.\n".encode()
    page.set_input_files("#attach-input", files=[{"name": "list.txt", "mimeType": "text/plain", "buffer": content}])
    chip = page.locator("#attachment-chips .attachment-chip")
    expect(chip).to_have_attribute("data-status", "ready")
    expect(chip.locator(".attachment-name")).to_have_text("list.txt")
    expect(chip.locator(".attachment-size")).to_have_text(f"{len(content)} bytes")
    # The default model cannot see: an image is refused at the button, with its sentence, and not sent.
    page.set_input_files("#attach-input", files=[{"name": "p.png", "mimeType": "image/png", "buffer": make_png(32, 32)}])
    expect(page.locator("#attach-note")).to_contain_text("cannot see images")
    expect(page.locator("#attachment-chips .attachment-chip")).to_have_count(1)
    send_and_watch(page, "What is the code word in the list?")
    expect(page.locator("#attachment-chips")).to_be_hidden()
    sent = page.locator('.message[data-role="user"] >> nth=-1').locator(".attachment-row .attachment-name")
    expect(sent).to_have_text("list.txt")
    expect(page.locator(LAST_REPLY)).to_have_attribute("data-status", "complete")
    conversation = [c for c in stack.export()["conversations"]][-1]
    assert [a["name"] for a in conversation["attachments"]] == ["list.txt"]
    assert base64.b64decode(conversation["attachments"][0]["data"]) == content
    page.reload()  # from history: the chip is still on the message
    expect(page.locator('.message[data-role="user"] .attachment-row .attachment-name')).to_have_text("list.txt")
    w.shot("desktop-attachment-chip")
    w.assert_clean()


def test_an_image_is_downsized_in_the_browser_and_reaches_a_model_that_can_see(stack_factory, open_page, fake) -> None:
    stack = stack_factory("attach-image", {"models": {"list": [
        {"name": "eyes", "engine": "openai", "base_url": fake.url("slow"), "vision": True, "n_ctx": 8192}]},
        "generation": {"max_tokens": 16}})
    w = open_page()
    page = w.page
    pair_with_link(page, stack, "image device")
    big = make_png(3000, 2000)
    page.set_input_files("#attach-input", files=[{"name": "holiday.png", "mimeType": "image/png", "buffer": big}])
    chip = page.locator("#attachment-chips .attachment-chip")
    expect(chip).to_have_attribute("data-status", "ready", timeout=20_000)
    expect(chip.locator(".attachment-name")).to_have_text("holiday.jpg")  # re-encoded as JPEG
    send_and_watch(page, "Describe the picture.")
    parts = fake.requests[-1]["body"]["messages"][-1]["content"]
    assert isinstance(parts, list) and parts[-1]["type"] == "image_url", parts
    url = parts[-1]["image_url"]["url"]
    assert url.startswith("data:image/jpeg;base64,")
    sent = base64.b64decode(url.split(",", 1)[1])
    assert image_size(sent) == ("image/jpeg", 1024, 683), image_size(sent)
    w.assert_clean()
