"""Chat: a streamed reply as Server-Sent Events, reattaching to one after a drop, and cancelling it.

The reply travels as sealed frames on a clock (``reply_stream.py``, docs/E2E.md); inside them
every event carries its id (``<assistant_message_id>:<n>``): a page that lost its
connection asks ``GET /api/chat/<id>/stream?last_event_id=<id>`` and gets exactly what it missed,
then the live events. EventSource cannot sign a request, so the page reads this route with fetch
like the POST. The cursor travels only in the query, which the signature covers: the standard
``Last-Event-ID`` header is not signed, so anything on the path could add one and have a validly
sealed reply start at its 21st token. The header is therefore ignored; without a query the reply
is sent from its start.
"""

from __future__ import annotations

from typing import AsyncIterator

from quart import Blueprint, Response, current_app
from quart_rate_limiter import rate_limit
from quart_schema import validate_querystring, validate_request, validate_response

from .gate import current_device_id
from ..llm.event_log import Event, parse_event_id
from .ratelimits import chat_limit
from .reply_stream import framed_stream
from .sealed import mark_sealed, meta_line, response_sealer
from .schemas import CancelResult, ChatRequest, ReattachQuery

blueprint = Blueprint("chat", __name__)

SSE_HEADERS = {
    "Cache-Control": "no-cache, no-transform",
    "X-Accel-Buffering": "no",
}


def stream_response(reply_id: str, batches: AsyncIterator[list[Event]]) -> Response:
    sealer = response_sealer()
    if sealer is None:
        raise RuntimeError("a chat stream needs an opened (sealed) request")
    devices, device_id = current_app.extensions["privchat"].devices, current_device_id()

    async def revoked() -> bool:
        device = await devices.get(device_id)
        return device is None or device.revoked_at is not None

    response = Response(framed_stream(reply_id, batches, sealer, meta_line(200, {}), revoked),
                        mimetype="text/event-stream", headers=SSE_HEADERS)
    response.timeout = None  # a long reply must not be cut by Quart's response timeout
    return mark_sealed(response, sealer)


@blueprint.post("/api/chat")
@rate_limit(limits=chat_limit)
@validate_request(ChatRequest)
async def chat(data: ChatRequest) -> Response:
    state = current_app.extensions["privchat"]
    options = data.options.model_dump(exclude_none=True) if data.options else {}
    branch = {"parent_id": data.parent_id} if "parent_id" in data.model_fields_set else {}  # null: a new first message
    generation = await state.generations.start(data.message, data.conversation_id, options, model=data.model,
                                               regenerate_of=data.regenerate_of, attachments=data.attachments, **branch)
    reply_id = generation.assistant_message_id
    batches = await state.generations.attach(reply_id, None)
    return stream_response(reply_id, batches)


@blueprint.get("/api/chat/<message_id>/stream")
@validate_querystring(ReattachQuery)
async def reattach(message_id: str, query_args: ReattachQuery) -> Response:
    """The reply's events after the signed ``last_event_id`` (all of them without it), then the live
    ones. An unsigned ``Last-Event-ID`` header is never read (the module docstring says why)."""
    state = current_app.extensions["privchat"]
    after = parse_event_id(message_id, query_args.last_event_id)
    batches = await state.generations.attach(message_id, after)
    return stream_response(message_id, batches)


@blueprint.post("/api/chat/<message_id>/cancel")
@validate_response(CancelResult)
async def cancel(message_id: str) -> CancelResult:
    state = current_app.extensions["privchat"]
    if state.generations.cancel(message_id):
        return CancelResult(cancelled=True)
    message = await state.history.get_message(message_id)  # NotFound: answered not_found
    # Already finished: cancelling is a no-op, not an error (the Stop button may race the end).
    return CancelResult(cancelled=message.status in ("cancelled", "interrupted"))
