"""``GET /api/e2e/key``: the current end-to-end key, told through a channel the page already trusts.

After ``privchat e2e rotate``, health publishes a key the page has not pinned. Health is public and
plain, so the page does not take the new key from it: it asks this route with a request sealed to
the key it pinned, and only the holder of that (still valid, within the grace period) private key
can produce an answer that opens. The answer names the current key; the page checks its thumbprint
and pins it.
"""

from __future__ import annotations

from quart import Blueprint, current_app
from quart_schema import validate_response

from .schemas import E2EKey

blueprint = Blueprint("e2e_key", __name__)


@blueprint.get("/api/e2e/key")
@validate_response(E2EKey)
async def current_key() -> E2EKey:
    key = await current_app.extensions["privchat"].e2e_keys.published()
    return E2EKey(**key.to_json())
