"""Keeping a long conversation inside an upstream model's context.

The embedded engine counts tokens with the model's own tokenizer and drops the oldest turns that do
not fit (prompt.py). An OpenAI-compatible server has no standard way to count tokens, and it answers
a prompt longer than its context with a 400 ("This model's maximum context length is 4096 tokens",
"the request exceeds the available context size", "context_length_exceeded"), so without more every
message of a long conversation would fail from then on. Two steps keep it answering:

- **Before sending**, when the context size is known (``n_ctx`` in the model's config), the oldest
  turns are dropped until an estimate of the prompt fits with room for the reply. The estimate counts a token per ``BYTES_PER_TOKEN`` bytes of UTF-8, fewer than
  any common tokenizer averages on prose, so it errs towards dropping one turn too many.
- **When refused anyway** for the context (a 400 that says so, or, from llama_cpp.server, which
  fails inside a stream it already began, a stream that ends before its first token), the turns are fitted to the size the refusal names, or
  else the older half is dropped, and the request is sent again, a few times at most; the newest
  turn is always kept. The size is not remembered: the owner may give the server a longer context
  at any time, and a refusal costs the server only the tokenising of the prompt.

The reply's ``dropped_messages`` says how many turns the model did not see, as for embedded models.
"""

from __future__ import annotations

import json
import re
from typing import Any

BYTES_PER_TOKEN = 3
TOKENS_PER_MESSAGE = 8  # the chat template's markers around each message
MAX_RETRIES = 4

# What the servers privchat is documented with say when a prompt is longer than their context.
_OVERFLOW = re.compile(r"context[ _](length|window|size)|maximum context|exceed_context|prompt is too long"
                       r"|too many tokens|input is too large", re.IGNORECASE)
_SIZE = re.compile(r"(?:maximum context length is|context window of|context size of|n_ctx\W+)\s*(\d+)", re.IGNORECASE)


# What an image part (OpenAI image_url) is counted as: a 1024 px image is several hundred tokens to most vision models.
TOKENS_PER_IMAGE = 1024


def estimated_tokens(system_prompt: str, turns: list[dict[str, Any]]) -> int:
    texts = ([system_prompt] if system_prompt.strip() else []) + [t["content"] for t in turns]
    return sum(_estimate(text) + TOKENS_PER_MESSAGE for text in texts)


def _estimate(content: Any) -> int:
    """A turn's text, or its content parts: text parts by their bytes, each image as TOKENS_PER_IMAGE."""
    if isinstance(content, str):
        return len(content.encode("utf-8")) // BYTES_PER_TOKEN
    return sum(len(str(part.get("text", "")).encode("utf-8")) // BYTES_PER_TOKEN if part.get("type") == "text"
               else TOKENS_PER_IMAGE for part in content)


def fit_turns(system_prompt: str, turns: list[dict[str, str]], max_tokens: int,
              n_ctx: int | None) -> list[dict[str, str]]:
    """The newest turns whose estimate fits ``n_ctx`` with ``max_tokens`` left for the reply; the
    last turn always stays (the server then says whether it fits). All of them when n_ctx is unknown."""
    if not n_ctx or not turns:
        return turns
    budget = n_ctx - max_tokens - estimated_tokens(system_prompt, [])
    kept = 0
    used = 0
    for turn in reversed(turns):
        cost = estimated_tokens("", [turn])
        if kept and used + cost > budget:
            break
        used += cost
        kept += 1
    return _starting_with_a_user_turn(turns[len(turns) - kept:])


def shorter(turns: list[dict[str, str]]) -> list[dict[str, str]] | None:
    """The newer half of ``turns`` (starting with a user turn), or None when only the last one is left."""
    if len(turns) <= 1:
        return None
    return _starting_with_a_user_turn(turns[len(turns) // 2:])


def _starting_with_a_user_turn(turns: list[dict[str, str]]) -> list[dict[str, str]]:
    """Some chat templates insist that the first turn after the system prompt is the user's."""
    start = 0
    while start < len(turns) - 1 and turns[start]["role"] != "user":
        start += 1
    return turns[start:]


def context_overflow(status: int, body: bytes) -> tuple[bool, int | None]:
    """Is this refusal about the prompt being longer than the context, and which size does it name?"""
    if status not in (400, 413, 422):
        return False, None
    text = body.decode("utf-8", "replace")
    if not _OVERFLOW.search(text):
        return False, None
    size = None
    try:
        error: Any = json.loads(text).get("error")
        if isinstance(error, dict) and isinstance(error.get("n_ctx"), int):
            size = error["n_ctx"]  # llama-server says it as a field
    except (ValueError, AttributeError):
        pass
    if size is None:
        found = _SIZE.search(text)
        size = int(found.group(1)) if found else None
    return True, size
