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
