"""A reply stream cut into sealed frames of a few fixed sizes (docs/E2E.md, "A reply stream").

Sealed one event per SSE event, a reply showed the edge every token's length (a chunk is its
plaintext plus 16 bytes) and its rhythm: enough to rebuild the text with a model (Weiss et al.,
USENIX Security 2024). Here the events are one byte string, newline-terminated JSON, cut into
frames without regard to their boundaries; each frame is padded to a size from ``FRAME_SIZES`` and
sealed as the next chunk of the answer. ``FrameShaper`` decides what each frame carries; the clock
that sends one a tick is the HTTP layer's (``api/reply_stream.py``), so this stays pure.
"""

from __future__ import annotations

import json
from typing import Any

from ..jwk import b64url_encode
from .sealing import ResponseSealer
from .suite import FRAME_LENGTH_BYTES, FRAME_SIZES, SEALED_EVENT, TAG_BYTES

FINAL_EVENTS = ("done", "error")
FRAME_OVERHEAD = FRAME_LENGTH_BYTES + TAG_BYTES


def encode_event(id: str | None, event: str, data: dict[str, Any]) -> bytes:
    """One event as the stream carries it: compact JSON (no raw line feed) and a line feed."""
    return json.dumps({"id": id, "event": event, "data": data}, ensure_ascii=False, separators=(",", ":")).encode("utf-8") + b"\n"


def frame_size_for(waiting: int) -> int:
    """The smallest frame that carries ``waiting`` bytes, or the largest when none does."""
    return next((size for size in FRAME_SIZES if size - FRAME_OVERHEAD >= waiting), FRAME_SIZES[-1])


def frame_plaintext(payload: bytes, size: int) -> bytes:
    """The length, the payload, zeros: ``size`` less the tag."""
    if size not in FRAME_SIZES or len(payload) > size - FRAME_OVERHEAD:
        raise ValueError(f"{len(payload)} bytes do not fit a {size}-byte frame")
    return len(payload).to_bytes(FRAME_LENGTH_BYTES, "big") + payload + bytes(size - FRAME_OVERHEAD - len(payload))


def sse_frame(chunk: bytes) -> bytes:
    return f"event: {SEALED_EVENT}\ndata: {b64url_encode(chunk)}\n\n".encode("ascii")


class FrameShaper:
    """Holds the events not sent yet and makes the next frame on demand (one per tick).

    ``add`` takes events in order; after a final one (``done``/``error``) it takes no more. The frame
    that carries the final event's last byte is sealed final, and ``finished`` turns true.
    """

    def __init__(self, sealer: ResponseSealer, meta: bytes = b"") -> None:
        self.sealer = sealer
        self._waiting = bytearray(meta)  # the answer's meta line goes first (docs/E2E.md)
        self._closed = False
        self.finished = False

    def add(self, id: str | None, event: str, data: dict[str, Any]) -> None:
        if self._closed:
            raise RuntimeError("no event may follow a reply's final event")
        self._waiting += encode_event(id, event, data)
        self._closed = event in FINAL_EVENTS

    @property
    def closed(self) -> bool:
        """The final event was added (it may not be sent yet)."""
        return self._closed

    def next_frame(self) -> bytes:
        """The next frame as SSE bytes: as much as waits, up to what the chosen size carries."""
        if self.finished:
            raise RuntimeError("the final frame was already sent")
        size = frame_size_for(len(self._waiting))
        take = min(len(self._waiting), size - FRAME_OVERHEAD)
        payload = bytes(self._waiting[:take])
        del self._waiting[:take]
        final = self._closed and not self._waiting
        self.finished = final
        return sse_frame(self.sealer.seal(frame_plaintext(payload, size), final=final))
