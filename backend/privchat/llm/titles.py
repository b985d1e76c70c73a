"""Titles the model writes, only while nobody waits for a reply.

There is one model and the owner's replies come first. After a conversation's first reply the
conversation is queued here; the writer runs only while no chat generation is running or waiting,
and a chat request arriving cancels a title being written at once (``preempt``, called by
``GenerationManager.start`` before anything else): the decode loop stops within a token, the chat
takes the model, and the title is tried again the next time the model is idle. It is never queued
in front of, or behind, a reply. Until a title is written the first message stays the title, and a
title the owner chose is never replaced (``HistoryStore.rename``: the model only replaces the
first message's title).

The prompt is the start of the owner's first message only, never the reply: a small model shown the
reply names the reply ("Bien sûr, it's not just a Fren…", "Here is a Python func…"). It is kept
short, so the prompt evaluation a cancel cannot interrupt stays small. What the model writes is
kept only when ``title_fits`` says it names a topic: a title that starts like a reply, repeats the
reply's opening, is empty or too long leaves the first message's title in place (and that
conversation is not asked again while the server runs).
"""

from __future__ import annotations

import asyncio
import logging
import re
import threading
from typing import Any, Callable

from ..config import Config
from ..errors import NotFound
from ..storage.crypto import CryptoError
from ..storage.history import HistoryStore, NotInConversation
from ..tracebacks import describe
from .engine_types import GenerationParams, ModelUnavailable

log = logging.getLogger(__name__)

INSTRUCTION = ("You name conversations. Reply with a short title (two to six words) naming the topic of the "
               "message. Never answer it.")
# Worked examples, as earlier turns: a small model (SmolLM2-135M) shown only the instruction answers
# the question ("The capital of France is Paris."); shown these, it names the topic.
EXAMPLES = (("How do I bake bread at home?", "Baking bread at home"), ("What is the largest ocean?", "Largest ocean on Earth"),
            ("Write a haiku about the sea", "Haiku about the sea"), ("Tell me about volcanoes", "Volcanoes explained"))
EXCERPT_CHARS = 300  # of the owner's first message
TITLE_CHARS = 60
TITLE_WORDS = 8  # the instruction asks for six; a model's title longer than this is not a title
# How replies begin, not topics (lower case, compared with the title's start, word by word).
REPLY_OPENINGS = (
    "sure", "bien sûr", "certainly", "of course", "absolutely", "okay", "yes", "hello", "great question",
    "good question", "here is", "here's", "here are", "i'm", "i am", "i'd", "i'll", "i can", "i will",
    "as an ai", "thank you", "thanks", "claro", "natürlich", "certes", "voici", "the answer", "let me",
    "let's", "to answer",
)


def _words(text: str) -> list[str]:
    return re.findall(r"\w+(?:['’]\w+)?", text.casefold())


def title_fits(title: str, question: str, answer: str) -> bool:
    """Whether the model's (cleaned) title names the topic of the owner's message.

    False for an empty title, one too long (more than TITLE_WORDS words or TITLE_CHARS characters,
    or cut with "…" by clean_title), one that starts like a reply ("Sure", "Bien sûr", "Here is", "I
    can"…), and one that repeats the reply (three words or more found together in the reply's
    opening) unless its words are the question's own ("The capital of France" for "What is the
    capital of France?")."""
    title = title.strip()
    words = _words(title)
    if not words or len(words) > TITLE_WORDS or len(title) > TITLE_CHARS or title.endswith("…"):
        return False
    joined = " ".join(words)
    for opening in REPLY_OPENINGS:
        opening_words = " ".join(_words(opening))
        if joined == opening_words or joined.startswith(opening_words + " "):
            return False
    opening = f" {' '.join(_words(answer)[:60])} "
    if len(words) >= 3 and f" {joined} " in opening:
        asked = set(_words(question))
        if not all(word in asked for word in words):
            return False
    return True
RETRY_SECONDS = 1.0  # after a cancel, look again this soon whether the model is idle


def clean_title(text: str) -> str:
    """The model's first non-empty line without quotes, a "Title:" label or a trailing full stop
    ("" when it opens a code block: that is a reply, not a title)."""
    line = next((part.strip() for part in text.splitlines() if part.strip()), "")
    if line.startswith("```"):
        return ""
    line = line.strip(" \t\"'“”‘’*#`")
    line = re.sub(r"^title\s*:\s*", "", line, flags=re.IGNORECASE)
    line = line.strip(" \t\"'“”‘’*#`").rstrip(".").strip()
    if len(line) > TITLE_CHARS:
        line = line[: TITLE_CHARS - 1].rstrip() + "…"
    return line


