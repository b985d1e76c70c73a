"""A reply sent as sealed frames on a fixed clock (docs/E2E.md, "A reply stream: frames on a clock").

Frame 0 goes out as soon as the answer starts, then one frame every ``FRAME_TICK_SECONDS``, on an
absolute schedule: carrying whatever events wait (``e2e/frames.py`` cuts and pads them), or
nothing while the reply is queued, loading or thinking. So the edge sees when a reply starts and
ends, not when its tokens come, and the empty frames keep its idle timer alive (no pings). A tick
this process could not keep (a busy machine) is skipped rather than made up with a burst, so the
spacing on the wire stays the clock's.

The events come from the generation's log through ``batches`` (``GenerationManager.attach``); a
task moves them into the shaper as they come, so the clock never waits on the model. If the
client goes away, the stream is cancelled, not the generation: that is its own task and stores
the whole reply.
"""

from __future__ import annotations

import asyncio
from typing import AsyncIterator, Awaitable, Callable

from ..e2e.frames import FrameShaper
from ..errors import DEVICE_REVOKED, INTERNAL, CodedError
from ..e2e.sealing import ResponseSealer
from ..e2e.suite import FRAME_TICK_SECONDS
from ..llm.event_log import Event, event_id

# What a stream whose events ended without a final one (a defect) ends with: the page then says so
# instead of waiting for ever.
UNFINISHED = CodedError(INTERNAL, "The reply stream ended early on the server; the reply so far is stored.")
# A revoked device's open streams end within this many ticks (0.5 s): revocation is for a lost
# phone, and a reply it is still reading must stop too, not only its next request.
REVOCATION_CHECK_TICKS = 5
REVOKED = CodedError(DEVICE_REVOKED)


async def _feed(reply_id: str, batches: AsyncIterator[list[Event]], shaper: FrameShaper, ready: asyncio.Event) -> None:
    try:
        async for batch in batches:  # an empty batch is an idle wake-up: nothing to add
            for seq, kind, data in batch:
                shaper.add(event_id(reply_id, seq) if seq >= 0 else None, kind, data)
                if shaper.closed:
                    return
            if batch:
                ready.set()  # only the first one matters: frame 0 waits for it
    finally:
        if not shaper.closed:
            shaper.add(None, "error", UNFINISHED.as_json())
        ready.set()


async def framed_stream(reply_id: str, batches: AsyncIterator[list[Event]], sealer: ResponseSealer, meta: bytes,
                        revoked: Callable[[], Awaitable[bool]] | None = None,
                        tick: float = FRAME_TICK_SECONDS) -> AsyncIterator[bytes]:
    """The reply's frames as SSE bytes, one a tick, until the final one.

    ``revoked`` is asked every ``REVOCATION_CHECK_TICKS``; once it says yes, the stream's next
    frames carry what was waiting and a final ``error`` event ``device_revoked`` (sealed like the
    rest: the page must not believe a plain one). The reply itself goes on and is stored.
    """
    shaper = FrameShaper(sealer, meta)
    ready = asyncio.Event()
    feeder = asyncio.create_task(_feed(reply_id, batches, shaper, ready))
    loop = asyncio.get_running_loop()
    try:
        # Frame 0 carries the first events (a chat's start event is logged before this runs), and
        # waits at most a tick for them.
        try:
            await asyncio.wait_for(ready.wait(), timeout=tick)
        except asyncio.TimeoutError:
            pass
        start = loop.time()
        ticks = 0
        while True:
            yield shaper.next_frame()
            if shaper.finished:
                return
            ticks += 1
            if revoked is not None and not shaper.closed and ticks % REVOCATION_CHECK_TICKS == 0 and await revoked():
                shaper.add(None, "error", REVOKED.as_json())
                feeder.cancel()  # it adds nothing more: the shaper is closed
            late = loop.time() - (start + ticks * tick)
            if late > 0:  # missed ticks are skipped: the next frame goes on the next tick to come
                ticks += int(late // tick) + 1
            await asyncio.sleep(start + ticks * tick - loop.time())
    finally:
        feeder.cancel()
        await asyncio.gather(feeder, return_exceptions=True)
