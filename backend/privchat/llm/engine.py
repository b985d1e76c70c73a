"""The GGUF model behind the chat, through llama-cpp-python.

The model loads in a background thread so the server answers health checks at once; every problem
with the file becomes a state (``error``) and a sentence the page can show, never a crash. Decoding
runs in a worker thread (llama.cpp releases the GIL while it computes), one generation at a time,
so the event loop keeps answering other requests while a reply streams.

One ``ModelEngine`` is one embedded model of ``models.list`` (llm/specs.py); the registry
(llm/models.py) loads and unloads them. Each keeps the model state of recent conversations in RAM
(state_cache.py), so going back to one of them does not reprocess its whole history.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable

from ..config import Config
from ..errors import MODEL_LOADING, MODEL_UNAVAILABLE
from .engine_types import EngineStatus, GenerationParams, GenerationResult, ModelUnavailable
from .context_memory import context_bytes
from .model_files import check_model_file, default_model_path
from .prompt import MAX_REPLY_SHARE, MIN_REPLY_TOKENS, FittedPrompt, PromptFitter
from .specs import ModelSpec, model_specs
from .state_cache import StateCache

log = logging.getLogger(__name__)

# A GGUF without a chat template still gets a sensible prompt: ChatML, the most common format.
FALLBACK_CHAT_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


class ModelEngine:
    """Owns the llama.cpp model; ``generate`` is blocking and must run in a worker thread."""

    engine = "embedded"

    def __init__(self, config: Config, spec: ModelSpec | None = None) -> None:
        self.config = config
        self.model_config = config.model
        self.spec = spec or model_specs(config)[0]
        self.path = self.spec.path or default_model_path()
        self.status = EngineStatus(
            state="loading" if self.model_config.enabled else "disabled",
            name=self.spec.name,
            path=str(self.path) if self.path else None,
        )
        if not self.model_config.enabled:
            self.status.error = "the model is turned off in the config (model.enabled: false)"
        self._llm: Any = None
        self._fitter: PromptFitter | None = None
        # Held while a message is counted (count_tokens, outside the decode lock: a count never waits
        # for a reply) and while the model is freed, so a count never reads a freed vocabulary.
        self._count_lock = threading.Lock()
        self._load_task: asyncio.Task[None] | None = None
        # One decode at a time: llama.cpp contexts are not re-entrant.
        self._decode_lock = threading.Lock()
        self.states = StateCache(config.models.state_cache_mib * 2**20)
        self.last_used = 0.0
        self.switch_load = False  # loading because a reply asked for it (that reply waits; it is not refused)
        self._context_bytes: int | None = None
        self._context_measured = False

    @property
    def loaded(self) -> bool:
        return self._llm is not None

    def memory_bytes(self) -> int:
        """What loading this model takes, roughly: the file (weights are mapped whole) and its
        context's KV cache once measured (``measure_context``)."""
        try:
            size = self.path.stat().st_size if self.path else 0
        except OSError:
            return 0
        return size + (self._context_bytes or 0)

    def measure_context(self) -> int | None:
        """The bytes of this model's KV cache, read from the GGUF header once (blocking: a thread)."""
        if not self._context_measured and self.path is not None and check_model_file(self.path, None) is None:
            self._context_bytes = context_bytes(self.path, self.spec.n_ctx or self.model_config.n_ctx)
            self._context_measured = True
        return self._context_bytes

    def fit_problem(self, free: int | None = -1) -> str | None:
        """``check_model_file`` with the context counted as far as it is measured."""
        return check_model_file(self.path, free, self._context_bytes or 0)

    # Loading -----------------------------------------------------------------------------------
    def start_loading(self) -> None:
        if self.status.state == "unloaded":
            self.status.state, self.status.error, self._load_task = "loading", None, None
        if self.status.state != "loading" or self._load_task is not None:
            return
        self._load_task = asyncio.get_running_loop().create_task(self._load())

    async def unload(self) -> None:
        """Free the model (after the decoding on it, if any: a title); its RAM states go with it."""
        self._load_task = None
        if self.status.state in ("ready", "loading"):
            self.status.state = "unloaded"

        def close() -> None:
            with self._decode_lock, self._count_lock:
                llm, self._llm = self._llm, None
                self.states.clear()
                if llm is not None:
                    llm.close()

        await asyncio.to_thread(close)
        log.info("model unloaded: %s", self.status.name)

    async def wait_loaded(self) -> EngineStatus:
        if self._load_task is not None:
            await asyncio.shield(self._load_task)
        return self.status

    async def _load(self) -> None:
        await asyncio.to_thread(self.measure_context)
        problem = self.fit_problem()
        if problem:
            self._fail(problem)
            return
        try:
            await asyncio.to_thread(self._load_blocking)
        except Exception as exc:  # llama.cpp reports bad files as exceptions; keep the server up
            self._fail(f"llama.cpp could not load {self.path.name if self.path else 'the model'}: "
                       f"the file may be truncated or corrupt ({type(exc).__name__}: {exc})")
            return
        self.status.state = "ready"
        log.info("model ready: %s (n_ctx=%s)", self.status.name, self.status.n_ctx)

    def _fail(self, sentence: str) -> None:
        self.status.state = "error"
        self.status.error = sentence
        log.error("model failed to load: %s", sentence)

    def _load_blocking(self) -> None:
        from llama_cpp import Llama  # imported here: it is slow, and the server must answer first

        threads = self.spec.n_threads or max(1, os.cpu_count() or 1)
        vision: dict[str, Any] = {}
        if self.spec.mmproj is not None:  # the multimodal projector: images through libmtmd
            from llama_cpp.llama_chat_format import MTMDChatHandler

            vision["chat_handler"] = MTMDChatHandler(clip_model_path=str(self.spec.mmproj), verbose=False)
        llm = Llama(
            model_path=str(self.path),
            n_ctx=self.spec.n_ctx or self.model_config.n_ctx,
            n_threads=threads,
            n_threads_batch=threads,
            n_batch=self.spec.n_batch,
            seed=self.model_config.seed if self.model_config.seed >= 0 else 0xFFFFFFFF,
            verbose=False,
            **vision,
        )
        template = llm.metadata.get("tokenizer.chat_template") or FALLBACK_CHAT_TEMPLATE
        self._fitter = PromptFitter(
            template=template,
            eos_token=_token_text(llm, llm.token_eos()),
            bos_token=_token_text(llm, llm.token_bos()),
            tokenize=lambda text: llm.tokenize(text.encode("utf-8"), add_bos=False, special=True),
            n_ctx=llm.n_ctx(),
        )
        self._llm = llm
        self.status.n_ctx = llm.n_ctx()

    # Generation --------------------------------------------------------------------------------
    def ensure_ready(self) -> None:
        if self.status.state == "ready":
            return
        if self.status.state in ("loading", "unloaded"):
            raise ModelUnavailable(MODEL_LOADING)
        raise ModelUnavailable(MODEL_UNAVAILABLE, reason=self.status.public_error)

    def fit(self, system_prompt: str, turns: list[dict[str, str]], max_tokens: int) -> FittedPrompt:
        assert self._fitter is not None
        return self._fitter.fit(system_prompt, turns, max_tokens)

    def count_tokens(self, text: str, system_prompt: str, max_tokens: int) -> tuple[int, int] | None:
        """Blocking (a thread): ``text`` in the model's own tokens, and how many tokens a message can
        have and still be read whole (the context, less the room kept for the reply, the system prompt
        and the chat template's markers: what ``PromptFitter.fit`` keeps). None when not loaded.
        Tokenizing reads only the vocabulary, so it does not wait for a reply being decoded."""
        with self._count_lock:
            fitter = self._fitter
            if self._llm is None or fitter is None:
                return None
            reply = max(MIN_REPLY_TOKENS, min(max_tokens, int(fitter.n_ctx * MAX_REPLY_SHARE)))
            system = [{"role": "system", "content": system_prompt}] if system_prompt.strip() else []
            frame = len(fitter.tokenize(fitter.render(system + [{"role": "user", "content": ""}])))
            return len(fitter.tokenize(text)), max(0, fitter.n_ctx - reply - frame)

    def generate(self, system_prompt: str, turns: list[dict[str, str]], params: GenerationParams,
                 on_token: Callable[[str], None], cancel: threading.Event) -> GenerationResult:
        """Blocking: fit the prompt, decode token by token, stop within a token of ``cancel``."""
        self.ensure_ready()
        if any(not isinstance(turn["content"], str) for turn in turns):
            return self._generate_seeing(system_prompt, turns, params, on_token, cancel)
        with self._decode_lock:
            if self._llm is None:  # unloaded between the check above and the lock (a model switch)
                raise ModelUnavailable(MODEL_LOADING)
            started = time.perf_counter()
            fitted = self.fit(system_prompt, turns, params.max_tokens)
            tokens = fitted.tokens
            self.states.before(self._llm, params.cache_key, tokens)
            stream = self._llm.create_completion(
                prompt=tokens,
                max_tokens=fitted.max_tokens,
                temperature=params.temperature,
                seed=params.seed if params.seed >= 0 else None,
                stop=fitted.stop,
                stream=True,
            )
            try:
                # Every chunk is a token, even one whose text is empty (a partial UTF-8 character).
                relayed = _relay(stream, lambda choice: choice.get("text") or "", on_token, cancel, empty_counts=True)
            finally:
                stream.close()
            ended = time.perf_counter()
            self.states.after(self._llm, params.cache_key)
        return relayed.result(started, ended, len(tokens), fitted.dropped_messages, fitted.truncated)

    def _generate_seeing(self, system_prompt: str, turns: list[dict[str, Any]], params: GenerationParams,
                         on_token: Callable[[str], None], cancel: threading.Event) -> GenerationResult:
        """A prompt with images (OpenAI content parts), through the model's multimodal chat handler
        (``mmproj``). The turns to keep are fitted on their text; the images go with the last turn."""
        from .attachment_prompt import text_of

        with self._decode_lock:
            if self._llm is None:
                raise ModelUnavailable(MODEL_LOADING)
            started = time.perf_counter()
            fitted = self.fit(system_prompt, [{"role": t["role"], "content": text_of(t["content"])} for t in turns], params.max_tokens)
            kept = turns[fitted.dropped_messages:]
            messages = ([{"role": "system", "content": system_prompt}] if system_prompt.strip() else []) + kept
            self.states.clear()  # the handler evaluates the prompt itself: no saved state matches it
            stream = self._llm.create_chat_completion(messages=messages, max_tokens=fitted.max_tokens,
                                                      temperature=params.temperature, stream=True,
                                                      seed=params.seed if params.seed >= 0 else None)
            relayed = _relay(stream, lambda choice: (choice.get("delta") or {}).get("content") or "", on_token, cancel,
                             empty_counts=False)
            ended = time.perf_counter()
        return relayed.result(started, ended, fitted.prompt_tokens, fitted.dropped_messages, fitted.truncated)

    async def run(self, system_prompt: str, turns: list[dict[str, str]], params: GenerationParams,
                  on_token: Callable[[str], None], cancel: threading.Event) -> GenerationResult:
        """The engines' common entry point: ``generate`` in a worker thread."""
        self.last_used = time.monotonic()
        try:
            return await asyncio.to_thread(self.generate, system_prompt, turns, params, on_token, cancel)
        finally:
            self.last_used = time.monotonic()

    def close(self) -> None:
        self.states.clear()
        llm, self._llm = self._llm, None
        if llm is not None:
            with self._decode_lock, self._count_lock:
                llm.close()


