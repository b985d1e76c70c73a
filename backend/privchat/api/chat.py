"""Chat: a streamed reply as Server-Sent Events, reattaching to one after a drop, and cancelling it.

Every event carries an SSE ``id:`` (``<assistant_message_id>:<n>``): a page that lost its
connection asks ``GET /api/chat/<id>/stream`` with ``Last-Event-ID`` and gets exactly what it
missed, then the live events. EventSource cannot sign a request, so the page reads this route with
fetch like the POST. The page names the last event in the query (``?last_event_id=``), which the
signature covers and which needs no CORS header of its own (Access answers the preflights with a
fixed header list); other clients may send the standard header.
"""

from __future__ import annotations

import json
from typing import Any, AsyncIterator

from quart import Blueprint, Response, current_app, request
from quart_rate_limiter import rate_limit
from quart_schema import validate_querystring, validate_request, validate_response

from ..errors import ApiError
from ..llm.event_log import Event, event_id, parse_event_id
from ..llm.generations import EventIdInvalid
from .ratelimits import chat_limit
from .schemas import CancelResult, ChatRequest, ReattachQuery

blueprint = Blueprint("chat", __name__)

SSE_HEADERS = {
    "Cache-Control": "no-cache, no-transform",
    "X-Accel-Buffering": "no",
}


def sse(event: str, data: dict[str, Any], id: str | None = None) -> bytes:
    head = f"id: {id}\n" if id is not None else ""
    return f"{head}event: {event}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n".encode("utf-8")


async def event_stream(reply_id: str, batches: AsyncIterator[list[Event]]) -> AsyncIterator[bytes]:
    """Relay a reply's events with their ids; a ping comment when idle keeps the edge from closing
    the stream.

    If the client goes away this generator is cancelled, but the generation is not: it is its own
    task and stores the whole reply.
    """
    async for batch in batches:
        if not batch:
            yield b": ping\n\n"
            continue
        yield b"".join(sse(kind, data, event_id(reply_id, seq) if seq >= 0 else None) for seq, kind, data in batch)


def stream_response(reply_id: str, batches: AsyncIterator[list[Event]]) -> Response:
    response = Response(event_stream(reply_id, batches), mimetype="text/event-stream", headers=SSE_HEADERS)
    response.timeout = None  # a long reply must not be cut by Quart's response timeout
    return response


@blueprint.post("/api/chat")
@rate_limit(limits=chat_limit)
@validate_request(ChatRequest)
async def chat(data: ChatRequest) -> Response:
    state = current_app.extensions["privchat"]
    options = data.options.model_dump(exclude_none=True) if data.options else {}
    generation = await state.generations.start(data.message, data.conversation_id, options)
    reply_id = generation.assistant_message_id
    batches = await state.generations.attach(reply_id, None, current_app.config["SSE_PING_SECONDS"])
    return stream_response(reply_id, batches)


@blueprint.get("/api/chat/<message_id>/stream")
@validate_querystring(ReattachQuery)
async def reattach(message_id: str, query_args: ReattachQuery) -> Response:
    """The reply's events after ``Last-Event-ID`` (all of them without it), then the live ones."""
    state = current_app.extensions["privchat"]
    last = query_args.last_event_id if query_args.last_event_id is not None else request.headers.get("Last-Event-ID")
    try:
        after = parse_event_id(message_id, last)
    except ValueError as exc:
        raise EventIdInvalid() from exc
    batches = await state.generations.attach(message_id, after, current_app.config["SSE_PING_SECONDS"])
    return stream_response(message_id, batches)


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
