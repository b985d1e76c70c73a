"""The request pipeline, in one place: every step a request meets, in order, and the routes that differ.

Each request, on either port:

1. its body limit (``body_limits.py``): the route's cap, set before a byte is buffered;
2. the gate (``gate.py``): the socket (Access and ``Host`` on the tunnel port, a loopback ``Host``
   on the local one) and the ``Origin`` of a state-changing request; then, for a route signed by a
   paired device, the sealed context from ``Privchat-E2E``, the device's signature, and the body
   opened for that device (``sealed.py``);
3. its rate limit (``ratelimits.py``), keyed by the device the gate verified;
4. for a route signed by the key it registers (pairing): the sealed body opened, now that the rate
   limit counted the request (the view checks the signature, against the key it registers);
5. the handler, which reads plaintext and returns plaintext;
6. the seal (``sealed.py``): every answer to a request opened in 2 or 4 leaves sealed, refusals
   included.

A route is signed by a paired device and sealed unless ``NOT_SIGNED_BY_A_DEVICE`` below says
otherwise: a new route is signed unless someone lists it here, and this table is the whole list.
"""

from __future__ import annotations

from enum import Enum

from quart import Quart, Response, request
from quart_rate_limiter import RateLimiter

from ..config import Config
from .body_limits import (ATTACHMENTS_ROUTE, TRANSCRIBE_ROUTE, attachment_body_bytes, install_body_limits,
                          transcribe_body_bytes)
from .gate import check_arrival, open_signed_request
from .ratelimits import signed_limit
from .sealed import open_registration, seal_answer


class Signer(Enum):
    """Who signs a route's requests, which decides how step 2 and step 4 treat them."""

    DEVICE = "a paired device"  # the default: sealed, and signed by an active device (the gate checks)
    NEW_KEY = "the key it registers"  # pairing: sealed; no device yet, so the view checks the signature
    NOBODY = "nobody"  # neither signed nor sealed


# Every route whose requests are not signed by a paired device, by method and path.
NOT_SIGNED_BY_A_DEVICE: dict[tuple[str, str], Signer] = {
    ("GET", "/api/health"): Signer.NOBODY,  # the clock the page signs with, and the server key it seals to
    ("POST", "/api/auth/pairing"): Signer.NEW_KEY,  # a typed code's OPAQUE login, first step
    ("POST", "/api/auth/device"): Signer.NEW_KEY,  # registration
}


class RouteSigners:
    """``NOT_SIGNED_BY_A_DEVICE`` resolved to the app's endpoints, so each request is looked up by the
    endpoint it was routed to (a HEAD of a GET route included). Resolved when the pipeline is
    installed, after the routes: a listed route that the app does not have stops the start, rather
    than leaving a renamed route quietly signed or a stale line in the table."""

    def __init__(self, app: Quart, table: dict[tuple[str, str], Signer]) -> None:
        self._by_endpoint: dict[str, Signer] = {}
        found: set[tuple[str, str]] = set()
        for rule in app.url_map.iter_rules():
            for method in rule.methods or ():
                signer = table.get((method, rule.rule))
                if signer is not None:
                    self._by_endpoint[rule.endpoint] = signer
                    found.add((method, rule.rule))
        if found != set(table):
            missing = ", ".join(f"{method} {path}" for method, path in sorted(set(table) - found))
            raise RuntimeError(f"the request pipeline lists routes the app does not have: {missing}")

    def of(self, endpoint: str | None) -> Signer:
        return self._by_endpoint.get(endpoint or "", Signer.DEVICE)


def install_request_pipeline(app: Quart, config: Config) -> None:
    """Install the steps, in the order above. Called once every route is registered, and after every
    other after-request hook (CORS, the security headers), so the seal runs first on the way out:
    those hooks then set their headers on the sealed answer, even where the seal replaced it."""
    signers = RouteSigners(app, NOT_SIGNED_BY_A_DEVICE)

    # 1. Body limits: a request class that caps each body, and a hook that goes before all others.
    install_body_limits(app, body_bytes=config.server.max_body_bytes, import_bytes=config.server.max_import_bytes,
                        routes={TRANSCRIBE_ROUTE: transcribe_body_bytes(config.speech.max_audio_bytes),
                                ATTACHMENTS_ROUTE: attachment_body_bytes(config.attachments.max_bytes)})

    # 2. The gate.
    @app.before_request
    async def gate() -> None:
        state = app.extensions["privchat"]
        await check_arrival(state)
        if request.method == "OPTIONS" or app.view_functions.get(request.endpoint) is None:
            return
        if signers.of(request.endpoint) is Signer.DEVICE:
            await open_signed_request(state)

    # 3. The rate limit, keyed by what the gate verified. Its after-request hook only writes
    # RateLimit-Limit/-Remaining/-Reset: outside the seal, those would tell the edge how many
    # requests each device made and when (docs/E2E.md, what the edge sees). A refusal still says
    # what to do, sealed, with its Retry-After.
    limiter = RateLimiter(app, key_function=signed_limit.key_function, default_limits=[signed_limit])
    app.after_request_funcs[None].remove(limiter._after_request)

    # 4. Pairing, opened once its rate limit counted it.
    @app.before_request
    async def open_pairing() -> None:
        if request.method != "OPTIONS" and signers.of(request.endpoint) is Signer.NEW_KEY:
            await open_registration()

    # 6. The seal on every answer to an opened request.
    @app.after_request
    async def seal(response: Response) -> Response:
        return await seal_answer(response)
