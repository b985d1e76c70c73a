"""Search: ``POST /api/search`` with the words in the body, answered from the in-memory index.

A POST, not ``GET /api/search?q=``: a query string is part of the URL, which Cloudflare's edge
sees (and may log) even once request and response bodies are sealed end to end; the body is
sealed like every other (docs/E2E.md). The index and why it lives only in memory:
``storage/search_index.py``.
"""

from __future__ import annotations

from quart import Blueprint, current_app
from quart_schema import validate_request, validate_response

from .schemas import SearchRequest, SearchResults

blueprint = Blueprint("search", __name__)


@blueprint.post("/api/search")
@validate_request(SearchRequest)
@validate_response(SearchResults)
async def search(data: SearchRequest) -> SearchResults:
    state = current_app.extensions["privchat"]
    await state.search.catch_up(state.history)  # what `privchat history import` added meanwhile
    hits = await state.search.search(state.history, data.q, data.limit)
    return SearchResults(results=[hit.to_json() for hit in hits], indexing=not state.search.ready)
