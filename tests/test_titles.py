"""Titles never delay a reply, and replies see exactly their branch.

The generation manager and the title writer run for real on a real database; the model is a stand-in
that decodes one token every 20 ms and, like llama.cpp's engine, holds one decode lock and checks its
cancel flag after every token. So the timing is the manager's and the writer's, not a model's.
"""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from privchat.config import config_from_dict
from privchat.llm.engine_types import GenerationResult
from privchat.llm.generations import GenerationManager
from privchat.llm.models import Lane
from privchat.llm.titles import INSTRUCTION, TitleWriter, clean_title, title_fits
from privchat.storage.db import Database
from privchat.storage.history import HistoryStore
from privchat.storage.settings import SettingsStore

TOKEN_SECONDS = 0.02


class SlowModel:
    """One decode at a time; a token every TOKEN_SECONDS; stops within a token of ``cancel``."""

    spec = SimpleNamespace(name="stand-in")

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.calls: list[tuple[str, list[dict[str, str]], bool]] = []  # (system prompt, turns, cancelled)
        self.title_text: str | None = None  # what a title call writes, word by word; None: "t0 t1 …"

    def generate(self, system_prompt: str, turns: list[dict[str, str]], params: Any, on_token: Any,
                 cancel: threading.Event) -> GenerationResult:
        with self.lock:
            started = time.perf_counter()
            parts: list[str] = []
            title = system_prompt == INSTRUCTION
            for index in range(params.max_tokens):
                time.sleep(TOKEN_SECONDS)
                if title and self.title_text is not None:
                    words = self.title_text.split()
                    if index >= len(words):
                        break
                    parts.append(words[index] + " ")
                else:
                    parts.append(f"{'t' if title else 'w'}{index} ")
                on_token(parts[-1])
                if cancel.is_set():
                    break
            self.calls.append((system_prompt, turns, cancel.is_set()))
            total = (time.perf_counter() - started) * 1000
            return GenerationResult("".join(parts), "cancelled" if cancel.is_set() else "length", 10, len(parts), 0,
                                    TOKEN_SECONDS * 1000, total, 1 / TOKEN_SECONDS)

    async def run(self, *args: Any) -> GenerationResult:
        return await asyncio.to_thread(self.generate, *args)


class Registry:
    """What the manager and the writer use of llm/models.ModelRegistry, with the one stand-in model."""

    def __init__(self, model: SlowModel) -> None:
        self.model = model
        self.default = model.spec.name
        self.model_config = SimpleNamespace(seed=-1)
        self._lane = Lane(1)

    def get(self, name: str | None) -> SlowModel:
        return self.model

    def check(self, name: str) -> None:
        pass

    def lane(self, name: str) -> Lane:
        return self._lane

    def lanes(self) -> list[Lane]:
        return [self._lane]

    async def ensure_loaded(self, name: str, on_loading: Any = None) -> SlowModel:
        return self.model

    def generate(self, *args: Any, model: str | None = None) -> GenerationResult:
        return self.model.generate(*args)


async def _until(condition: Any, timeout: float = 10.0) -> None:
    deadline = time.perf_counter() + timeout
    while not condition():
        assert time.perf_counter() < deadline, "timed out"
        await asyncio.sleep(0.002)


def _run(tmp_path: Path, scenario: Any) -> None:
    async def main() -> None:
        config = config_from_dict({"storage": {"data_dir": str(tmp_path / "d"), "key_file": str(tmp_path / "k")}})
        database = await Database.open(config)
        model = SlowModel()
        registry = Registry(model)
        history = HistoryStore(database)
        manager = GenerationManager(registry, history, SettingsStore(database, config), queue_size=4)
        titles = TitleWriter(registry, history, max_tokens=60)  # 1.2 s of title, if nothing stopped it
        titles.busy = manager.busy
        manager.titles = titles
        try:
            await scenario(manager, titles, model, history)
        finally:
            await manager.shutdown()
            await database.close()

    asyncio.run(main())


def _first(generation: Any, kind: str) -> bool:
    return any(event[0] == kind for event in generation.events.events)