class TitleWriter:
    def __init__(self, models: Any, history: HistoryStore, *, max_tokens: int = 16, seed: int = -1,
                 enabled: bool = True) -> None:
        self.models = models  # the model registry (llm/models.py): titles use the default model, if embedded and loaded
        self.history = history
        self.max_tokens = max_tokens
        self.seed = seed
        self.enabled = enabled
        self.busy: Callable[[], bool] = lambda: False  # set by the GenerationManager: a reply runs or waits
        self._pending: dict[str, None] = {}  # conversations waiting for a title, oldest first
        self._wake = asyncio.Event()
        self._cancel: threading.Event | None = None  # set while a title is being written
        self._task: asyncio.Task[None] | None = None
        # What happened, for tests and the log.
        self.written = 0
        self.cancelled = 0
        self.declined = 0  # titles title_fits refused: the first message's title stayed
        self._declined: set[str] = set()  # those conversations: not asked again while the server runs

    @classmethod
    def from_config(cls, models: Any, history: HistoryStore, config: Config) -> "TitleWriter":
        return cls(models, history, max_tokens=config.titles.max_tokens, seed=config.model.seed,
                   enabled=config.titles.enabled)

    @property
    def writing(self) -> bool:
        return self._cancel is not None

    def reply_finished(self, conversation_id: str) -> None:
        """A reply was completed in this conversation: it may want a title (checked when idle)."""
        if self.enabled and conversation_id not in self._declined:
            self._pending[conversation_id] = None

    def idle(self) -> None:
        """The model has nothing to do for the owner: write pending titles now."""
        if not self._pending or not self.enabled:
            return
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._work())
        self._wake.set()

    def preempt(self) -> bool:
        """A chat request arrived: stop writing a title at once. Returns whether one was stopped."""
        if self._cancel is None or self._cancel.is_set():
            return False
        self._cancel.set()
        return True

    async def close(self) -> None:
        self.enabled = False
        self.preempt()
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def _work(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._pending and self.enabled and not self.busy():
                conversation_id = next(iter(self._pending))
                try:
                    written = await self._write(conversation_id)
                except Exception as exc:  # a title is a nicety: it never stops the writer
                    log.warning("title for a conversation not written: %s", describe(exc))
                    written = True
                if written:
                    self._pending.pop(conversation_id, None)
                else:
                    # Cancelled by a chat request: tried again when the model is idle (the reply's
                    # end wakes this; a request refused before it ran does not, hence the timer).
                    asyncio.get_running_loop().call_later(RETRY_SECONDS, self.idle)
                    break

    async def _write(self, conversation_id: str) -> bool:
        """Write one title; False when a chat request cancelled it (it stays pending)."""
        cancel = threading.Event()
        self._cancel = cancel  # from here on, preempt() reaches it
        try:
            try:
                if await self.history.title_source(conversation_id) != "first_message":
                    return True  # gone, renamed by the owner, or titled already
                leaf = await self.history.branch_end(conversation_id)
                path = await self.history.path(conversation_id, leaf) if leaf else []
            except (NotFound, NotInConversation, CryptoError):
                return True
            question = next((m.content for m in path if m.role == "user"), "")
            replied = next((m for m in path if m.role == "assistant" and m.status == "complete"), None)
            answer = replied.content if replied else ""
            if not question.strip() or not answer.strip() or cancel.is_set():
                return not cancel.is_set()
            # The owner's message only: the title names what was asked, not how the reply began.
            turns = [turn for asked, named in EXAMPLES
                     for turn in ({"role": "user", "content": f"Message: {asked}"}, {"role": "assistant", "content": named})]
            turns.append({"role": "user", "content": f"Message: {question[:EXCERPT_CHARS]}"})
            params = GenerationParams(temperature=0.2, max_tokens=self.max_tokens, seed=self.seed)
            try:
                result = await asyncio.to_thread(self._generate, turns, params, cancel, replied.model if replied else None)
            except ModelUnavailable:
                return True
            except Exception as exc:  # a title is a nicety: never let it fail anything else
                log.warning("title for a conversation not written: %s", describe(exc))
                return True
            if result is None or cancel.is_set():
                self.cancelled += 1
                log.info("title generation cancelled: a chat request arrived; it is tried again when the model is idle")
                return False
            title = clean_title(result)
            if not title_fits(title, question, answer):
                # Not a title of what was asked: the first message's title stays, and this
                # conversation is not asked again (the same prompt would give the same answer).
                self.declined += 1
                self._declined.add(conversation_id)
                log.info("the model's title was not used: it did not name the topic of the first message")
                return True
            try:
                if await self.history.rename(conversation_id, title, source="model"):
                    self.written += 1
            except NotFound:  # deleted while its title was written
                pass
            return True
        finally:
            self._cancel = None

    def _generate(self, turns: list[dict[str, str]], params: GenerationParams, cancel: threading.Event,
                  model: str | None) -> str | None:
        if cancel.is_set():  # the chat request came while this thread was starting
            return None
        # The model that wrote the reply when it is in memory, else another one that is (models.py).
        result = self.models.generate(INSTRUCTION, turns, params, lambda _text: None, cancel, model=model)
        return None if cancel.is_set() else result.text
