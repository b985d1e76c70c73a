"""Model servers for the engine tests: the real ``python -m llama_cpp.server``, and small broken ones.

The real server runs the default GGUF on a loopback port, as an owner would run it; the fakes each
misbehave in one way an upstream can (a 500, a body that is not a stream, silence, a stream cut off,
a slow stream that notices when privchat hangs up) and record the headers they were sent.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx

from .server import free_port


class LlamaCppServer:
    """``python -m llama_cpp.server`` serving ``model`` as ``alias`` on 127.0.0.1."""

    def __init__(self, model: Path, alias: str = "smollm2", n_ctx: int = 2048, threads: int = 2,
                 api_key: str | None = None, extra_path: Path | None = None) -> None:
        self.port = free_port()
        self.alias = alias
        self.base_url = f"http://127.0.0.1:{self.port}/v1"
        self.process = subprocess.Popen(
            [sys.executable, "-m", "llama_cpp.server", "--model", str(model), "--model_alias", alias,
             "--host", "127.0.0.1", "--port", str(self.port), "--n_ctx", str(n_ctx), "--n_threads", str(threads),
             "--n_threads_batch", str(threads), "--verbose", "false", *(["--api_key", api_key] if api_key else [])],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            # extra_path: where the [server] extra's packages are, when this environment lacks them (scripts/bench)
            env={**os.environ, "PYTHONUNBUFFERED": "1", **({"PYTHONPATH": str(extra_path)} if extra_path else {})})

    def wait(self, timeout: float = 90) -> "LlamaCppServer":
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"llama_cpp.server exited: {self.process.stderr.read().decode(errors='replace')[-2000:]}")
            try:
                if httpx.get(f"{self.base_url}/models", timeout=1).status_code in (200, 401):
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise RuntimeError("llama_cpp.server did not start")

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()


class FakeUpstream:
    """One HTTP server; the first path segment picks the behaviour: ``http://…/<mode>/v1``.

    Modes: ``slow`` (a token every 50 ms, up to 400 or max_tokens), ``error500``, ``garbage``, ``silent``
    (never answers), ``cut`` (three tokens, then the connection closes), ``small`` (as ``slow``, but
    a prompt over SMALL_CONTEXT tokens is refused as llama-server refuses it), ``empty`` (a stream
    that ends before anything is in it). ``requests`` keeps each
    request's headers; ``hangups`` counts streams the client closed before the end.
    """

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.hangups = threading.Event()
        self.active = 0
        self.max_active = 0
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                self._json(200, {"object": "list", "data": [{"id": "fake", "object": "model"}]})

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
                fake.requests.append({"headers": {k.lower(): v for k, v in self.headers.items()}, "body": body,
                                      "path": self.path})
                mode = self.path.strip("/").split("/")[0]
                if mode == "error500":
                    self._json(500, {"error": {"message": "out of memory on the GPU"}})
                elif mode == "garbage":
                    self._start()
                    self._send("data: {this is not json\n\n")
                elif mode == "silent":
                    time.sleep(30)
                elif mode == "small" and sum(len(m["content"]) for m in body["messages"]) // 4 > SMALL_CONTEXT:
                    # llama-server's refusal of a prompt longer than its context
                    self._json(400, {"error": {"code": 400, "type": "exceed_context_size_error",
                                               "message": "the request exceeds the available context size, try increasing it",
                                               "n_ctx": SMALL_CONTEXT}})
                elif mode == "empty":  # a stream begun and ended with nothing in it
                    self._start()
                    self.close_connection = True
                elif mode == "cut":
                    self._start()
                    for word in ("one ", "two ", "three "):
                        self._send(_chunk(word))
                    self.close_connection = True
                    self.connection.shutdown(2)
                elif mode == "brief":  # a few words whatever max_tokens allows: tests about the prompt, not the reply
                    self._stream(3)
                else:
                    self._stream(min(400, int(body.get("max_tokens") or 400)))

            def _stream(self, count: int) -> None:
                fake.active += 1
                fake.max_active = max(fake.max_active, fake.active)
                try:
                    self._start()
                    for i in range(count):
                        self._send(_chunk(f"w{i} "))
                        time.sleep(0.05)
                    self._send(_chunk("", "stop") + "data: [DONE]\n\n")
                except OSError:
                    fake.hangups.set()
                finally:
                    fake.active -= 1

            def _start(self) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.end_headers()

            def _send(self, text: str) -> None:
                self.wfile.write(text.encode())
                self.wfile.flush()

            def _json(self, status: int, data: Any) -> None:
                raw = json.dumps(data).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def url(self, mode: str) -> str:
        return f"http://127.0.0.1:{self.port}/{mode}/v1"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


SMALL_CONTEXT = 512  # tokens, counted as 4 characters each, of the fake ``small`` server


def _chunk(text: str, finish: str | None = None) -> str:
    data = {"object": "chat.completion.chunk", "choices": [{"index": 0, "delta": {"content": text} if text else {},
                                                             "finish_reason": finish}]}
    return f"data: {json.dumps(data)}\n\n"
