"""How long a message is in the model's tokens, before it is sent: ``POST /api/tokens``.

A message longer than the model can read is not refused by ``/api/chat``: the prompt keeps its end
(llm/prompt.py) and the reply's ``done`` event says ``message_cut``. The page asks here first, so
it can say so before anything is sent. ``tokens`` is the text in the model's own tokens, counted
with llama.cpp's tokenizer in a worker thread for an embedded model in memory (``exact``), else
estimated as the upstream fitting does (upstream_context.py: a token per 3 bytes, which errs long).
``room`` is how many tokens a message can have and still be read whole: the context, less the room
kept for the reply (the settings' max_tokens, at most 3/4 of the context), the system prompt and the
chat template; null when the model's context is not known (an upstream without ``n_ctx``).
"""

from __future__ import annotations

import asyncio

from quart import Blueprint, current_app
from quart_schema import validate_request, validate_response

from ..llm.engine import ModelEngine
from ..llm.generations import default_model
from ..llm.prompt import MAX_REPLY_SHARE, MIN_REPLY_TOKENS
from ..llm.upstream_context import TOKENS_PER_MESSAGE, estimated_tokens
from .schemas import TokenCount, TokenCountRequest

blueprint = Blueprint("tokens", __name__)


@blueprint.post("/api/tokens")
@validate_request(TokenCountRequest)
@validate_response(TokenCount)
async def count_tokens(data: TokenCountRequest) -> TokenCount:
    state = current_app.extensions["privchat"]
    prefs = await state.settings.get()
    name = state.models.get(data.model or default_model(state.models, prefs)).spec.name  # 400 model_unknown
    engine = state.models.get(name)
    n_ctx = state.models.context_size(name)
    counted = None
    if isinstance(engine, ModelEngine) and engine.loaded:
        counted = await asyncio.to_thread(engine.count_tokens, data.text, prefs["system_prompt"], prefs["max_tokens"])
    if counted is not None:
        tokens, room = counted
        return TokenCount(tokens=tokens, n_ctx=n_ctx, room=room, exact=True, model=name)
    tokens = estimated_tokens("", [{"role": "user", "content": data.text}]) - TOKENS_PER_MESSAGE
    room = None
    if n_ctx:
        reply = max(MIN_REPLY_TOKENS, min(prefs["max_tokens"], int(n_ctx * MAX_REPLY_SHARE)))
        room = max(0, n_ctx - reply - estimated_tokens(prefs["system_prompt"], []) - TOKENS_PER_MESSAGE)
    return TokenCount(tokens=tokens, n_ctx=n_ctx, room=room, exact=False, model=name)
