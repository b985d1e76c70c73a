"""The owner's preferences, shared by every device: system prompt, sampling, the default model."""

from __future__ import annotations

from typing import Any

from quart import Blueprint, current_app
from quart_schema import validate_request, validate_response

from ..errors import MAX_TOKENS_TOO_LARGE, MAX_TOKENS_TOO_SMALL, CodedError
from ..llm.generations import default_model
from ..llm.prompt import MIN_REPLY_TOKENS
from .schemas import Settings, SettingsUpdate

blueprint = Blueprint("settings", __name__)

# Where no model says its context (an upstream without n_ctx): the config's own bound.
UNKNOWN_CONTEXT_MAX_TOKENS = 32768


def check_max_tokens(value: int, models: Any, model: str) -> None:
    """``max_tokens`` is 16 or more (a shorter reply is no reply; the engines used to raise it
    silently) and at most the model's context (the prompt and the reply share it)."""
    if value < MIN_REPLY_TOKENS:
        raise CodedError(MAX_TOKENS_TOO_SMALL, least=MIN_REPLY_TOKENS)
    n_ctx = models.context_size(model)
    engine = models.get(model)
    label = engine.spec.label or engine.spec.name
    if n_ctx is None:
        if value > UNKNOWN_CONTEXT_MAX_TOKENS:
            raise CodedError(MAX_TOKENS_TOO_LARGE, f"Max tokens can be at most {UNKNOWN_CONTEXT_MAX_TOKENS}; the "
                             f"model {label} does not say its context (set n_ctx in its models.list entry).")
    elif value > n_ctx:
        raise CodedError(MAX_TOKENS_TOO_LARGE, most=n_ctx, model=label)


@blueprint.get("/api/settings")
@validate_response(Settings)
async def get_settings() -> Settings:
    store = current_app.extensions["privchat"].settings
    return Settings(**await store.get(), defaults=store.defaults)


@blueprint.put("/api/settings")
@validate_request(SettingsUpdate)
@validate_response(Settings)
async def put_settings(data: SettingsUpdate) -> Settings:
    changes = data.model_dump(exclude_none=True)
    state = current_app.extensions["privchat"]
    if "default_model" in changes:
        state.models.get(changes["default_model"])  # 400 model_unknown, and nothing is saved
    store = state.settings
    if "max_tokens" in changes:  # bounded by the default model's context, after this change
        model = changes.get("default_model") or default_model(state.models, await store.get())
        check_max_tokens(changes["max_tokens"], state.models, model)
    return Settings(**await store.put(changes), defaults=store.defaults)
