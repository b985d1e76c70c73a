"""Embedded models: switching between two GGUFs while another device streams, memory refusals, the RAM state cache.

The second GGUF is made here from the default model (requantised to Q4_0 into a temporary folder);
no model file is ever committed.
"""

from __future__ import annotations

import asyncio
import ctypes
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from privchat.config import config_from_dict
from privchat.llm import models as models_module
from privchat.llm.engine import ModelEngine
from privchat.llm.engine_types import GenerationParams, ModelUnavailable
from privchat.llm.model_files import default_model_path
from privchat.llm.models import ModelRegistry
from privchat.llm.specs import model_specs
from tests.support.server import BackgroundStream, LiveServer, write_config

pytestmark = pytest.mark.model


@pytest.fixture(scope="module")
def second_gguf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import llama_cpp

    out = tmp_path_factory.mktemp("second-model") / "smollm2-q4_0.gguf"
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = llama_cpp.LLAMA_FTYPE_MOSTLY_Q4_0
    params.allow_requantize = True
    params.nthread = 2
    assert llama_cpp.llama_model_quantize(str(default_model_path()).encode(), str(out).encode(), ctypes.byref(params)) == 0
    return out


# One decoding thread: on a shared two-core machine, two threads that wait on each other's spin
# barrier make llama.cpp up to a hundred times slower whenever another process runs.
THREADS = 1


def two_models(second: Path, **more: Any) -> dict[str, Any]:
    return {"model": {"n_threads": THREADS},
            "models": {"list": [{"name": "first", "engine": "embedded"},
                                {"name": "second", "engine": "embedded", "path": str(second)}], **more}}


def test_switching_models_while_another_device_streams(second_gguf: Path, tmp_path: Path) -> None:
    server = LiveServer(tmp_path, write_config(tmp_path, two_models(second_gguf))).start()
    try:
        phone, laptop = server.pair(name="phone"), server.pair(name="laptop")
        states = {m["name"]: m["state"] for m in phone.get("/api/models").json()["models"]}
        assert states == {"first": "ready", "second": "unloaded"}
        long = BackgroundStream(phone, {"message": "Tell me a long story.", "model": "first",
                                        "options": {"max_tokens": 200, "temperature": 0}})
        assert long.streaming.wait(30)
        other = BackgroundStream(laptop, {"message": "Say hi.", "model": "second", "options": {"max_tokens": 16}})
        slowest = 0.0
        while not (long.finished.is_set() and other.finished.is_set()):
            began = time.monotonic()
            assert httpx.get(f"{server.url}/api/health", timeout=5).status_code == 200
            slowest = max(slowest, time.monotonic() - began)
            time.sleep(0.05)
        assert slowest < 1.0, f"health took {slowest:.2f} s during the switch"
        for stream, model in ((long, "first"), (other, "second")):
            events = stream.join()
            assert events[0][1]["model"] == model and events[-1][0] == "done", events[-3:]
            kinds = [kind for kind, _ in events]
            if model == "second":  # it had to load first: the page is told why no token comes yet
                assert ("loading", {"model": "second"}) in events and kinds.index("loading") < kinds.index("token"), kinds[:5]
            else:
                assert "loading" not in kinds
            assert events[-1][1]["status"] == "complete"
            conversation = phone.get(f"/api/history/{events[0][1]['conversation_id']}").json()
            reply = conversation["messages"][-1]
            assert reply["model"] == model and reply["content"] == "".join(d["text"] for k, d in events if k == "token")
        states = {m["name"]: m["state"] for m in phone.get("/api/models").json()["models"]}
        assert states == {"first": "unloaded", "second": "ready"}  # models.max_loaded: 1
        back = phone.chat("And again.", max_tokens=8)  # no model named: the default, loaded again
        assert back[0][1]["model"] == "first" and back[-1][0] == "done"
        assert ("loading", {"model": "first"}) in back
    finally:
        server.stop()


