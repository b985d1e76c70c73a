"""Conversations: list, read, delete, clear, export and import."""

from __future__ import annotations

import json
import time

from quart import Blueprint, Response, current_app
from quart_schema import validate_querystring, validate_request, validate_response

from ..errors import ApiError
from ..storage.history import NotFound, export_to_markdown
from .schemas import (
    Conversation,
    ConversationPage,
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
    try:
        items, next_before = await _history().list_conversations(query_args.limit, query_args.before)
    except ValueError as exc:
        raise ApiError(400, "validation_error", str(exc)) from exc
    return ConversationPage(conversations=items, next_before=next_before)


@blueprint.get("/api/history/export")
@validate_querystring(ExportQuery)
async def export_history(query_args: ExportQuery) -> Response:
    export = await _history().export()
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
    result = await _history().import_conversations(c.model_dump() for c in data.conversations)
    return ImportResult(**result)


@blueprint.get("/api/history/<conversation_id>")
@validate_response(Conversation)
async def get_conversation(conversation_id: str) -> Conversation:
    try:
        return Conversation(**await _history().get_conversation(conversation_id))
    except NotFound as exc:
        raise ApiError(404, "not_found", "That conversation does not exist.") from exc


@blueprint.delete("/api/history/<conversation_id>")
@validate_response(Deleted)
async def delete_conversation(conversation_id: str) -> Deleted:
    try:
        await _history().delete_conversation(conversation_id)
    except NotFound as exc:
        raise ApiError(404, "not_found", "That conversation does not exist.") from exc
    return Deleted(deleted=1)


@blueprint.delete("/api/history")
@validate_response(Deleted)
async def clear_history() -> Deleted:
    return Deleted(deleted=await _history().clear())
