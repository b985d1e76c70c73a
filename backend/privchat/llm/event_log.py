"""A generation's stream events, numbered, so a dropped client can pick the reply up again.

The phone locks, the network switches, the tunnel blinks: the HTTP response ends but the generation
goes on. Every event therefore gets a sequence number (the SSE ``id:`` is
``<assistant_message_id>:<n>``) and stays in the generation's ``EventLog`` while it runs, so any
number of readers (the device that sent the message, the same device after a drop, a second
device) each read from their own place. When the generation ends its log shrinks to a
``FinishedReplay``: only where each token ended in the reply text and the closing event. The text
itself is read back from the database, which is the truth for a finished reply; a few hundred
finished replies cost a few kilobytes each at most.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from ..errors import EVENT_ID_INVALID, CodedError

Event = tuple[int, str, dict[str, Any]]  # (sequence number, kind, data)

TERMINAL = ("done", "error")
# Finished replies whose token boundaries are kept for replay (older ones replay as one snapshot).
FINISHED_KEPT = 256


# How a reply that did not end on its own stopped, as the finish_reason of its done event (a reply
# still "streaming" in the database was interrupted by a restart).
STOPPED = {"cancelled": "cancelled", "interrupted": "interrupted", "streaming": "interrupted"}


def done_data(status: str, *, model_reason: str | None = None, prompt_tokens: int = 0, completion_tokens: int = 0,
              timings: dict[str, float | None] | None = None, dropped_messages: int = 0,
              message_cut: bool | None = None, attachments_seen: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """What a ``done`` event says, for a reply written live and for one read back from the database.

    ``finish_reason`` is the model's own (``model_reason``: stop, length) for a complete reply, else
    how it was stopped. A live reply also says whether the owner's message was cut and how much of
    each document the model saw; a stored reply sent whole no longer knows those, and leaves them out.
    """
    if status == "complete":
        finish_reason = "stop" if model_reason is None else model_reason
    else:
        finish_reason = STOPPED.get(status, "stop")
    data: dict[str, Any] = {
        "finish_reason": finish_reason,
        "status": status,
        "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                  "total_tokens": prompt_tokens + completion_tokens},
        "timings": timings or {},
        "dropped_messages": dropped_messages,
    }
    if message_cut is not None:
        data["message_cut"] = message_cut
    if attachments_seen is not None:
        data["attachments_seen"] = attachments_seen
    return data


def event_id(assistant_message_id: str, seq: int) -> str:
    return f"{assistant_message_id}:{seq}"


def parse_event_id(assistant_message_id: str, value: str | None) -> int | None:
    """The sequence number of a ``Last-Event-ID`` for this reply; None for an absent or empty one.

    Refuses (event_id_invalid) an id of another reply or one that is not ``<id>:<n>``.
    """
    if value is None or not value.strip():
        return None
    reply, sep, number = value.strip().rpartition(":")
    if not sep or reply != assistant_message_id or not number.isdigit() or len(number) > 9:
        raise CodedError(EVENT_ID_INVALID)
    return int(number)


class EventLog:
    """Appended on the event loop; each reader keeps its own cursor and waits for what is new.

    Cheaper per token than a Queue read with a timeout (no task, no ``asyncio.wait`` set per
    token), and a reader that fell behind gets every pending event in one write.
    """

    def __init__(self) -> None:
        self.events: list[tuple[str, dict[str, Any]]] = []
        self.ends: list[int] = []  # characters of reply text up to and including each event
        self._waiters: set[asyncio.Future[None]] = set()

    @property
    def finished(self) -> bool:
        return bool(self.events) and self.events[-1][0] in TERMINAL

    def append(self, kind: str, data: dict[str, Any]) -> int:
        seq = len(self.events)
        self.events.append((kind, data))
        before = self.ends[-1] if self.ends else 0
        self.ends.append(before + len(data["text"]) if kind == "token" else before)
        waiters, self._waiters = self._waiters, set()
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)
        return seq

    async def after(self, cursor: int, timeout: float) -> list[Event]:
        """Events numbered ``cursor`` and later, waiting up to ``timeout`` for one; [] = the wait ran out."""
        if cursor >= len(self.events):
            loop = asyncio.get_running_loop()
            waiter: asyncio.Future[None] = loop.create_future()
            self._waiters.add(waiter)
            timer = loop.call_later(timeout, _release, waiter)
            try:
                await waiter
            finally:
                timer.cancel()
                self._waiters.discard(waiter)
        return [(seq, *self.events[seq]) for seq in range(cursor, len(self.events))]


def _release(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


@dataclass(frozen=True)
class FinishedReplay:
    """What is left of a finished generation's log: token boundaries and the non-token events."""

    ends: tuple[int, ...]
    others: dict[int, tuple[str, dict[str, Any]]]  # start, queued, done or error, by number

    @classmethod
    def of(cls, log: EventLog) -> "FinishedReplay":
        others = {seq: event for seq, event in enumerate(log.events) if event[0] != "token"}
        return cls(tuple(log.ends), others)

    def events_after(self, cursor: int, text: str) -> list[Event] | None:
        """The events from ``cursor`` on, token texts cut from the stored ``text``; None when the
        stored text is not the one streamed (then the caller sends it whole)."""
        if not self.ends or self.ends[-1] != len(text) or cursor >= len(self.ends):
            return None
        out: list[Event] = []
        for seq in range(max(cursor, 0), len(self.ends)):
            if seq in self.others:
                kind, data = self.others[seq]
                out.append((seq, kind, data))
            else:
                start = self.ends[seq - 1] if seq else 0
                out.append((seq, "token", {"text": text[start:self.ends[seq]]}))
        return out


class FinishedReplays:
    """The most recent finished replies' replays, oldest forgotten first."""

    def __init__(self, keep: int = FINISHED_KEPT) -> None:
        self.keep = keep
        self._items: OrderedDict[str, FinishedReplay] = OrderedDict()

    def add(self, assistant_message_id: str, replay: FinishedReplay) -> None:
        self._items[assistant_message_id] = replay
        self._items.move_to_end(assistant_message_id)
        while len(self._items) > self.keep:
            self._items.popitem(last=False)

    def get(self, assistant_message_id: str) -> FinishedReplay | None:
        return self._items.get(assistant_message_id)

    def forget(self, assistant_message_id: str) -> None:
        self._items.pop(assistant_message_id, None)
