"""``POST /api/tokens``: a message's length in the model's tokens against what the
model can read, before it is sent: estimated with the model off, counted with llama.cpp's tokenizer
with the real model in memory (and in test_prompt_fit.py, against the prompt fitting itself)."""

from __future__ import annotations

from typing import Iterator

import pytest

from tests.support.inprocess import InProcessServer, started
from tests.support.server import SignedClient


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SignedClient]:
    for server in started(tmp_path_factory.mktemp("tokens"), {"model": {"enabled": False, "n_ctx": 2048}}):
        yield server.pair()


def test_a_long_message_is_counted_against_the_models_context(client: SignedClient) -> None:
    long = "The quick brown fox jumps over the lazy dog. " * 320  # about 2,800 words
    answer = client.post("/api/tokens", {"text": long})
    assert answer.status_code == 200, answer.text
    got = answer.json()
    assert got["n_ctx"] == 2048 and got["exact"] is False and got["model"]
    assert got["tokens"] > got["room"] > 0 and got["room"] < 2048 - 512  # max_tokens (512) stays for the reply
    short = client.post("/api/tokens", {"text": "What is the capital of France?"}).json()
    assert 0 < short["tokens"] < short["room"]


def test_an_unknown_model_is_named(client: SignedClient) -> None:
    answer = client.post("/api/tokens", {"text": "hi", "model": "nope"})
    assert answer.status_code == 400 and answer.json()["error"]["code"] == "model_unknown"


def test_the_route_is_signed(tmp_path_factory: pytest.TempPathFactory) -> None:
    for server in started(tmp_path_factory.mktemp("tokens-unsigned"), {"model": {"enabled": False}}):
        response = server.http().post("/api/tokens", json={"text": "hi"})
        assert response.status_code in (401, 403), response.text


def test_an_embedded_model_in_memory_counts_with_llama_cpps_tokenizer(shared_client: SignedClient) -> None:
    long = "The quick brown fox jumps over the lazy dog. " * 320
    got = shared_client.post("/api/tokens", {"text": long}).json()
    assert got["exact"] is True and got["n_ctx"] == 2048
    assert got["tokens"] > got["room"] > 0  # about 3,200 tokens against what a 2,048-token model reads
    one = shared_client.post("/api/tokens", {"text": "The quick brown fox jumps over the lazy dog. "}).json()
    # BPE: the same sentence, the same tokens (its trailing space joins the next "The", but the last one's is a token)
    assert got["tokens"] == 320 * (one["tokens"] - 1) + 1
