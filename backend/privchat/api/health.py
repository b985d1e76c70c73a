"""Health: public, cheap, the clock the page signs with, the server's end-to-end public key, and
whether voice input is on (the page shows its microphone button only then)."""

from __future__ import annotations

import time

from quart import Blueprint, current_app
from quart_rate_limiter import rate_exempt
from quart_schema import validate_response

from .. import __version__
from .schemas import E2EKey, Health, SpeechStatus

blueprint = Blueprint("health", __name__)


@blueprint.get("/api/health")  # neither signed nor sealed (pipeline.py lists it)
@rate_exempt
@validate_response(Health)
async def health() -> Health:
    """Answers at once whatever the model is doing; ``time`` lets clients correct clock skew."""
    state = current_app.extensions["privchat"]
    key = await state.e2e_keys.published()
    return Health(status="ok", version=__version__, time=time.time(), model=state.models.status.to_json(),
                  e2e=E2EKey(**key.to_json()),
                  speech=SpeechStatus(enabled=state.speech.available, max_seconds=int(state.speech.max_seconds)))
