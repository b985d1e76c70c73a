"""The owner's preferences, shared by every device: system prompt, sampling, the default model."""

from __future__ import annotations

from quart import Blueprint, current_app
from quart_schema import validate_request, validate_response

from .schemas import Settings, SettingsUpdate

blueprint = Blueprint("settings", __name__)


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
    return Settings(**await store.put(changes), defaults=store.defaults)
