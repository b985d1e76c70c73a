"""Recent conversations' model state in RAM, so going back to one does not reprocess its history.

llama.cpp keeps one context: a reply in conversation A, then one in B, leaves B's tokens in the KV
cache, and returning to A would evaluate A's whole prompt again (seconds on a long history). Before
the context moves to another conversation, the state of the one it held (its KV cache for sequence
0 and the tokens it stands for) is copied here at the end of each of its replies; when a conversation comes back and its saved state
shares a longer prefix with the new prompt than what the context holds, that state is put back and
llama-cpp-python's own prefix match reuses it.

Only the sequence's KV cells are kept (``llama_state_seq_get_data``), not the logits that
``Llama.save_state`` (and so ``LlamaRAMCache``) copies as well: for a 49k-token vocabulary those
are 100 MB a state. Nothing here is ever written to disk, where it would be the conversation in
plain text; it is bounded by ``models.state_cache_mib``, least recently used first out.
The caller holds the model's decode lock. The copy is made after the reply's last token, so no
time to first token pays for it.
"""

from __future__ import annotations

import ctypes
import logging
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Sequence

log = logging.getLogger(__name__)

SEQ = 0


@dataclass
class SavedState:
    tokens: list[int]
    data: Any  # the ctypes buffer llama.cpp wrote the sequence's KV cells into, kept as is (no copy)
    size: int


def common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return n


class StateCache:
    def __init__(self, capacity_bytes: int) -> None:
        self.capacity_bytes = capacity_bytes
        self._states: OrderedDict[str, SavedState] = OrderedDict()
        self._owner: str | None = None  # the conversation whose tokens the context holds now
        self.hits = 0

    @property
    def size(self) -> int:
        return sum(s.size for s in self._states.values())

    def clear(self) -> None:
        self._states.clear()
        self._owner = None

    def before(self, llm: Any, key: str | None, prompt: list[int]) -> None:
        """Before decoding ``prompt`` for conversation ``key``: put its saved state back if that saves work."""
        if self.capacity_bytes <= 0 or key == self._owner:
            return
        self._owner = key
        saved = self._states.get(key) if key is not None else None
        if saved is None:
            return
        try:
            current = common_prefix(llm.input_ids[: llm.n_tokens].tolist(), prompt)
            if common_prefix(saved.tokens, prompt) > current:
                self._restore(llm, saved)
                self._states.move_to_end(key)
                self.hits += 1
        except Exception as exc:  # a cache is an optimisation: on any problem, decode from scratch
            log.warning("model state not restored: %s", type(exc).__name__)
            self._states.pop(key, None)
            llm.reset()

    def after(self, llm: Any, key: str | None) -> None:
        """After a reply: keep the conversation's state (the prompt and the reply) for when it comes back.

        Copied while the context still holds it, so a later switch only restores, and returning
        costs a copy back instead of the whole history again.
        """
        if self.capacity_bytes <= 0 or key is None or llm.n_tokens == 0:
            return
        try:
            self._put(key, self._capture(llm))
        except Exception as exc:
            log.warning("model state not kept: %s", type(exc).__name__)

    def _put(self, key: str, state: SavedState) -> None:
        self._states.pop(key, None)
        if state.size > self.capacity_bytes:
            return
        self._states[key] = state
        while self.size > self.capacity_bytes:
            self._states.popitem(last=False)

    @staticmethod
    def _capture(llm: Any) -> SavedState:
        import llama_cpp

        ctx = llm._ctx.ctx
        size = llama_cpp.llama_state_seq_get_size(ctx, SEQ)
        buffer = (ctypes.c_uint8 * size)()
        written = llama_cpp.llama_state_seq_get_data(ctx, buffer, size, SEQ)
        return SavedState(tokens=llm.input_ids[: llm.n_tokens].tolist(), data=buffer, size=int(written))

    @staticmethod
    def _restore(llm: Any, saved: SavedState) -> None:
        import llama_cpp

        llm._ctx.kv_cache_seq_rm(-1, 0, -1)
        if llama_cpp.llama_state_seq_set_data(llm._ctx.ctx, saved.data, saved.size, SEQ) == 0:
            raise RuntimeError("state not restored")
        count = len(saved.tokens)
        llm.input_ids[:count] = saved.tokens
        llm.n_tokens = count
        llm._requires_eval = True
