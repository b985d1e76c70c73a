"""Running generations: one at a time, a bounded queue, cancel, and saving the reply no matter what.

A generation is an asyncio task of its own, not part of the HTTP response: when the phone loses its
connection mid-reply, the response ends but the task decodes to the end and stores the whole answer,
so a reload finds it. Responses only read the task's numbered event log (event_log.py), from the
start or from where a dropped client left off, as many readers as there are devices watching.
A request that has to wait for another reply is told so, with its place in the queue.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Any, AsyncIterator, Callable

from ..config import Config
from ..errors import (EVENT_ID_INVALID, GENERATION_FAILED, IMAGE_NOT_SUPPORTED, INTEGRITY_FAILED, INTERNAL, QUEUE_FULL,
                      SHUTTING_DOWN, STORAGE_FAILED, TOO_MANY_ATTACHMENTS, VALIDATION_ERROR, CodedError, NotFound)
from ..storage.crypto import CryptoError
from ..storage.failures import storage_failure
from ..storage.history import END_OF_BRANCH, HistoryStore
from ..storage.settings import SettingsStore
from ..tracebacks import describe
from .attachment_prompt import Document, context_of, counter_for, expand_turn
from .branches import message_to_answer
from .event_log import TERMINAL, Event, EventLog, FinishedReplay, FinishedReplays, done_data
from .engine_types import GenerationParams, GenerationResult
from .models import ModelRegistry

log = logging.getLogger(__name__)


# How many stored messages are read back to build a prompt; the fitter drops what does not fit.
HISTORY_WINDOW = 200
# Partial replies are written this often, so a crash loses at most this much text.
FLUSH_SECONDS = 2.0
# Tokens that arrive within this window go out in one write (each still its own SSE event). The
# event loop then wakes and writes a few times less per token, and that CPU is taken from the
# decoding threads on a small machine. The first token of a window is never held back.
STREAM_BATCH_SECONDS = 0.03


class TokenBatcher:
    """Hands tokens from the decoding thread to the event loop, at most one wake-up per window."""

    def __init__(self, loop: asyncio.AbstractEventLoop, deliver: Callable[[list[str]], None],
                 window: float = STREAM_BATCH_SECONDS) -> None:
        self.loop = loop
        self.deliver = deliver
        self.window = window
        self._lock = threading.Lock()
        self._pending: list[str] = []
        self._scheduled = False
        self._last_flush = 0.0

    def add(self, text: str) -> None:
        """Called from the decoding thread for every token."""
        with self._lock:
            self._pending.append(text)
            if self._scheduled:
                return
            self._scheduled = True
            wait = self.window - (time.perf_counter() - self._last_flush)
        self.loop.call_soon_threadsafe(self._schedule, max(0.0, wait))

    def _schedule(self, delay: float) -> None:
        if delay <= 0:
            self.flush()
        else:
            self.loop.call_later(delay, self.flush)

    def flush(self) -> None:
        """On the loop: deliver what is pending (also called once more when decoding ends)."""
        with self._lock:
            pending, self._pending = self._pending, []
            self._scheduled = False
            self._last_flush = time.perf_counter()
        if pending:
            self.deliver(pending)


@dataclass
class Generation:
    conversation_id: str
    user_message_id: str
    assistant_message_id: str
    params: GenerationParams
    system_prompt: str
    cancel: threading.Event = field(default_factory=threading.Event)
    stop_status: str = "cancelled"  # what a set cancel means: the owner's Stop, or a shutdown
    events: EventLog = field(default_factory=EventLog)
    queue_position: int = 0  # the place last announced in a queued event; 0 = not waiting
    parts: list[str] = field(default_factory=list)
    task: asyncio.Task[None] | None = None
    accepted_at: float = field(default_factory=time.perf_counter)
    model: str = ""  # the name of the model writing the reply (models.list)
    attachments_seen: list[dict[str, Any]] = field(default_factory=list)  # how much of each document the model saw

    @property
    def text(self) -> str:
        return "".join(self.parts)


class GenerationManager:
    def __init__(self, models: ModelRegistry, history: HistoryStore, settings: SettingsStore, queue_size: int) -> None:
        self.models = models  # the models (llm/models.py): each reply waits in its model's lane for a slot
        self.history = history
        self.settings = settings
        self.queue_size = queue_size
        self.running: dict[str, Generation] = {}
        self.finished = FinishedReplays()
        self._closing = False
        self.titles: Any = None  # llm/titles.TitleWriter, when titles are on: preempted by every chat request

    def busy(self) -> bool:
        """A reply is being written or waits for the model."""
        return bool(self.running) or self._waiting > 0

    @property
    def _waiting(self) -> int:
        """Replies waiting for a slot, in every model's lane."""
        return sum(lane.waiting for lane in self.models.lanes())

    @classmethod
    def from_config(cls, models: ModelRegistry, history: HistoryStore, settings: SettingsStore, config: Config) -> "GenerationManager":
        return cls(models, history, settings, config.model.queue_size)

    def check_capacity(self, model: str | None = None) -> None:
        if self._closing:
            raise CodedError(SHUTTING_DOWN)
        model = model or self.models.default
        self.models.check(model)  # model_unknown, model_loading, model_unavailable, model_too_big
        lane = self.models.lane(model)
        if lane.busy and lane.waiting >= self.queue_size:
            raise CodedError(QUEUE_FULL, waiting=lane.waiting + 1)

    async def start(self, message: str | None, conversation_id: str | None, options: dict[str, Any], *,
                    parent_id: str | None = END_OF_BRANCH, regenerate_of: str | None = None,
                    model: str | None = None, attachments: list[str] | None = None) -> Generation:
        """A new user message answering ``parent_id`` (default: the end of the current branch; None:
        a new first message) and a reply to it; or, with ``regenerate_of``, only a new reply to the
        user message that reply answered. The prompt is the path from the root to that user message."""
        if self.titles is not None:
            self.titles.preempt()  # the owner's request comes first: a title being written stops now
        prefs = await self.settings.get()
        if model is None:
            model = default_model(self.models, prefs)
        model = self.models.get(model).spec.name  # model_unknown before anything is stored
        self.check_capacity(model)
        attachments = list(dict.fromkeys(attachments or []))
        if attachments:
            await self._check_attachments(attachments, conversation_id, model, regenerate_of)
        params = GenerationParams(
            temperature=options.get("temperature", prefs["temperature"]),
            max_tokens=options.get("max_tokens", prefs["max_tokens"]),
            seed=options.get("seed", self.models.model_config.seed),
        )
        user = await message_to_answer(self.history, message, conversation_id, parent_id=parent_id,
                                       regenerate_of=regenerate_of, attachments=attachments)  # llm/branches.py
        conversation_id = user.conversation_id
        assistant = await self.history.add_message(conversation_id, "assistant", "", status="streaming", parent_id=user.id,
                                                   model=model)
        params.cache_key = conversation_id  # the conversation's model state is kept in RAM (llm/state_cache.py)
        generation = Generation(conversation_id, user.id, assistant.id, params, prefs["system_prompt"], model=model)
        generation.events.append("start", {
            "conversation_id": conversation_id,
            "user_message_id": user.id,
            "assistant_message_id": assistant.id,
            "model": model,
            "user_parent_id": user.parent_id,  # where the branch leaves the tree (null: a new first message)
            "regenerate_of": regenerate_of,
        })
        self.running[assistant.id] = generation
        generation.task = asyncio.get_running_loop().create_task(self._run(generation))
        return generation

    async def _check_attachments(self, ids: list[str], conversation_id: str | None, model: str,
                                 regenerate_of: str | None) -> None:
        """Before anything is stored: the attachments exist, wait to be sent in this conversation (or a new
        one), are not too many, and hold no image for a model that cannot see."""
        if regenerate_of is not None:
            raise CodedError(VALIDATION_ERROR, detail="attachments go with a message, not with regenerate_of (the reply "
                             "is written again with the message's own attachments)")
        most = self.models.config.attachments.max_per_message
        if len(ids) > most:
            raise CodedError(TOO_MANY_ATTACHMENTS, most=most, count=len(ids))
        found = await self.history.attachments.pending(ids, conversation_id)  # attachment_not_found, attachment_taken
        images = [a.name for a in found if a.kind == "image"]
        spec = self.models.get(model).spec
        if images and not spec.sees:
            raise CodedError(IMAGE_NOT_SUPPORTED, model=spec.label or spec.name, image=images[0])

    async def attach(self, assistant_message_id: str, after: int | None,
                     idle_seconds: float = 15.0) -> AsyncIterator[list[Event]]:
        """A reply's events after number ``after`` (None: from the start), then the live ones.

        Raises NotFound before anything is sent. The iterator yields batches of events, an
        empty batch when nothing happened for ``idle_seconds`` (a wake-up with nothing to send), and ends after
        ``done`` or ``error``. A running reply is read from its log; a finished one from the stored
        text, cut at the token boundaries kept for it, or sent whole as one ``snapshot`` event
        (numbered None) when those are gone (an old reply, a restarted server).
        """
        cursor = 0 if after is None else after + 1
        generation = self.running.get(assistant_message_id)
        if generation is not None:
            return _follow(_checked(generation.events, cursor), cursor, idle_seconds)
        message = await self.history.get_message(assistant_message_id)
        if message.role != "assistant":
            raise NotFound("reply")
        generation = self.running.get(assistant_message_id)  # it may have started while we read
        if generation is not None:
            return _follow(_checked(generation.events, cursor), cursor, idle_seconds)
        replay = self.finished.get(assistant_message_id)
        if replay is not None and cursor > len(replay.ends):
            raise CodedError(EVENT_ID_INVALID)
        events = replay.events_after(cursor, message.content) if replay is not None else None
        if events is None:
            events = _snapshot(message)
        return _once(events)

    def _announce_queue(self, queue: list[Generation]) -> None:
        """Tell each waiting request its place (1 = next) in its model's lane, when it changed."""
        for index, waiting in enumerate(queue):
            position = index + 1
            if waiting.queue_position != position:
                waiting.queue_position = position
                waiting.events.append("queued", {"position": position})

    def cancel(self, assistant_message_id: str) -> bool:
        generation = self.running.get(assistant_message_id)
        if generation is None:
            return False
        generation.stop_status = "cancelled"
        generation.cancel.set()
        return True

    async def shutdown(self) -> None:
        """Stop every generation and wait until its partial reply is stored."""
        self._closing = True
        if self.titles is not None:
            await self.titles.close()
        tasks = []
        for generation in list(self.running.values()):
            generation.stop_status = "interrupted"
            generation.cancel.set()
            if generation.task is not None:
                tasks.append(generation.task)
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)

    # The task -----------------------------------------------------------------------------------
    async def _run(self, generation: Generation) -> None:
        try:
            lane = self.models.lane(generation.model)
            lane.waiting += 1
            lane.queue.append(generation)
            try:
                if lane.busy or len(lane.queue) > 1:
                    self._announce_queue(lane.queue)
                await lane.slot.acquire()
            finally:
                lane.waiting -= 1
                lane.queue.remove(generation)
                self._announce_queue(lane.queue)
            try:
                await self._generate(generation)
            finally:
                lane.slot.release()
        except Exception as exc:  # never lose a task silently; the client gets an error event
            # Type and frames only: an exception's message may quote the prompt or the reply.
            log.error("generation %s failed: %s", generation.assistant_message_id, describe(exc))
            generation.events.append("error", CodedError(INTERNAL, "The reply failed unexpectedly.").as_json())
        finally:
            # In one step, so a reader finds the generation either running or finished, never neither.
            self.running.pop(generation.assistant_message_id, None)
            if generation.events.finished:
                self.finished.add(generation.assistant_message_id, FinishedReplay.of(generation.events))
            if self.titles is not None and not self.busy():
                self.titles.idle()

    async def _generate(self, generation: Generation) -> None:
        loop = asyncio.get_running_loop()
        batcher = TokenBatcher(loop, lambda texts: self._deliver(generation, texts))

        result: GenerationResult | None = None
        failure: CodedError | None = None
        flusher = loop.create_task(self._flush_periodically(generation))
        try:
            if not generation.cancel.is_set():
                engine = await self.models.ensure_loaded(  # an embedded switch loads here
                    generation.model, lambda: generation.events.append("loading", {"model": generation.model}))
                turns = await self._turns(generation, engine)  # after loading: documents are counted with its tokenizer
                result = await engine.run(generation.system_prompt, turns, generation.params, batcher.add, generation.cancel)
        except CodedError as exc:  # a model unavailable, an upstream's failure (llm/upstream.py)
            failure = exc
        except CryptoError as exc:  # an earlier message of the conversation does not open: say so, not "the model"
            log.error("reply %s not written: %s", generation.assistant_message_id, exc)
            failure = CodedError(INTEGRITY_FAILED)
        except Exception as exc:
            # Type and frames only: llama.cpp's and the bindings' messages may quote the text.
            log.error("decoding failed for %s: %s", generation.assistant_message_id, describe(exc))
            failure = CodedError(GENERATION_FAILED, cause=type(exc).__name__)
        finally:
            batcher.flush()  # tokens still in the window go out before done/error
            flusher.cancel()
            await asyncio.gather(flusher, return_exceptions=True)

        text = result.text if result is not None else generation.text
        if failure is not None:
            status = "error"
        elif generation.cancel.is_set():
            status = generation.stop_status
        else:
            status = "complete"
        try:
            await self.history.update_message(
                generation.assistant_message_id, text, status,
                prompt_tokens=result.prompt_tokens if result else None,
                completion_tokens=result.completion_tokens if result else None,
                # kept so a reply loaded from history shows its speed and "stopped at the token limit"
                finish_reason=result.finish_reason if result and status == "complete" else None,
                ttft_ms=_round(result.ttft_ms) if result else None,
                tokens_per_second=_round(result.tokens_per_second) if result else None,
                attachments_seen=generation.attachments_seen or None,
            )
        except Exception as exc:
            log.error("could not store reply %s: %s", generation.assistant_message_id, type(exc).__name__)
            generation.events.append("error", CodedError(STORAGE_FAILED, reason=_storage_reason(exc)).as_json())
            return
        if failure is not None:
            generation.events.append("error", failure.as_json())
            return
        if status == "complete" and self.titles is not None:
            self.titles.reply_finished(generation.conversation_id)
        assert result is not None or generation.cancel.is_set()
        generation.events.append("done", done_data(
            status,
            model_reason=result.finish_reason if result else None,
            prompt_tokens=result.prompt_tokens if result else 0,
            completion_tokens=result.completion_tokens if result else 0,
            timings={
                "ttft_ms": _round(result.ttft_ms) if result else None,
                "tokens_per_second": _round(result.tokens_per_second) if result else None,
                "total_ms": _round(result.total_ms) if result else 0,
                "queued_ms": _round((time.perf_counter() - generation.accepted_at) * 1000 - (result.total_ms if result else 0)),
            },
            dropped_messages=result.dropped_messages if result else 0,
            # The message being answered was longer than the model can read: its start was cut.
            message_cut=bool(result and result.message_cut),
            # How much of each attached document the model saw ("the first 12 of 40 pages"); [] without documents.
            attachments_seen=generation.attachments_seen,
        ))

    def _deliver(self, generation: Generation, texts: list[str]) -> None:
        for text in texts:
            generation.parts.append(text)
            generation.events.append("token", {"text": text})

    async def _turns(self, generation: Generation, engine: Any = None) -> list[dict[str, Any]]:
        # Exactly the branch being answered: root to the user message, never a sibling branch.
        stored = await self.history.path(generation.conversation_id, generation.user_message_id, last=HISTORY_WINDOW)
        attached = await self.history.attachments.of_messages([m.id for m in stored if m.role == "user"])
        turns: list[dict[str, Any]] = []
        for message in stored:
            if message.id == generation.assistant_message_id:
                continue
            if message.role == "assistant" and (message.status == "error" or not message.content.strip()):
                continue
            if message.role in ("user", "assistant"):
                content: Any = message.content
                if message.id in attached and engine is not None:
                    content = await self._with_attachments(generation, engine, message.id, message.content)
                turns.append({"role": message.role, "content": content})
        # Two user turns in a row (a reply that failed) are fine for the templates we render.
        return turns

    async def _with_attachments(self, generation: Generation, engine: Any, message_id: str, text: str) -> Any:
        """A user turn's text with its documents (within the context budget) and, for the message being
        answered and a model that can see, its images (llm/attachment_prompt.py)."""
        current = message_id == generation.user_message_id
        sees = bool(engine.spec.sees)
        found = await self.history.attachments.contents(message_id, with_images=current and sees)
        documents, image_names, images = [], [], []
        for info, content, data in found:
            if info.kind == "image":
                if data is not None:
                    images.append((info.mime, data))
                else:
                    image_names.append(info.name)
            elif content is not None:
                documents.append(Document(info.id, info.name, pages=content.get("pages"), text=content.get("text"),
                                          page_count=info.pages))
        expanded = await asyncio.to_thread(
            expand_turn, text, documents, image_names, images, system_prompt=generation.system_prompt,
            n_ctx=context_of(engine), max_tokens=generation.params.max_tokens, count=counter_for(engine))
        if current:
            generation.attachments_seen = expanded.seen
        return expanded.content

    async def _flush_periodically(self, generation: Generation) -> None:
        written = 0
        while True:
            await asyncio.sleep(FLUSH_SECONDS)
            if len(generation.parts) != written:
                written = len(generation.parts)
                try:
                    await self.history.update_message(generation.assistant_message_id, generation.text, "streaming")
                except Exception as exc:  # the final write reports storage problems to the client
                    log.warning("partial reply not flushed: %s", type(exc).__name__)


