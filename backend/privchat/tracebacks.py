"""Tracebacks without messages: where an exception happened, never what it said.

An exception's message can quote the data it failed on. llama.cpp's bindings, a chat template, a
tokenizer or a JSON parser may put the prompt or the reply into it, and ``log.exception`` would
then write the owner's words into the server log, which is kept in plain text. So failures
around generation are logged as the exception's type and the frames it passed through (file,
line, function), for it and for every exception chained to it, and nothing else: enough to find
the bug, nothing of the conversation.
"""

from __future__ import annotations

import traceback
from pathlib import Path

MAX_CHAIN = 5


def _one(error: BaseException) -> str:
    frames = traceback.extract_tb(error.__traceback__)
    where = " > ".join(f"{Path(frame.filename).name}:{frame.lineno} in {frame.name}" for frame in frames)
    kind = type(error)
    name = kind.__qualname__ if kind.__module__ == "builtins" else f"{kind.__module__}.{kind.__qualname__}"
    return f"{name} at {where}" if where else name


def describe(error: BaseException) -> str:
    """``RuntimeError at a.py:1 in f > b.py:2 in g; caused by ValueError at …``, with no message."""
    parts: list[str] = []
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen and len(parts) < MAX_CHAIN:
        seen.add(id(current))
        parts.append(_one(current))
        current = current.__cause__ or (None if current.__suppress_context__ else current.__context__)
    return "; caused by ".join(parts)
