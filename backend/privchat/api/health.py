"""Health: public, cheap, and the clock the page signs with."""

from __future__ import annotations

import time

from quart import Blueprint, current_app
from quart_rate_limiter import rate_exempt
from quart_schema import validate_response

from .. import __version__
from ..auth.gate import public
from .schemas import Health

blueprint = Blueprint("health", __name__)


@blueprint.get("/api/health")
@public
@rate_exempt
@validate_response(Health)
async def health() -> Health:
    """Answers at once whatever the model is doing; ``time`` lets clients correct clock skew."""
    engine = current_app.extensions["privchat"].engine
    return Health(status="ok", version=__version__, time=time.time(), model=engine.status.to_json())
