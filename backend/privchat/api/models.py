"""The models the owner configured, with the state of each, for the page's model picker."""

from __future__ import annotations

from quart import Blueprint, current_app
from quart_schema import validate_response

from ..llm.generations import default_model
from .schemas import ModelList

blueprint = Blueprint("models", __name__)


@blueprint.get("/api/models")
@validate_response(ModelList)
async def list_models() -> ModelList:
    """Each model's name, engine, state (ready, loading, unloaded, unreachable, error), its error
    sentence and context size; upstreams are asked again when their last answer is a few seconds old."""
    state = current_app.extensions["privchat"]
    described = await state.models.describe()
    described["default"] = default_model(state.models, await state.settings.get())  # the owner's choice, in the settings
    return ModelList(**described)