async def test_a_model_that_does_not_fit_is_refused_and_the_current_one_stays(
        second_gguf: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    registry = ModelRegistry(config_from_dict(two_models(second_gguf, max_loaded=2)))  # nothing would be unloaded
    registry.start_loading()
    assert (await registry.wait_loaded()).state == "ready"
    try:
        monkeypatch.setattr(models_module, "available_memory_bytes", lambda: 10 * 2**20)
        with pytest.raises(ModelUnavailable) as refused:
            registry.check("second")
        assert refused.value.code == "model_too_big"
        assert "does not fit" in refused.value.message and "stays loaded" in refused.value.message
        with pytest.raises(ModelUnavailable):
            await registry.ensure_loaded("second")
        assert registry.engines["first"].loaded and registry.engines["second"].status.state == "unloaded"
        monkeypatch.undo()
        await registry.ensure_loaded("second")  # with the memory there, it loads beside the first
        assert registry.engines["second"].loaded and registry.engines["first"].loaded
    finally:
        registry.close()


async def test_the_context_counts_when_a_switch_checks_the_memory(second_gguf: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The file fits; the file and the KV cache of 8192 tokens (about 180 MiB here) do not."""
    def registry_with(n_ctx: int) -> ModelRegistry:
        config = two_models(second_gguf, max_loaded=2)
        config["models"]["list"][1]["n_ctx"] = n_ctx
        return ModelRegistry(config_from_dict(config))

    free = second_gguf.stat().st_size + 40 * 2**20
    for n_ctx, fits in ((8192, False), (512, True)):  # the control: a small context fits in the same memory
        registry = registry_with(n_ctx)
        registry.start_loading()
        assert (await registry.wait_loaded()).state == "ready"
        try:
            monkeypatch.setattr(models_module, "available_memory_bytes", lambda: free)
            if fits:
                await registry.ensure_loaded("second")
                assert registry.engines["second"].loaded
            else:
                with pytest.raises(ModelUnavailable) as refused:
                    await registry.ensure_loaded("second")
                assert refused.value.code == "model_too_big"
                assert "with the memory for its context" in refused.value.message, refused.value.message
                assert registry.engines["second"].status.state == "unloaded" and registry.engines["first"].loaded
                with pytest.raises(ModelUnavailable):  # a request's early check knows it now too
                    registry.check("second")
            monkeypatch.undo()
        finally:
            registry.close()


async def test_titles_use_a_model_in_memory_and_never_load_one(second_gguf: Path) -> None:
    """After a switch unloaded the default model, titles are written with the one in memory."""
    registry = ModelRegistry(config_from_dict(two_models(second_gguf)))  # models.max_loaded: 1
    registry.start_loading()
    assert (await registry.wait_loaded()).state == "ready"
    try:
        await registry.ensure_loaded("second")
        assert not registry.engines["first"].loaded  # the default, unloaded by the switch
        params = GenerationParams(temperature=0.0, max_tokens=4, seed=1)

        def title(model: str | None) -> Any:
            return registry.generate("Write a title.", [{"role": "user", "content": "About the sea"}], params,
                                     lambda _t: None, threading.Event(), model=model)

        for wrote_the_reply in ("first", "second", None):
            assert (await asyncio.to_thread(title, wrote_the_reply)).completion_tokens > 0
        assert not registry.engines["first"].loaded and registry.engines["second"].loaded  # nothing loaded for it
        await registry.engines["second"].unload()
        with pytest.raises(ModelUnavailable):  # none in memory: no title now, and no load either
            await asyncio.to_thread(title, "second")
    finally:
        registry.close()


def long_history(rounds: int) -> list[dict[str, str]]:
    turns = []
    for i in range(rounds):
        turns.append({"role": "user", "content": f"Question {i}: " + "tell me about the sea and the ships " * 12})
        turns.append({"role": "assistant", "content": f"Answer {i}: " + "the ships sail on the wide grey sea " * 12})
    return turns


async def conversation_switches(cache_mib: int) -> tuple[list[str], float, int]:
    """A reply in A, one in B, then back to A: A's texts, A's second time to first token, cache hits."""
    config = config_from_dict({"model": {"n_ctx": 2048, "seed": 7, "n_threads": THREADS}, "models": {"state_cache_mib": cache_mib}})
    engine = ModelEngine(config, model_specs(config)[0])
    engine.start_loading()
    assert (await engine.wait_loaded()).state == "ready"
    try:
        history = long_history(3)
        texts = []

        def run(key: str, turns: list[dict[str, str]]) -> Any:
            params = GenerationParams(temperature=0.0, max_tokens=12, seed=7, cache_key=key)
            return engine.generate("Be brief.", turns, params, lambda _t: None, threading.Event())

        first = await asyncio.to_thread(run, "A", history + [{"role": "user", "content": "And the harbour?"}])
        texts.append(first.text)
        await asyncio.to_thread(run, "B", [{"role": "user", "content": "Hello, who are you?"}])
        again = await asyncio.to_thread(run, "A", history + [{"role": "user", "content": "And the harbour?"},
                                                             {"role": "assistant", "content": first.text},
                                                             {"role": "user", "content": "And the lighthouse?"}])
        texts.append(again.text)
        return texts, again.ttft_ms or 0.0, engine.states.hits
    finally:
        engine.close()


async def test_returning_to_a_recent_conversation_reuses_its_state_from_ram() -> None:
    cached_texts, cached_ttft, hits = await conversation_switches(cache_mib=256)
    fresh_texts, fresh_ttft, no_hits = await conversation_switches(cache_mib=0)
    assert hits == 1 and no_hits == 0
    assert cached_texts == fresh_texts  # the restored state continues exactly as a full reprocessing does
    assert cached_ttft < fresh_ttft * 0.6, (cached_ttft, fresh_ttft)
