"""Settings bounds the server keeps with a sentence: max_tokens is 16 or more and
at most the default model's context, refused with a code the page marks on the field."""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import pytest

from tests.support.inprocess import InProcessServer, started
from tests.support.server import SignedClient


@pytest.fixture(scope="module")
def small_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InProcessServer]:
    """A model of 2,048 tokens (the default n_ctx), as in the issue."""
    yield from started(tmp_path_factory.mktemp("limits"), {"model": {"enabled": False, "n_ctx": 2048}})


@pytest.fixture(scope="module")
def client(small_server: InProcessServer) -> SignedClient:
    return small_server.pair()


def _refused(response, code: str) -> str:  # type: ignore[no-untyped-def]
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["code"] == code, response.text
    return str(error["message"])


def test_max_tokens_above_the_models_context_is_refused_with_a_sentence_naming_it(client: SignedClient) -> None:
    before = client.get("/api/settings").json()["max_tokens"]
    for value in (100_000, 32_768, 2049):
        sentence = _refused(client.put("/api/settings", {"max_tokens": value}), "max_tokens_too_large")
        assert "2048" in sentence and "context" in sentence, sentence
        assert "Input should be" not in sentence
    assert client.get("/api/settings").json()["max_tokens"] == before  # nothing saved
    assert client.put("/api/settings", {"max_tokens": 2048}).json()["max_tokens"] == 2048


def test_max_tokens_below_16_is_refused_not_raised_silently(client: SignedClient) -> None:
    for value in (0, 1, 15):
        sentence = _refused(client.put("/api/settings", {"max_tokens": value}), "max_tokens_too_small")
        assert "16" in sentence, sentence
    assert client.put("/api/settings", {"max_tokens": 16}).json()["max_tokens"] == 16


def test_the_bound_follows_the_default_model_an_upstream_without_n_ctx_keeps_the_config_bound(tmp_path: Path) -> None:
    models = {"default": "small", "list": [
        {"name": "small", "engine": "embedded", "n_ctx": 1024},
        {"name": "big", "engine": "openai", "base_url": "http://127.0.0.1:9/v1", "n_ctx": 8192},
        {"name": "unsized", "engine": "openai", "base_url": "http://127.0.0.1:9/v1"},
    ]}
    for server in started(tmp_path, {"models": models}):
        client = server.pair()
        assert "1024" in _refused(client.put("/api/settings", {"max_tokens": 4096}), "max_tokens_too_large")
        # The bound is the context of the default model being chosen in the same request.
        assert client.put("/api/settings", {"max_tokens": 4096, "default_model": "big"}).status_code == 200
        assert "8192" in _refused(client.put("/api/settings", {"max_tokens": 9000}), "max_tokens_too_large")
        sentence = _refused(client.put("/api/settings", {"max_tokens": 40_000, "default_model": "unsized"}),
                            "max_tokens_too_large")
        assert "32768" in sentence and "n_ctx" in sentence, sentence
        assert client.put("/api/settings", {"max_tokens": 30_000, "default_model": "unsized"}).status_code == 200