@dataclass
class _Relayed:
    """What a reply's stream gave: its pieces, when the first came, how it ended, how many tokens."""

    pieces: list[str]
    first_at: float | None
    finish_reason: str
    tokens: int

    def result(self, started: float, ended: float, prompt_tokens: int, dropped_messages: int,
               message_cut: bool = False) -> GenerationResult:
        decode_seconds = ended - (self.first_at or started)
        return GenerationResult(
            text="".join(self.pieces), finish_reason=self.finish_reason, prompt_tokens=prompt_tokens,
            completion_tokens=self.tokens, dropped_messages=dropped_messages, message_cut=message_cut,
            ttft_ms=None if self.first_at is None else (self.first_at - started) * 1000, total_ms=(ended - started) * 1000,
            tokens_per_second=(self.tokens / decode_seconds) if decode_seconds > 0 and self.tokens else None)


def _relay(chunks: Any, text_of: Callable[[dict[str, Any]], str], on_token: Callable[[str], None],
           cancel: threading.Event, *, empty_counts: bool) -> _Relayed:
    """Hand each chunk's text to ``on_token`` as it comes, until the stream ends or ``cancel`` is set."""
    relayed = _Relayed([], None, "stop", 0)
    for chunk in chunks:
        choice = chunk["choices"][0]
        text = text_of(choice)
        if text or empty_counts:
            relayed.tokens += 1
        if text:
            if relayed.first_at is None:
                relayed.first_at = time.perf_counter()
            relayed.pieces.append(text)
            on_token(text)
        if choice.get("finish_reason"):
            relayed.finish_reason = choice["finish_reason"]
        if cancel.is_set():
            relayed.finish_reason = "cancelled"
            break
    return relayed


def _token_text(llm: Any, token_id: int) -> str:
    return llm._model.token_get_text(token_id) if token_id != -1 else ""
