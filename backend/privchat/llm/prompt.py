"""Fitting a conversation into the context window with the model's own chat template.

The prompt is the owner's system prompt plus as many *recent* turns as fit after reserving room
for the reply. Token counts come from rendering the real template and tokenizing the result, so
the fit is exact rather than estimated. A history of any length, or one huge message, never makes
a request fail: old turns are dropped first, then the oldest part of an oversized message.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from llama_cpp.llama_chat_format import Jinja2ChatFormatter

# Room kept for the reply even when the owner asks for more than the window allows.
MIN_REPLY_TOKENS = 16
# A reply may take at most this share of the window, so a prompt always has room.
MAX_REPLY_SHARE = 0.75


@dataclass(frozen=True)
class FittedPrompt:
    prompt: str
    tokens: list[int]  # the prompt tokenized once here, and decoded from as is
    max_tokens: int
    dropped_messages: int
    truncated: bool
    stop: list[str]

    @property
    def prompt_tokens(self) -> int:
        return len(self.tokens)


class PromptFitter:
    def __init__(self, template: str, eos_token: str, bos_token: str, tokenize: Callable[[str], list[int]], n_ctx: int) -> None:
        self.formatter = Jinja2ChatFormatter(template=template, eos_token=eos_token, bos_token=bos_token,
                                             add_generation_prompt=True)
        self.stop = [eos_token] if eos_token else []
        self.tokenize = tokenize
        self.n_ctx = n_ctx

    def render(self, messages: list[dict[str, str]]) -> str:
        return self.formatter(messages=messages).prompt

    def fit(self, system_prompt: str, turns: list[dict[str, str]], max_tokens: int) -> FittedPrompt:
        if not turns or turns[-1]["role"] != "user":
            raise ValueError("a prompt must end with the user's message")
        reply = max(MIN_REPLY_TOKENS, min(max_tokens, int(self.n_ctx * MAX_REPLY_SHARE)))
        budget = self.n_ctx - reply
        system = [{"role": "system", "content": system_prompt}] if system_prompt.strip() else []

        def cost(keep_from: int) -> tuple[str, list[int]]:
            text = self.render(system + turns[keep_from:])
            return text, self.tokenize(text)

        # Binary search the earliest turn we can keep (fewer renders than dropping one at a time).
        last = len(turns) - 1
        prompt, tokens = cost(0)
        keep_from = 0
        if len(tokens) > budget:
            lo, hi = 1, last  # hi always fits-or-is-the-last-message
            best = last
            while lo <= hi:
                mid = (lo + hi) // 2
                if len(self.tokenize(self.render(system + turns[mid:]))) <= budget:
                    best, hi = mid, mid - 1
                else:
                    lo = mid + 1
            keep_from = best
            # Start on a user turn: many templates require user/assistant alternation.
            while keep_from < last and turns[keep_from]["role"] != "user":
                keep_from += 1
            prompt, tokens = cost(keep_from)
        truncated = False
        if len(tokens) > budget:
            prompt, tokens, system = self._truncate_last(system, turns[last], budget)
            truncated = True
        return FittedPrompt(prompt=prompt, tokens=tokens, max_tokens=min(reply, self.n_ctx - len(tokens)),
                            dropped_messages=keep_from if not truncated else last, truncated=truncated, stop=self.stop)

    def _truncate_last(self, system: list[dict[str, str]], message: dict[str, str], budget: int) -> tuple[str, list[int], list[dict[str, str]]]:
        """Only the last message is left and still too long: keep its end (the question is usually there)."""
        content = message["content"]
        for attempt_system in (system, [{"role": "system", "content": system[0]["content"][:2000]}] if system else [], []):
            lo, hi, best = 0, len(content), None
            while lo <= hi:
                mid = (lo + hi) // 2
                text = self.render(attempt_system + [{"role": "user", "content": content[len(content) - mid:]}])
                tokens = self.tokenize(text)
                if len(tokens) <= budget:
                    best, lo = (text, tokens, mid), mid + 1
                else:
                    hi = mid - 1
            if best is not None and best[2] > 0:
                return best[0], best[1], attempt_system
        text = self.render([{"role": "user", "content": ""}])
        return text, self.tokenize(text), []