def _checked(log: EventLog, cursor: int) -> EventLog:
    if cursor > len(log.events):
        raise CodedError(EVENT_ID_INVALID)
    return log


async def _follow(log: EventLog, cursor: int, idle_seconds: float = 15.0) -> AsyncIterator[list[Event]]:
    while True:
        batch = await log.after(cursor, idle_seconds)
        yield batch
        if batch:
            cursor = batch[-1][0] + 1
            if batch[-1][1] in TERMINAL:
                return


async def _once(events: list[Event]) -> AsyncIterator[list[Event]]:
    yield events


def _snapshot(message: Any) -> list[Event]:
    """A finished reply whose token boundaries are gone: its whole stored text, then how it ended."""
    events: list[Event] = [(-1, "snapshot", {"text": message.content})]
    if message.status == "error":
        events.append((-1, "error", CodedError(GENERATION_FAILED, "This reply failed while it was being written; what was "
                                               "written is shown.").as_json()))
    else:
        events.append((-1, "done", done_data(message.status, prompt_tokens=message.prompt_tokens or 0,
                                             completion_tokens=message.completion_tokens or 0)))
    return events


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 2)


def _storage_reason(exc: Exception) -> str:
    failure = storage_failure(exc)
    return failure.reason if failure is not None else type(exc).__name__


__all__ = ["Generation", "GenerationManager"]


def default_model(registry: Any, prefs: dict[str, Any]) -> str:
    """The owner's default model from the settings, while the config still lists it; else the config's."""
    chosen = prefs.get("default_model")
    if chosen:
        try:
            return registry.get(chosen).spec.name
        except CodedError:  # model_unknown: the config no longer has it
            pass
    return registry.default
