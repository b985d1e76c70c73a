"""The engines' figures, run by run_bench.py.

1. Upstream throughput: tokens/s of a reply through privchat to ``python -m llama_cpp.server`` ÷
   the same reply straight from that server, rounds interleaved, median of per-round ratios.
2. Returning to a conversation: time to first token when going back to one of the last 4
   conversations ÷ continuing the current one, each with a history long enough that reprocessing
   it takes seconds (the embedded model's RAM state cache is what keeps the ratio low).
3. Parallel slots: where ``llama-server`` is on PATH, two devices at once against its parallel
   slots (``parallel: 2``) vs the same two replies one after the other, as wall-clock time.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx

from tests.support.server import BackgroundStream, LiveServer, free_port, parse_sse, write_config
from tests.support.upstreams import LlamaCppServer

PROMPT = "Write a detailed essay about the history of the Roman Empire, from its founding to its fall."
SYSTEM = "You are a helpful, concise assistant."


def _median(values: list[float]) -> float:
    ordered = sorted(values)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2


def _privchat_stream(client: Any, body: dict[str, Any]) -> tuple[list[float], float, str]:
    """Token arrival times, the time the request was sent, and the conversation id."""
    sent = time.perf_counter()
    stamps: list[float] = []
    conversation = ""
    response = client.request("POST", "/api/chat", json_body=body, stream=True)
    try:
        for kind, data in parse_sse(response.iter_text()):
            if kind == "start":
                conversation = data["conversation_id"]
            elif kind == "token":
                stamps.append(time.perf_counter())
            elif kind in ("done", "error"):
                break
    finally:
        response.close()
    return stamps, sent, conversation


_DIRECT = httpx.Client(timeout=300, trust_env=False)  # one client, as privchat's own: no TLS setup per request


def _direct_stream(base_url: str, max_tokens: int) -> list[float]:
    """Token arrival times; the first entry is the time the request was sent."""
    stamps: list[float] = [time.perf_counter()]
    body = {"model": "smollm2", "messages": [{"role": "system", "content": SYSTEM}, {"role": "user", "content": PROMPT}],
            "temperature": 0.0, "max_tokens": max_tokens, "stream": True}
    with _DIRECT.stream("POST", f"{base_url}/chat/completions", json=body) as response:
        for line in response.iter_lines():
            if line.startswith("data:") and line[5:].strip() != "[DONE]":
                delta = json.loads(line[5:])["choices"][0].get("delta", {})
                if delta.get("content"):
                    stamps.append(time.perf_counter())
    return stamps


def _tps(stamps: list[float]) -> float:
    return (len(stamps) - 1) / (stamps[-1] - stamps[0]) if len(stamps) > 1 else float("nan")


def bench_upstream(folder: Path, model: Path, threads: int, rounds: int, reply_tokens: int = 256) -> dict[str, Any]:
    upstream = LlamaCppServer(model, threads=threads).wait()
    config = {"models": {"list": [{"name": "upstream", "engine": "openai", "base_url": upstream.base_url, "model": "smollm2"}]},
              "generation": {"system_prompt": SYSTEM}}
    server = LiveServer(folder, write_config(folder, config)).start()
    try:
        client = server.pair()
        body = {"message": PROMPT, "options": {"temperature": 0.0, "max_tokens": reply_tokens}}
        _direct_stream(upstream.base_url, 8)
        _privchat_stream(client, {**body, "options": {"temperature": 0.0, "max_tokens": 8}})
        ours, direct, ttft_added = [], [], []
        for _ in range(rounds):
            straight = _direct_stream(upstream.base_url, reply_tokens)
            through, sent, _ = _privchat_stream(client, body)
            direct.append(_tps(straight[1:]))
            ours.append(_tps(through))
            ttft_added.append(((through[0] - sent) - (straight[1] - straight[0])) * 1000)
        ratios = [o / d for o, d in zip(ours, direct)]
        return {"privchat_tps": round(_median(ours), 2), "direct_tps": round(_median(direct), 2),
                "ratio": round(_median(ratios), 4), "round_ratios": [round(r, 3) for r in ratios], "target_ratio": 0.97,
                "ttft_added_ms": round(_median(ttft_added), 1), "all_ttft_added_ms": [round(t, 1) for t in ttft_added]}
    finally:
        server.stop()
        upstream.stop()


def _history_message(index: int, words: int) -> str:
    return f"Conversation {index}. Here are my notes; read them and answer briefly. " + " ".join(
        f"note{index}-{i} the harbour keeps its ships safe from the northern storms" for i in range(words // 10))


def bench_return(folder: Path, model: Path, threads: int, rounds: int, conversations: int = 4,
                 history_words: int = 1800) -> dict[str, Any]:
    config = {"model": {"path": str(model), "n_threads": threads, "n_ctx": 8192},
              "models": {"state_cache_mib": 2048}, "generation": {"system_prompt": SYSTEM}}
    server = LiveServer(folder, write_config(folder, config)).start()
    try:
        client = server.pair()
        options = {"temperature": 0.0, "max_tokens": 8}
        ids, cold = [], []
        for i in range(conversations):  # each first reply processes the whole long history once
            stamps, sent, conversation = _privchat_stream(client, {"message": _history_message(i, history_words), "options": options})
            ids.append(conversation)
            cold.append((stamps[0] - sent) * 1000)
        order = list(ids)  # least recently used first
        returning, continuing = [], []
        for turn in range(rounds):
            back = order.pop(0)  # the oldest of the last four
            stamps, sent, _ = _privchat_stream(client, {"message": f"Back again ({turn}): one more fact?",
                                                        "conversation_id": back, "options": options})
            returning.append((stamps[0] - sent) * 1000)
            stamps, sent, _ = _privchat_stream(client, {"message": f"And another ({turn})?", "conversation_id": back,
                                                        "options": options})
            continuing.append((stamps[0] - sent) * 1000)
            order.append(back)
        return {"history_tokens_about": history_words * 13 // 10, "cold_first_reply_ttft_ms": round(_median(cold), 1),
                "return_ttft_ms": round(_median(returning), 1), "continue_ttft_ms": round(_median(continuing), 1),
                "ratio": round(_median(returning) / _median(continuing), 3), "target_ratio": 1.5,
                "all_return_ms": [round(t, 1) for t in returning], "all_continue_ms": [round(t, 1) for t in continuing]}
    finally:
        server.stop()


def bench_parallel(folder: Path, model: Path, threads: int, reply_tokens: int = 128) -> dict[str, Any]:
    binary = shutil.which("llama-server")
    if binary is None:
        return {"skipped": "llama-server is not on PATH"}
    port = free_port()
    process = subprocess.Popen([binary, "-m", str(model), "--host", "127.0.0.1", "--port", str(port), "--parallel", "2",
                                "-c", "4096", "-t", str(threads), "--cont-batching"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base_url = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{base_url}/models", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.3)
        config = {"models": {"list": [{"name": "slots", "engine": "openai", "base_url": base_url, "parallel": 2}]}}
        server = LiveServer(folder, write_config(folder, config)).start()
        try:
            phone, laptop = server.pair(name="phone"), server.pair(name="laptop")
            body = {"message": PROMPT, "options": {"temperature": 0.0, "max_tokens": reply_tokens}}
            _privchat_stream(phone, {**body, "options": {"max_tokens": 4}})
            began = time.perf_counter()
            _privchat_stream(phone, body)
            _privchat_stream(laptop, body)
            sequential = time.perf_counter() - began
            began = time.perf_counter()
            streams = [BackgroundStream(phone, body), BackgroundStream(laptop, body)]
            for stream in streams:
                stream.join(300)
            together = time.perf_counter() - began
            return {"sequential_s": round(sequential, 2), "together_s": round(together, 2),
                    "speedup": round(sequential / together, 3)}
        finally:
            server.stop()
    finally:
        process.terminate()
        process.wait(30)


def run(folder: Path, model: Path, threads: int, rounds: int) -> dict[str, Any]:
    folder.mkdir(parents=True, exist_ok=True)
    return {"upstream": bench_upstream(folder / "upstream", model, threads, rounds),
            "return": bench_return(folder / "return", model, threads, max(rounds, 5)),
            "parallel": bench_parallel(folder / "parallel", model, threads)}


def table_rows(result: dict[str, Any]) -> list[tuple[str, str, str, bool | None]]:
    rows: list[tuple[str, str, str, bool | None]] = []
    up = result.get("upstream") or {}
    if up:
        rows.append(("upstream: privchat / direct to llama_cpp.server", f"{up['ratio']:.3f} ({up['privchat_tps']} / "
                     f"{up['direct_tps']} tok/s)", ">= 0.97", up["ratio"] >= 0.97))
        if "ttft_added_ms" in up:
            rows.append(("upstream: time to first token added by privchat", f"{up['ttft_added_ms']} ms", "(reported)", None))
    back = result.get("return") or {}
    if back:
        rows.append(("TTFT back to 1 of last 4 conv. / continuing", f"{back['ratio']} ({back['return_ttft_ms']} vs "
                     f"{back['continue_ttft_ms']} ms; cold {back['cold_first_reply_ttft_ms']} ms)", "<= 1.5", back["ratio"] <= 1.5))
    par = result.get("parallel") or {}
    if "speedup" in par:
        rows.append(("llama-server 2 slots: one after the other / together", f"{par['speedup']} ({par['sequential_s']} s vs "
                     f"{par['together_s']} s)", "(reported)", None))
    elif par:
        rows.append(("llama-server parallel slots", par.get("skipped", "skipped"), "", None))
    return rows