def test_a_chat_request_cancels_the_title_at_once_and_is_not_queued_behind_it(tmp_path: Path) -> None:
    async def scenario(manager: GenerationManager, titles: TitleWriter, model: SlowModel, history: HistoryStore) -> None:
        first = await manager.start("Tell me about owls", None, {"max_tokens": 3})
        conversation = first.conversation_id
        await _until(lambda: titles.writing and model.lock.locked())  # the title is being decoded
        await asyncio.sleep(5 * TOKEN_SECONDS)

        asked = time.perf_counter()
        second = await manager.start("And about bats?", conversation, {"max_tokens": 3})
        start_ms = (time.perf_counter() - asked) * 1000
        assert _first(second, "start")
        await _until(lambda: _first(second, "token"))
        first_token_ms = (time.perf_counter() - asked) * 1000
        # The start event does not wait for the model at all; the first token waits at most for the
        # title's current token to end, then its own first token (a queued title would be 1.2 s).
        # Bounds with room for a loaded 2-core machine; a queued title would add about a second.
        assert start_ms < 100, start_ms
        assert first_token_ms < 4 * TOKEN_SECONDS * 1000 + 220, first_token_ms
        assert titles.cancelled == 1 and titles.written == 0
        assert (await history.get_conversation(conversation))["title"] == "Tell me about owls"
        titles.max_tokens = 4  # the retry writes a title short enough to be kept (title_fits)

        # Once the model is idle again the title is written, and it never ran while a reply did.
        await _until(lambda: titles.written == 1)
        got = await history.get_conversation(conversation)
        assert got["title_source"] == "model" and got["title"] == "t0 t1 t2 t3"
        kinds = [("title" if system == INSTRUCTION else "chat", cancelled) for system, _, cancelled in model.calls]
        assert kinds == [("chat", False), ("title", True), ("chat", False), ("title", False)]

    _run(tmp_path, scenario)


def test_the_owner_rename_wins_over_a_pending_title(tmp_path: Path) -> None:
    async def scenario(manager: GenerationManager, titles: TitleWriter, model: SlowModel, history: HistoryStore) -> None:
        titles.max_tokens = 10
        first = await manager.start("Hello there", None, {"max_tokens": 2})
        await _until(lambda: titles.writing)
        await history.rename(first.conversation_id, "My own title")
        await _until(lambda: not titles.writing)
        assert (await history.get_conversation(first.conversation_id))["title"] == "My own title"

    _run(tmp_path, scenario)


def test_each_reply_sees_exactly_its_branch(tmp_path: Path) -> None:
    async def scenario(manager: GenerationManager, titles: TitleWriter, model: SlowModel, history: HistoryStore) -> None:
        titles.enabled = False

        async def reply(*args: Any, **kwargs: Any) -> Any:
            generation = await manager.start(*args, **kwargs)
            await generation.task
            return generation

        one = await reply("q1", None, {"max_tokens": 1})
        conversation = one.conversation_id
        two = await reply("q2", conversation, {"max_tokens": 1})
        regenerated = await reply(None, conversation, {"max_tokens": 2}, regenerate_of=two.assistant_message_id)
        assert regenerated.user_message_id == two.user_message_id
        edited = await reply("q2 edited", conversation, {"max_tokens": 1}, parent_id=one.assistant_message_id)
        new_root = await reply("q1 edited", conversation, {"max_tokens": 1}, parent_id=None)
        turns = [[(t["role"], t["content"]) for t in call[1]] for call in model.calls]
        assert turns == [
            [("user", "q1")],
            [("user", "q1"), ("assistant", "w0 "), ("user", "q2")],
            [("user", "q1"), ("assistant", "w0 "), ("user", "q2")],  # regenerate: not the first reply to q2
            [("user", "q1"), ("assistant", "w0 "), ("user", "q2 edited")],
            [("user", "q1 edited")],
        ]
        got = await history.get_conversation(conversation)
        assert got["current_leaf"] == new_root.assistant_message_id
        parents = {m["id"]: m["parent_id"] for m in got["messages"]}
        assert parents[regenerated.assistant_message_id] == two.user_message_id
        assert parents[edited.user_message_id] == one.assistant_message_id
        assert parents[new_root.user_message_id] is None

    _run(tmp_path, scenario)


def test_clean_title() -> None:
    assert clean_title('  "Title: Owls at night."\nmore') == "Owls at night"
    assert clean_title("") == ""
    assert len(clean_title("word " * 40)) <= 60


