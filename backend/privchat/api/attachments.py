"""Attachments: upload a file before its message is sent, read it back, take it back.

``POST /api/attachments`` ``{conversation_id?, name, mime, data: base64}`` checks the file by its
bytes (``privchat/attachments.py``: text, PDF through pypdf, JPEG/PNG/WebP) in a worker thread,
and only then stores it, sealed and pending (``storage/attachments.py``); the answer is ``201
{id, name, kind, mime, size, pages?}``. ``POST /api/chat`` with ``attachments: [id, …]`` makes them
the message's. ``GET /api/attachments/<id>`` gives the file back (base64), ``DELETE`` takes back one
not sent yet. Its body may be larger than ``server.max_body_bytes``: ``attachments.max_bytes``
decides it (``body_limits.py``). A file the check refuses, and an id the store does not have, are
coded errors that ``app.py`` answers.
"""

from __future__ import annotations

import asyncio
import base64
import binascii

from quart import Blueprint, current_app
from quart_schema import validate_request, validate_response

from ..attachments import check
from ..errors import ATTACHMENT_INVALID_DATA, CodedError
from .schemas import AttachmentFile, AttachmentInfo, AttachmentUpload, Deleted

blueprint = Blueprint("attachments", __name__)

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
        raise CodedError(ATTACHMENT_INVALID_DATA, name=data.name) from exc
    checked = await asyncio.to_thread(check, data.name, data.mime, raw, max_bytes=limits.max_bytes, max_pages=limits.max_pages)
    store = state.history.attachments
    await store.expire_pending(limits.pending_hours * 3600)
    info = await store.add(name=data.name, kind=checked.kind, mime=checked.mime, data=raw, content=checked.content(),
                           pages=checked.page_count, conversation_id=data.conversation_id)
    return AttachmentInfo(**info.to_json()), 201


@blueprint.get("/api/attachments/<attachment_id>")
@validate_response(AttachmentFile)
async def read(attachment_id: str) -> AttachmentFile:
    info, raw = await _state().history.attachments.get(attachment_id)
    return AttachmentFile(**info.to_json(), data=base64.b64encode(raw).decode("ascii"))


@blueprint.delete("/api/attachments/<attachment_id>")
@validate_response(Deleted)
async def take_back(attachment_id: str) -> Deleted:
    await _state().history.attachments.delete_pending(attachment_id)  # attachment_not_found, attachment_sent
    return Deleted(deleted=1)

