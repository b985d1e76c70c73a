"""Conversations: list, read (every branch, and the current one), rename, switch branch, delete,
clear, export and import.

What the store refuses (no such conversation, a leaf of another one, an export that does not hold
together) it raises as coded errors, and ``app.py`` answers them: no route here translates one.
"""

from __future__ import annotations

import json
import time

from quart import Blueprint, Response, current_app
from quart_schema import validate_querystring, validate_request, validate_response

from ..errors import VALIDATION_ERROR, CodedError
from ..storage.export import export_to_markdown, history_export, import_conversations
from .schemas import (
    Conversation,
    ConversationPage,
    ConversationUpdate,
    ConversationUpdated,
    Deleted,
    ExportFile,
    ExportQuery,
    HistoryQuery,
    ImportResult,
)

blueprint = Blueprint("history", __name__)


def _history():
    return current_app.extensions["privchat"].history


@blueprint.get("/api/history")
@validate_querystring(HistoryQuery)
@validate_response(ConversationPage)
async def list_conversations(query_args: HistoryQuery) -> ConversationPage:
    items, next_before = await _history().list_conversations(query_args.limit, query_args.before)
    return ConversationPage(conversations=items, next_before=next_before)


@blueprint.get("/api/history/export")
@validate_querystring(ExportQuery)
async def export_history(query_args: ExportQuery) -> Response:
    export = await history_export(_history())
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime(export["exported_at"]))
    if query_args.format == "markdown":
        body, mimetype, suffix = export_to_markdown(export), "text/markdown; charset=utf-8", "md"
    else:
        body, mimetype, suffix = json.dumps(export, ensure_ascii=False, indent=2), "application/json", "json"
    response = Response(body, mimetype=mimetype)
    response.headers["Content-Disposition"] = f'attachment; filename="privchat-history-{stamp}.{suffix}"'
    return response


@blueprint.post("/api/history/import")
@validate_request(ExportFile)
@validate_response(ImportResult)
async def import_history(data: ExportFile) -> ImportResult:
    result = await import_conversations(_history(), (c.model_dump() for c in data.conversations))
    return ImportResult(**result)


@blueprint.get("/api/history/<conversation_id>")
@validate_response(Conversation)
async def get_conversation(conversation_id: str) -> Conversation:
    return Conversation(**await _history().get_conversation(conversation_id))


@blueprint.patch("/api/history/<conversation_id>")
@validate_request(ConversationUpdate)
@validate_response(ConversationUpdated)
async def update_conversation(conversation_id: str, data: ConversationUpdate) -> ConversationUpdated:
    """Rename (the owner's title is never replaced by the model's) and/or show another branch by
    default: ``current_leaf`` names any message of it, and its newest end is kept."""
    if data.title is None and data.current_leaf is None:
        raise CodedError(VALIDATION_ERROR, detail="give a title, a current_leaf or both")
    history = _history()
    if data.title is not None:
        await history.rename(conversation_id, data.title, source="owner")  # NotFound: answered not_found
    if data.current_leaf is not None:
        await history.set_current_leaf(conversation_id, data.current_leaf)  # NotInConversation: parent_invalid
    conversation = await history.get_conversation(conversation_id)
    return ConversationUpdated(id=conversation["id"], title=conversation["title"],
                               title_source=conversation["title_source"], current_leaf=conversation["current_leaf"])


@blueprint.delete("/api/history/<conversation_id>")
@validate_response(Deleted)
async def delete_conversation(conversation_id: str) -> Deleted:
    await _history().delete_conversation(conversation_id)
    return Deleted(deleted=1)


@blueprint.delete("/api/history")
@validate_response(Deleted)
async def clear_history() -> Deleted:
    return Deleted(deleted=await _history().clear())
