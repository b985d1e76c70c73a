"""Attachments: upload a file before its message is sent, read it back, take it back.

``POST /api/attachments`` ``{conversation_id?, name, mime, data: base64}`` checks the file by its
bytes (``privchat/attachments.py``: text, PDF through pypdf, JPEG/PNG/WebP) in a worker thread,
and only then stores it, sealed and pending (``storage/attachments.py``); the answer is ``201
{id, name, kind, mime, size, pages?}``. ``POST /api/chat`` with ``attachments: [id, …]`` makes them
the message's. ``GET /api/attachments/<id>`` gives the file back (base64), ``DELETE`` takes back one
not sent yet. Its body may be larger than ``server.max_body_bytes``: ``attachments.max_bytes``
decides it (``body_limits.py``).
"""

from __future__ import annotations

import asyncio
import base64
import binascii

from quart import Blueprint, current_app
from quart_schema import validate_request, validate_response

from ..attachments import AttachmentRefused, check
from ..errors import ApiError
from ..storage.attachments import AttachmentMissing, AttachmentTaken
from .schemas import AttachmentFile, AttachmentInfo, AttachmentUpload, Deleted

blueprint = Blueprint("attachments", __name__)

NOT_FOUND = "There is no attachment with that id: it was deleted with its conversation, or never sent and expired."


def _state():
    return current_app.extensions["privchat"]


@blueprint.post("/api/attachments")
@validate_request(AttachmentUpload)
@validate_response(AttachmentInfo, 201)
async def upload(data: AttachmentUpload) -> tuple[AttachmentInfo, int]:
    state = _state()
    limits = state.config.attachments
    try:
        raw = base64.b64decode(data.data, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ApiError(400, "attachment_invalid_data", f"{data.name} did not arrive whole: its data is not base64. "
                       "Attach it again.") from exc
    checked = await asyncio.to_thread(check, data.name, data.mime, raw, max_bytes=limits.max_bytes, max_pages=limits.max_pages)
    store = state.history.attachments
    await store.expire_pending(limits.pending_hours * 3600)
    try:
        info = await store.add(name=data.name, kind=checked.kind, mime=checked.mime, data=raw, content=checked.content(),
                               pages=checked.page_count, conversation_id=data.conversation_id)
    except AttachmentMissing as exc:
        raise ApiError(404, "not_found", "That conversation does not exist (it may have been deleted).") from exc
    return AttachmentInfo(**info.to_json()), 201


@blueprint.get("/api/attachments/<attachment_id>")
@validate_response(AttachmentFile)
async def read(attachment_id: str) -> AttachmentFile:
    try:
        info, raw = await _state().history.attachments.get(attachment_id)
    except AttachmentMissing as exc:
        raise ApiError(404, "attachment_not_found", NOT_FOUND) from exc
    return AttachmentFile(**info.to_json(), data=base64.b64encode(raw).decode("ascii"))


@blueprint.delete("/api/attachments/<attachment_id>")
@validate_response(Deleted)
async def take_back(attachment_id: str) -> Deleted:
    try:
        await _state().history.attachments.delete_pending(attachment_id)
    except AttachmentMissing as exc:
        raise ApiError(404, "attachment_not_found", NOT_FOUND) from exc
    except AttachmentTaken as exc:
        raise ApiError(409, "attachment_sent", "That attachment was sent with a message; it goes when its conversation "
                       "is deleted.") from exc
    return Deleted(deleted=1)


__all__ = ["blueprint", "AttachmentRefused"]
