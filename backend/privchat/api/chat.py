"""Chat: a streamed reply as Server-Sent Events, and cancelling it."""

from __future__ import annotations

import json
from typing import Any, AsyncIterator

from quart import Blueprint, Response, current_app
from quart_rate_limiter import rate_limit
from quart_schema import validate_request, validate_response

from ..errors import ApiError
from ..llm.generations import Generation
from .ratelimits import chat_limit
from .schemas import CancelResult, ChatRequest

blueprint = Blueprint("chat", __name__)

SSE_HEADERS = {
    "Cache-Control": "no-cache, no-transform",
    "X-Accel-Buffering": "no",
}


def sse(event: str, data: dict[str, Any]) -> bytes:
    return f"event: {event}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n".encode("utf-8")


async def event_stream(generation: Generation, ping_seconds: float) -> AsyncIterator[bytes]:
    """Relay the generation's events; a ping comment keeps the edge from closing an idle stream.

    If the client goes away this generator is cancelled, but the generation is not: it is its own
    task and stores the whole reply.
    """
    yield sse("start", {
        "conversation_id": generation.conversation_id,
        "user_message_id": generation.user_message_id,
        "assistant_message_id": generation.assistant_message_id,
    })
    while True:
        batch = await generation.events.next_batch(ping_seconds)
        if not batch:
            yield b": ping\n\n"
            continue
        yield b"".join(sse(kind, data) for kind, data in batch)
        if any(kind in ("done", "error") for kind, _ in batch):
            return


@blueprint.post("/api/chat")
@rate_limit(limits=chat_limit)
@validate_request(ChatRequest)
async def chat(data: ChatRequest) -> Response:
    state = current_app.extensions["privchat"]
    options = data.options.model_dump(exclude_none=True) if data.options else {}
    generation = await state.generations.start(data.message, data.conversation_id, options)
    response = Response(event_stream(generation, current_app.config["SSE_PING_SECONDS"]),
                        mimetype="text/event-stream", headers=SSE_HEADERS)
    response.timeout = None  # a long reply must not be cut by Quart's response timeout
    return response


@blueprint.post("/api/chat/<message_id>/cancel")
@validate_response(CancelResult)
async def cancel(message_id: str) -> CancelResult:
    state = current_app.extensions["privchat"]
    if state.generations.cancel(message_id):
        return CancelResult(cancelled=True)
    try:
        message = await state.history.get_message(message_id)
    except LookupError as exc:
        raise ApiError(404, "not_found", "There is no reply with that id.") from exc
    # Already finished: cancelling is a no-op, not an error (the Stop button may race the end).
    return CancelResult(cancelled=message.status in ("cancelled", "interrupted"))
