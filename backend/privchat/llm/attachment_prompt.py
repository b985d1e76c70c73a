"""Attached files in the prompt: documents as text within the context budget, images as image parts.

A user turn with documents becomes one text: each document between a header line and an end line
(``[Attached file: report.pdf, PDF, 40 pages]`` … ``[End of report.pdf]``), then the message. The
documents of a turn share the room left in the model's context once the reply (as the fitter keeps
it, ``prompt.py``), the system prompt and the message itself are counted, with a margin for the
chat template; when they do not fit, each gets a fair share and is cut at a page (a PDF) or a line
(text), from its start, and the header says so. The reply then says how much the model saw
(``seen``: the ``done`` event's ``attachments_seen``, "the first 12 of 40 pages"). Each turn is
fitted on its own, so the message being answered always fits whole with its documents; older turns
are dropped by the fitter as before when the conversation is long.

Images go only with the message being answered, and only to a model that can see (an embedded GGUF
with its ``mmproj``, an upstream with ``vision: true``), as OpenAI content parts
(``{"type": "image_url", "image_url": {"url": "data:image/jpeg;base64,…"}}``); an older message's
image is named in its text. Tokens are counted with the embedded model's own tokenizer when it is
loaded, else estimated as for upstreams (``upstream_context.BYTES_PER_TOKEN``).
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from typing import Any, Callable

from .prompt import MAX_REPLY_SHARE, MIN_REPLY_TOKENS
from .upstream_context import BYTES_PER_TOKEN

# The context assumed for an upstream whose n_ctx the config does not give.
UNKNOWN_CONTEXT_TOKENS = 8192
# Room kept for the chat template's markers and the headers around each document.
TEMPLATE_MARGIN_TOKENS = 48
PER_DOCUMENT_TOKENS = 24
# The count of a whole text is checked, and a share that came out too long shrunk by this much.
SHRINK = 0.9

Counter = Callable[[str], int]


def estimate(text: str) -> int:
    return len(text.encode("utf-8")) // BYTES_PER_TOKEN + 1


def counter_for(engine: Any) -> Counter:
    fitter = getattr(engine, "_fitter", None)
    if fitter is not None and getattr(engine, "engine", "") == "embedded":
        return lambda text: len(fitter.tokenize(text))
    return estimate


def context_of(engine: Any) -> int:
    return int(getattr(engine.status, "n_ctx", None) or engine.spec.n_ctx or UNKNOWN_CONTEXT_TOKENS)


@dataclass
class Document:
    id: str
    name: str
    pages: list[str] | None = None
    text: str | None = None
    page_count: int | None = None


@dataclass
class Expanded:
    content: str | list[dict[str, Any]]
    seen: list[dict[str, Any]] = field(default_factory=list)


def room_for_documents(n_ctx: int, max_tokens: int, fixed_tokens: int, documents: int) -> int:
    reply = max(MIN_REPLY_TOKENS, min(max_tokens, int(n_ctx * MAX_REPLY_SHARE)))
    return max(0, n_ctx - reply - fixed_tokens - TEMPLATE_MARGIN_TOKENS - PER_DOCUMENT_TOKENS * documents)


def shares(sizes: list[int], room: int) -> list[int]:
    """Each document's tokens: all of it when everything fits, else a fair share (a short one keeps
    all it needs and leaves the rest to the longer ones)."""
    if sum(sizes) <= room:
        return list(sizes)
    out = [0] * len(sizes)
    left, pending = room, sorted(range(len(sizes)), key=lambda i: sizes[i])
    while pending:
        fair = left // len(pending)
        index = pending.pop(0)
        out[index] = min(sizes[index], fair)
        left -= out[index]
    return out


def _cut_text(text: str, budget: int, count: Counter) -> str:
    """The longest start of ``text``, cut at a line end where there is one, within ``budget`` tokens."""
    if budget <= 0:
        return ""
    total = count(text)
    if total <= budget:
        return text
    chars = int(len(text) * budget / max(total, 1))
    while chars > 0:
        piece = text[:chars]
        newline = piece.rfind("\n")
        if newline > chars // 2:
            piece = piece[:newline + 1]
        if count(piece) <= budget:
            return piece
        chars = int(chars * SHRINK)
    return ""


def _pdf_block(doc: Document, budget: int, count: Counter) -> tuple[str, dict[str, Any]]:
    pages = doc.pages or []
    total_pages = doc.page_count or len(pages)
    body: list[str] = []
    used = 0
    for number, page in enumerate(pages, 1):
        piece = f"--- page {number} ---\n{page}\n"
        cost = count(piece)
        if used + cost > budget:
            if not body:  # not even the first page: as much of it as fits
                part = _cut_text(piece, budget, count)
                if part:
                    body.append(part)
                seen = {"id": doc.id, "name": doc.name, "kind": "pdf", "pages": total_pages, "pages_seen": 0, "whole": False}
                header = (f"[Attached file: {doc.name}, PDF, {total_pages} pages; only the start of page 1 fits in the "
                          "model's context and is shown]")
                return _block(header, "".join(body), doc.name), seen
            break
        body.append(piece)
        used += cost
    shown = len(body)
    whole = shown == total_pages
    seen = {"id": doc.id, "name": doc.name, "kind": "pdf", "pages": total_pages, "pages_seen": shown, "whole": whole}
    header = (f"[Attached file: {doc.name}, PDF, {total_pages} pages]" if whole else
              f"[Attached file: {doc.name}, PDF, {total_pages} pages; only the first {shown} fit in the model's context and are shown]")
    return _block(header, "".join(body), doc.name), seen


def _text_block(doc: Document, budget: int, count: Counter) -> tuple[str, dict[str, Any]]:
    text = doc.text or ""
    lines = text.count("\n") + (0 if text.endswith("\n") else 1)
    part = _cut_text(text, budget, count)
    whole = len(part) == len(text)
    shown = lines if whole else part.count("\n") + (0 if part.endswith("\n") or not part else 1)
    seen = {"id": doc.id, "name": doc.name, "kind": "text", "lines": lines, "lines_seen": shown, "whole": whole}
    header = (f"[Attached file: {doc.name}, {lines} lines]" if whole else
              f"[Attached file: {doc.name}, {lines} lines; only the first {shown} fit in the model's context and are shown]")
    return _block(header, part, doc.name), seen


def _block(header: str, body: str, name: str) -> str:
    return f"{header}\n{body.rstrip()}\n[End of {name}]"


def expand_turn(message: str, documents: list[Document], image_names: list[str], images: list[tuple[str, bytes]], *,
                system_prompt: str, n_ctx: int, max_tokens: int, count: Counter) -> Expanded:
    """One user turn with its attachments: the text the model reads (and image parts when ``images``)."""
    notes = [f"[Attached image: {name}]" for name in image_names]
    fixed = count(system_prompt) + count(message) + sum(count(n) for n in notes)
    room = room_for_documents(n_ctx, max_tokens, fixed, len(documents))
    # A PDF's size is counted page by page, as _pdf_block spends it.
    sizes = [sum(count(f"--- page {i} ---\n{p}\n") for i, p in enumerate(d.pages, 1)) if d.pages is not None
             else count(d.text or "") for d in documents]
    blocks, seen = [], []
    for doc, budget in zip(documents, shares(sizes, room)):
        block, what = (_pdf_block if doc.pages is not None else _text_block)(doc, budget, count)
        blocks.append(block)
        seen.append(what)
    text = "\n\n".join([*blocks, *notes, message])
    if not images:
        return Expanded(text, seen)
    parts: list[dict[str, Any]] = [{"type": "text", "text": text}]
    for mime, data in images:
        parts.append({"type": "image_url", "image_url": {"url": f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"}})
    return Expanded(parts, seen)


def text_of(content: str | list[dict[str, Any]]) -> str:
    """A turn's text, whether it is a string or OpenAI content parts."""
    if isinstance(content, str):
        return content
    return "\n".join(part.get("text", "") for part in content if part.get("type") == "text")
