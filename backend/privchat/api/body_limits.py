"""Request body limits per route, enforced while the body arrives.

Quart starts buffering a request body as soon as the request exists, before any ``before_request``
hook runs, and caps it only at the app-wide ``MAX_CONTENT_LENGTH``. With the import route allowing
64 MiB, every route would buffer up to 64 MiB of a chunked upload (no Content-Length) before the
gate could refuse it. So the limit is decided when the request object is made, from the method and
path alone: ``POST /api/history/import`` gets ``server.max_import_bytes``, ``POST /api/transcribe``
a body that carries a recording of ``speech.max_audio_bytes`` (``transcribe_body_bytes``), ``POST
/api/attachments`` one that carries a file of ``attachments.max_bytes``, everything
else ``server.max_body_bytes``. A declared Content-Length over the limit is refused before a byte is
read; a chunked body is refused as soon as it crosses the limit, and what arrives after that is
dropped, not kept.
"""

from __future__ import annotations

from typing import Any, Mapping

from quart import Quart, request
from quart.wrappers import Request

from ..e2e.padding import sealed_size
from ..e2e.suite import HEADER
from ..errors import PAYLOAD_TOO_LARGE, CodedError

IMPORT_ROUTE = ("POST", "/api/history/import")
TRANSCRIBE_ROUTE = ("POST", "/api/transcribe")
ATTACHMENTS_ROUTE = ("POST", "/api/attachments")


def body_limit(method: str, path: str, *, body_bytes: int, import_bytes: int,
               routes: Mapping[tuple[str, str], int] | None = None) -> int:
    """The limit of one request's body; ``routes`` holds the other routes with limits of their own."""
    if (method, path) == IMPORT_ROUTE:
        return import_bytes
    return (routes or {}).get((method, path), body_bytes)


def transcribe_body_bytes(max_audio_bytes: int) -> int:
    """The sealed body that carries a recording of ``max_audio_bytes``: base64 (4/3) in JSON, padded
    to its size class, so a recording under the limit always arrives, and one over it is told so."""
    return sealed_size(4 * -(-max_audio_bytes // 3) + 1024)


def attachment_body_bytes(max_bytes: int) -> int:
    """The sealed body that carries a file of ``attachments.max_bytes`` (base64 in JSON, with its name)."""
    return transcribe_body_bytes(max_bytes)


def install_body_limits(app: Quart, *, body_bytes: int, import_bytes: int,
                        routes: Mapping[tuple[str, str], int] | None = None) -> None:
    """Give the app a request class that caps each body at its route's limit, and refuse early."""
    routes = dict(routes or {})

    class LimitedRequest(Request):
        def __init__(self, method: str, scheme: str, path: str, *args: Any, **kwargs: Any) -> None:
            limit = body_limit(method, path, body_bytes=body_bytes, import_bytes=import_bytes, routes=routes)
            kwargs["max_content_length"] = limit  # caps the body as it arrives
            super().__init__(method, scheme, path, *args, **kwargs)
            # ...and what ``request.max_content_length`` says: since Quart 0.22 the keyword sets the
            # body's cap only, and the property would fall back to the app-wide (import) limit.
            self.max_content_length = limit

    app.request_class = LimitedRequest
    app.config["MAX_CONTENT_LENGTH"] = max(body_bytes, import_bytes, *routes.values())

    @app.before_request
    async def refuse_plain_oversize() -> None:
        # A sealed request hears it sealed, once its context exists (api/sealed.py open_sealed_body).
        if HEADER not in request.headers:
            refuse_declared_oversize()

    # First of all hooks: the gate reads the body to check its digest.
    app.before_request_funcs[None].insert(0, app.before_request_funcs[None].pop())


def refuse_declared_oversize() -> None:
    """A declared Content-Length over the route's limit is refused before a byte is read."""
    limit = request.max_content_length
    if limit is not None and request.content_length is not None and request.content_length > limit:
        raise CodedError(PAYLOAD_TOO_LARGE, f"The request body is larger than {limit} bytes.")