# Titles named the reply, not the question.
ASKED_FRANCE = "What is the capital of France?"
REPLY_FRANCE = "Bien sûr, it's not just a French question: the capital of France is Paris."
ASKED_PYTHON = "Write a python function that reverses a string"
REPLY_PYTHON = "Here is a Python function that reverses a string:\n\n```python\ndef reverse(s):\n    return s[::-1]\n```"


def test_title_fits_refuses_titles_that_come_from_the_reply() -> None:
    # The two titles of the issue, as clean_title left them.
    assert not title_fits(clean_title(REPLY_FRANCE), ASKED_FRANCE, REPLY_FRANCE)
    assert not title_fits("Bien sûr, it's not just a Fren…", ASKED_FRANCE, REPLY_FRANCE)
    assert not title_fits("Here is a Python func…", ASKED_PYTHON, REPLY_PYTHON)
    assert not title_fits("Here is a Python function", ASKED_PYTHON, REPLY_PYTHON)
    # Starts like a reply, in any of the ways a small model does.
    for reply_like in ("Sure, here you go", "Certainly", "Of course", "I can help with that", "Let me explain"):
        assert not title_fits(reply_like, "How do owls hunt?", "Owls hunt at night."), reply_like
    # Repeats the reply (its opening, or a phrase of it) and is not what was asked.
    assert not title_fits("Paris is the capital", ASKED_FRANCE, "Paris is the capital of France.")
    assert not title_fits("The capital of France is Paris", ASKED_FRANCE, REPLY_FRANCE)
    # A code block is a reply, not a title.
    assert clean_title("```python\ndef reverse(s):") == ""
    # Empty or too long.
    assert not title_fits("", ASKED_FRANCE, REPLY_FRANCE)
    assert not title_fits("   ", ASKED_FRANCE, REPLY_FRANCE)
    assert not title_fits("A very long title that goes on and on about the capital", ASKED_FRANCE, REPLY_FRANCE)
    assert not title_fits(clean_title("capital " * 20), ASKED_FRANCE, REPLY_FRANCE)


def test_title_fits_keeps_titles_that_name_the_topic() -> None:
    assert title_fits("Capital of France", ASKED_FRANCE, REPLY_FRANCE)
    assert title_fits("Python string reversal function", ASKED_PYTHON, REPLY_PYTHON)
    # The reply may open with the question's own words: still the topic.
    assert title_fits("The capital of France", ASKED_FRANCE, "The capital of France is Paris.")
    assert title_fits("Owl hunting habits", "How do owls hunt?", "Owls hunt at night.")
    assert title_fits("No-code tools compared", "Compare no-code tools", "Sure! Here they are.")


def test_the_title_prompt_asks_about_the_message_not_the_reply(tmp_path: Path) -> None:
    async def scenario(manager: GenerationManager, titles: TitleWriter, model: SlowModel, history: HistoryStore) -> None:
        titles.max_tokens = 3
        first = await manager.start(ASKED_FRANCE, None, {"max_tokens": 2})
        await _until(lambda: titles.written == 1)
        system, turns, _ = next(call for call in model.calls if call[0] == INSTRUCTION)
        assert "topic of the message" in system and "Never answer it" in system
        assert turns[-1] == {"role": "user", "content": f"Message: {ASKED_FRANCE}"}  # after the worked examples
        prompt = "".join(turn["content"] for turn in turns)
        assert "w0" not in prompt  # the reply ("w0 w1") is not in the prompt
        assert (await history.get_conversation(first.conversation_id))["title"] == "t0 t1 t2"

    _run(tmp_path, scenario)


def test_a_title_that_reads_like_the_reply_keeps_the_first_message(tmp_path: Path) -> None:
    async def scenario(manager: GenerationManager, titles: TitleWriter, model: SlowModel, history: HistoryStore) -> None:
        model.title_text = "Bien sûr, it's not just a French question"
        first = await manager.start(ASKED_FRANCE, None, {"max_tokens": 2})
        await _until(lambda: titles.declined == 1)
        got = await history.get_conversation(first.conversation_id)
        assert (got["title"], got["title_source"]) == (ASKED_FRANCE, "first_message")
        # The next reply in that conversation does not ask the model for a title again.
        second = await manager.start("And of Spain?", first.conversation_id, {"max_tokens": 2})
        await second.task
        await asyncio.sleep(0.2)
        assert sum(call[0] == INSTRUCTION for call in model.calls) == 1 and titles.written == 0

    _run(tmp_path, scenario)
