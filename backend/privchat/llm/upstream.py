"""An OpenAI-compatible chat-completions server as a model: llama-server, vLLM, Ollama, LM Studio, llama_cpp.server.

A reply is one streamed ``POST <base_url>/chat/completions``; its ``delta.content`` pieces are the
tokens privchat relays, so the page sees the same start/token/done/error events as from the embedded
engine. The request is built here from scratch: the only header that leaves is the upstream's own API
key (read from ``api_key_file``), never a device signature, an Access token or anything else the
page sent. Every way an upstream can fail (not listening, too slow to connect or to send the first
token, a 4xx/5xx, a body that is not the stream it should be, a stream cut before its end) becomes a
coded error with a sentence that names the server, never a hang: each read waits at most
``first_token_timeout_seconds``. Cancelling closes the HTTP request, which is how these servers
learn to stop decoding.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import socket
import ssl
import threading
import time
from typing import Any, Callable
from urllib.parse import urlsplit

import httpx

from ..config import Config
from ..errors import (UPSTREAM_BAD_REPLY, UPSTREAM_CUT, UPSTREAM_ERROR, UPSTREAM_KEY_MISSING, UPSTREAM_NOT_PRIVATE,
                      UPSTREAM_TIMEOUT, UPSTREAM_UNREACHABLE, Code, CodedError)
from .engine_types import EngineStatus, GenerationParams, GenerationResult
from ..addresses import ip_of, is_private_address
from .specs import ModelSpec
from .upstream_context import MAX_RETRIES, context_overflow, fit_turns, shorter

log = logging.getLogger(__name__)

PROBE_SECONDS = 10.0  # a state older than this is probed again when the models are listed
CANCEL_POLL_SECONDS = 0.05


@functools.cache
def _tls_context() -> ssl.SSLContext:
    """Made once: a client made per request would otherwise read the CA bundle each time (about
    20 ms, before the request is even sent), for servers that are mostly plain http on the LAN."""
    return httpx.create_ssl_context()


class UpstreamFailed(CodedError):
    """The model server failed a reply (upstream_*); the sentence names it (base URL), never the conversation."""


class ContextOverflow(UpstreamFailed):
    """The server refused the prompt as longer than its context (``n_ctx``: the size it named)."""

    def __init__(self, message: str, n_ctx: int | None, entry: Code = UPSTREAM_ERROR) -> None:
        super().__init__(entry, message)
        self.n_ctx = n_ctx


class EndedBeforeAnyToken(ContextOverflow):
    """A stream that ended cleanly with no token and no end marker. llama_cpp.server answers a prompt
    longer than its context so (it fails inside a stream it already began), so it is tried shorter;
    a server that keeps doing it fails as a cut stream."""

    def __init__(self, message: str) -> None:
        super().__init__(message, None, UPSTREAM_CUT)


class UpstreamEngine:
    engine = "openai"

    def __init__(self, config: Config, spec: ModelSpec) -> None:
        self.config = config
        self.spec = spec
        self.where = spec.base_url
        self.status = EngineStatus(state="ready", name=spec.name, n_ctx=spec.n_ctx)
        # The sentence naming the server, for signed answers (/api/models, the reply's error); the
        # public health check gets status.error, which does not say where the server is.
        self.detail: str | None = None
        self._probed_at = 0.0
        self.parallel = spec.parallel
        self.allowed_hosts = config.models.upstream_hosts

    # State -------------------------------------------------------------------------------------
    @property
    def loaded(self) -> bool:
        return False

    def start_loading(self) -> None:
        """Nothing to load; a first probe says whether the server answers."""
        asyncio.get_running_loop().create_task(self.probe())

    async def wait_loaded(self) -> EngineStatus:
        return self.status

    def ensure_ready(self) -> None:
        return None  # a reply always tries: the last probe may be stale, and a failure is a clear error event

    async def probe(self, *, max_age: float = PROBE_SECONDS) -> EngineStatus:
        """``GET <base_url>/models``: ready when it answers 2xx, else unreachable/error with a sentence."""
        if time.monotonic() - self._probed_at < max_age:
            return self.status
        self._probed_at = time.monotonic()
        try:
            await self._check_address()
            async with self._client(read=self.spec.connect_timeout_seconds) as client:
                response = await client.get(f"{self.where}/models", headers=self._headers())
            if response.status_code >= 400:
                raise UpstreamFailed(UPSTREAM_ERROR, f"The model server at {self.where} answered {response.status_code}.")
        except UpstreamFailed as exc:
            self._state(exc)
            return self.status
        except Exception as exc:
            self._state(self._translate(exc))
            return self.status
        self._state(None)
        return self.status

    def _state(self, failure: UpstreamFailed | None) -> None:
        if failure is None:
            self.status.state, self.status.error, self.detail = "ready", None, None
            return
        unreachable = failure.entry in (UPSTREAM_UNREACHABLE, UPSTREAM_TIMEOUT)
        self.status.state = "unreachable" if unreachable else "error"
        self.status.error = "the model server is not answering" if unreachable else "the model server failed a request"
        self.detail = failure.message

    # Generation --------------------------------------------------------------------------------
    async def run(self, system_prompt: str, turns: list[dict[str, str]], params: GenerationParams,
                  on_token: Callable[[str], None], cancel: threading.Event) -> GenerationResult:
        """Stream one reply; returns when it ends, is cancelled (the request is closed) or fails (UpstreamFailed).

        A conversation longer than the server's context is shortened, oldest turns first
        (upstream_context.py): before sending when the size is known, and again when refused for it.
        """
        started = time.perf_counter()
        sent = fit_turns(system_prompt, turns, params.max_tokens, self.spec.n_ctx)
        retries = 0
        while True:
            progress: dict[str, Any] = {"parts": [], "first_at": None, "finish": None, "usage": None, "chunks": 0}
            try:
                await self._attempt(system_prompt, sent, params, on_token, cancel, progress)
                break
            except ContextOverflow as exc:
                fewer = self._fewer(system_prompt, sent, params, exc.n_ctx) if retries < MAX_RETRIES else None
                if fewer is None or cancel.is_set():
                    failed = UpstreamFailed(exc.entry, exc.message)
                    if isinstance(exc, EndedBeforeAnyToken):
                        self._state(failed)  # not the prompt's length after all: the server fails
                    raise failed from None
                log.info("the model server at %s refused %d turns as longer than its context; sending %d",
                         self.where, len(sent), len(fewer))
                sent, retries = fewer, retries + 1
        ended = time.perf_counter()
        finish = "cancelled" if cancel.is_set() and progress["finish"] is None else (progress["finish"] or "stop")
        usage = progress["usage"] or {}
        completion = int(usage.get("completion_tokens") or progress["chunks"])
        first_at = progress["first_at"]
        decode = ended - (first_at or started)
        self._state(None)
        return GenerationResult(
            text="".join(progress["parts"]), finish_reason=finish,
            prompt_tokens=int(usage.get("prompt_tokens") or 0), completion_tokens=completion,
            dropped_messages=len(turns) - len(sent),
            ttft_ms=None if first_at is None else (first_at - started) * 1000,
            total_ms=(ended - started) * 1000,
            tokens_per_second=(completion / decode) if decode > 0 and completion else None,
        )

    @staticmethod
    def _fewer(system_prompt: str, sent: list[dict[str, str]], params: GenerationParams,
               n_ctx: int | None) -> list[dict[str, str]] | None:
        """Fewer turns than were refused: fitted to the size the server named, else the newer half."""
        fitted = fit_turns(system_prompt, sent, params.max_tokens, n_ctx) if n_ctx else sent
        return fitted if len(fitted) < len(sent) else shorter(sent)

    async def _attempt(self, system_prompt: str, turns: list[dict[str, str]], params: GenerationParams,
                       on_token: Callable[[str], None], cancel: threading.Event, progress: dict[str, Any]) -> None:
        """One request, read until it ends; a cancel closes it."""
        reading = asyncio.ensure_future(self._stream(system_prompt, turns, params, on_token, progress))
        try:
            while not reading.done():
                if cancel.is_set():
                    reading.cancel()
                    break
                await asyncio.wait({reading}, timeout=CANCEL_POLL_SECONDS)
            try:
                await reading
            except asyncio.CancelledError:
                if not cancel.is_set():
                    raise
        except ContextOverflow:
            raise  # about this prompt, not the server: its state stays
        except UpstreamFailed as exc:
            self._state(exc)
            self._probed_at = time.monotonic()
            raise
        finally:
            if not reading.done():
                reading.cancel()

    async def _stream(self, system_prompt: str, turns: list[dict[str, str]], params: GenerationParams,
                      on_token: Callable[[str], None], progress: dict[str, Any]) -> None:
        await self._check_address()
        messages = ([{"role": "system", "content": system_prompt}] if system_prompt.strip() else []) + turns
        body: dict[str, Any] = {"model": self.spec.model, "messages": messages, "stream": True,
                                "max_tokens": params.max_tokens, "temperature": params.temperature}
        if params.seed >= 0:
            body["seed"] = params.seed
        try:
            async with self._client(read=self.spec.first_token_timeout_seconds) as client:
                async with client.stream("POST", f"{self.where}/chat/completions", json=body,
                                         headers=self._headers()) as response:
                    if response.status_code >= 400:
                        refused = (await response.aread())[:8192]
                        refusal = self._refusal(response.status_code, refused)
                        overflow, n_ctx = context_overflow(response.status_code, refused)
                        if overflow:
                            raise ContextOverflow(refusal, n_ctx)
                        raise UpstreamFailed(UPSTREAM_ERROR, refusal)
                    ended = False
                    async for line in response.aiter_lines():
                        if not line.startswith("data:"):
                            continue  # comments, event names, blank separators
                        data = line[5:].strip()
                        if data == "[DONE]":
                            ended = True
                            break
                        self._chunk(data, on_token, progress)
                    if not ended and progress["finish"] is None:
                        cut = f"The model server at {self.where} ended the reply before it was finished."
                        raise EndedBeforeAnyToken(cut) if not progress["chunks"] else UpstreamFailed(UPSTREAM_CUT, cut)
        except UpstreamFailed:
            raise
        except (httpx.HTTPError, OSError) as exc:
            raise self._translate(exc, mid_stream=bool(progress["chunks"])) from None

    def _chunk(self, data: str, on_token: Callable[[str], None], progress: dict[str, Any]) -> None:
        try:
            chunk = json.loads(data)
            if chunk.get("error"):
                raise UpstreamFailed(UPSTREAM_ERROR, where=self.where)
            if chunk.get("usage"):
                progress["usage"] = chunk["usage"]
            choices = chunk.get("choices") or []
            if not choices:
                return
            choice = choices[0]
            text = (choice.get("delta") or {}).get("content") or ""
            if not isinstance(text, str):
                raise TypeError("content")
        except UpstreamFailed:
            raise
        except (ValueError, TypeError, AttributeError, KeyError, IndexError):
            raise UpstreamFailed(UPSTREAM_BAD_REPLY, where=self.where) from None
        if text:
            progress["chunks"] += 1
            if progress["first_at"] is None:
                progress["first_at"] = time.perf_counter()
            progress["parts"].append(text)
            on_token(text)
        if choice.get("finish_reason"):
            progress["finish"] = choice["finish_reason"]

    def _refusal(self, status: int, content: bytes) -> str:
        detail = ""
        try:
            body = json.loads(content)
            error = body.get("error") if isinstance(body, dict) else None
            message = error.get("message") if isinstance(error, dict) else (error if isinstance(error, str) else body.get("detail"))
            if isinstance(message, str) and message:
                detail = f": {message[:200].rstrip('.')}"
        except Exception:
            pass
        return f"The model server at {self.where} refused the request ({status}){detail}."

    def _translate(self, exc: BaseException, *, mid_stream: bool = False) -> UpstreamFailed:
        if isinstance(exc, httpx.ConnectTimeout):
            return UpstreamFailed(UPSTREAM_TIMEOUT, where=self.where,
                                  detail=f"no connection within {self.spec.connect_timeout_seconds:g} s")
        if isinstance(exc, (httpx.ReadTimeout, httpx.PoolTimeout, httpx.WriteTimeout)):
            return UpstreamFailed(UPSTREAM_TIMEOUT, where=self.where,
                                  detail=f"nothing for {self.spec.first_token_timeout_seconds:g} s")
        if isinstance(exc, httpx.ConnectError):
            return UpstreamFailed(UPSTREAM_UNREACHABLE, where=self.where, detail="nothing listens there")
        if mid_stream or isinstance(exc, (httpx.RemoteProtocolError, httpx.ReadError)):
            return UpstreamFailed(UPSTREAM_CUT, where=self.where)
        return UpstreamFailed(UPSTREAM_UNREACHABLE, f"The model server at {self.where} could not be reached ({type(exc).__name__}).")

    # Plumbing ----------------------------------------------------------------------------------
    def _client(self, *, read: float) -> httpx.AsyncClient:
        timeout = httpx.Timeout(connect=self.spec.connect_timeout_seconds, read=read, write=30.0, pool=5.0)
        # trust_env=False: no proxy from the environment sees the conversation, no .netrc adds credentials.
        return httpx.AsyncClient(timeout=timeout, trust_env=False, follow_redirects=False, verify=_tls_context())

    def _headers(self) -> dict[str, str]:
        headers = {"Accept": "text/event-stream, application/json"}
        if self.spec.api_key_file is not None:
            try:
                key = self.spec.api_key_file.read_text(encoding="utf-8").strip()
            except OSError as exc:
                raise UpstreamFailed(UPSTREAM_KEY_MISSING, model=self.spec.name, cause=type(exc).__name__) from None
            if key:
                headers["Authorization"] = f"Bearer {key}"
        return headers

    async def _check_address(self) -> None:
        """A named host must still resolve to private addresses only (no DNS answer sends a chat abroad)."""
        host = (urlsplit(self.where).hostname or "").lower()
        if host == "localhost" or ip_of(host) is not None:
            return  # literals were checked with the config
        port = urlsplit(self.where).port or 80
        try:
            infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except OSError:
            raise UpstreamFailed(UPSTREAM_UNREACHABLE, where=self.where, detail=f"{host} does not resolve") from None
        for info in infos:
            address = ip_of(str(info[4][0]).split("%")[0])
            if address is None or not is_private_address(address):
                raise UpstreamFailed(UPSTREAM_NOT_PRIVATE, where=self.where)

    def close(self) -> None:
        return None
