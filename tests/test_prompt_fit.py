"""Prompt fitting with the real model's chat template and tokenizer."""

from __future__ import annotations

import asyncio

import pytest

from privchat.config import config_from_dict
from privchat.llm.engine import ModelEngine


@pytest.fixture(scope="module")
def engine() -> ModelEngine:
    engine = ModelEngine(config_from_dict({"model": {"n_ctx": 1024}}))

    async def load() -> None:
        engine.start_loading()
        await engine.wait_loaded()

    asyncio.run(load())
    assert engine.status.state == "ready", engine.status.error
    yield engine
    engine.close()


def turns(count: int, words: int = 30) -> list[dict[str, str]]:
    return [{"role": "user" if i % 2 == 0 else "assistant", "content": f"turn {i} " + "word " * words} for i in range(count)]


def test_the_models_own_template_is_used(engine: ModelEngine) -> None:
    fitted = engine.fit("Be brief.", [{"role": "user", "content": "Hello there"}], 64)
    assert "<|im_start|>system\nBe brief.<|im_end|>" in fitted.prompt  # SmolLM2's ChatML template from GGUF metadata
    assert fitted.prompt.rstrip().endswith("<|im_start|>assistant")
    assert fitted.dropped_messages == 0 and not fitted.truncated


def test_old_turns_are_dropped_to_fit_the_window(engine: ModelEngine) -> None:
    history = turns(61)  # ends on a user turn, far more than 1024 tokens
    fitted = engine.fit("System prompt.", history, 256)
    assert fitted.prompt_tokens + fitted.max_tokens <= 1024
    assert fitted.dropped_messages > 0
    assert "turn 60 " in fitted.prompt and "turn 0 " not in fitted.prompt
    kept = history[fitted.dropped_messages:]
    assert kept[0]["role"] == "user"  # templates want a user turn first
    # As many as fit: keeping one more turn would not fit.
    one_more = engine.fit("System prompt.", history[fitted.dropped_messages - 2:], 256)
    assert one_more.dropped_messages > 0


def test_one_huge_message_keeps_its_end(engine: ModelEngine) -> None:
    message = "start " + "filler " * 5000 + "THE QUESTION AT THE END?"
    fitted = engine.fit("System prompt.", [{"role": "user", "content": message}], 128)
    assert fitted.truncated
    assert "THE QUESTION AT THE END?" in fitted.prompt and "start filler" not in fitted.prompt
    assert fitted.prompt_tokens + fitted.max_tokens <= 1024


def test_max_tokens_larger_than_the_window_is_clamped(engine: ModelEngine) -> None:
    fitted = engine.fit("", [{"role": "user", "content": "hi"}], 100_000)
    assert fitted.max_tokens <= 1024 - fitted.prompt_tokens
    assert fitted.max_tokens >= 700


# the page asks before sending whether a message fits (POST /api/tokens), and a
# reply to a message that did not fit says its start was cut (the done event's message_cut).
def test_count_tokens_says_exactly_when_the_message_would_be_cut(engine: ModelEngine) -> None:
    counted = engine.count_tokens("Hello there", "Be brief.", 256)
    assert counted is not None
    tokens, room = counted
    assert tokens == len(engine._fitter.tokenize("Hello there"))  # the model's own tokenizer
    assert 0 < room < 1024 - 256
    # A message of exactly `room` tokens is read whole; one more token and its start is cut.
    word = " word"
    assert len(engine._fitter.tokenize(word * 10)) == 10
    fits = "word" + word * (room - 1)
    assert engine.count_tokens(fits, "Be brief.", 256)[0] == room
    assert not engine.fit("Be brief.", [{"role": "user", "content": fits}], 256).truncated
    assert engine.fit("Be brief.", [{"role": "user", "content": fits + word}], 256).truncated


def test_a_reply_to_a_message_longer_than_the_context_says_it_was_cut(engine: ModelEngine) -> None:
    import threading

    from privchat.llm.engine_types import GenerationParams

    message = "start " + "filler " * 3000 + "What is the capital of France?"
    result = engine.generate("Be brief.", [{"role": "user", "content": message}], GenerationParams(0.0, 4, 1),
                             lambda _text: None, threading.Event())
    assert result.message_cut
    short = engine.generate("Be brief.", [{"role": "user", "content": "Hi"}], GenerationParams(0.0, 4, 1),
                            lambda _text: None, threading.Event())
    assert not short.message_cut
