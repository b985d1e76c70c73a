"""What every engine shares: the parameters of a reply, its result, a model's status, and the
refusal when no model can answer. The llama.cpp engine (``engine.py``), the upstream engine
(``upstream.py``), the registry (``models.py``), generations and titles all speak these, so none of
them has to import another engine to know them.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import CodedError


class ModelUnavailable(CodedError):
    """Chat cannot run now: model_loading (ask again in 5 s), model_unavailable or model_too_big (in 30 s).
    Titles catch it by type: a title is never worth waiting for a model."""


@dataclass
class GenerationParams:
    temperature: float
    max_tokens: int
    seed: int = -1
    # Whose model state this is (the conversation): its state is kept in RAM for the next reply.
    cache_key: str | None = None


@dataclass
class GenerationResult:
    text: str
    finish_reason: str  # stop, length, cancelled
    prompt_tokens: int
    completion_tokens: int
    dropped_messages: int
    ttft_ms: float | None
    total_ms: float
    tokens_per_second: float | None
    # The owner's own message did not fit: its start was cut and the model read only its end (prompt.py).
    message_cut: bool = False


@dataclass
class EngineStatus:
    state: str  # loading, ready, unloaded, error, disabled (upstreams: ready, unreachable, error)
    name: str
    error: str | None = None
    path: str | None = None
    n_ctx: int | None = None

    @property
    def public_error(self) -> str | None:
        """The error with the model's folders left out, for answers that leave the machine.

        ``/api/health`` is read without a signature: an absolute path there would tell a stranger
        the owner's user name and folder layout. The full sentence goes to the log (``_fail``) and
        ``privchat doctor`` prints its own, with the path.
        """
        return None if self.error is None else without_folders(self.error, self.path)

    def to_json(self) -> dict[str, Any]:
        return {"state": self.state, "name": self.name, "error": self.public_error, "n_ctx": self.n_ctx}


def without_folders(text: str, path: str | None) -> str:
    """``text`` with the model file's path (as given, or resolved) reduced to its file name."""
    if not path:
        return text
    given = Path(path)
    for variant in sorted({str(given), str(given.resolve()), os.path.realpath(given)}, key=len, reverse=True):
        text = text.replace(variant, given.name)
    for folder in sorted({str(given.parent), str(given.resolve().parent)}, key=len, reverse=True):
        if folder not in ("", ".", os.sep):
            text = text.replace(folder, "<model folder>")
    return text


