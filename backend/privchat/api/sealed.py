"""Where the HTTP layer meets e2e/: open a sealed request before its handler, seal its answer after.

Handlers never see ciphertext and never seal anything themselves (the chat stream is the one
exception: it seals frame by frame as it sends them, ``reply_stream.py``). The gate calls
``begin_sealed_request`` as soon as the ``Privchat-E2E`` header parses and names a key it holds,
before the signature is checked; from then on ``g.e2e_sealer`` exists and every answer to this
request, the signature's refusals included, leaves sealed, so the page can believe a refusal and
act on it. A refusal before that point has no context to be sealed under and carries no content;
the page treats it as unproven (docs/E2E.md). Where each of these runs in a request is
``pipeline.py``'s to say.
"""

from __future__ import annotations

import json

from quart import Response, current_app, g, request

from ..e2e.errors import E2EError
from ..e2e.header import parse_header
from ..e2e.sealing import ResponseSealer, begin_request
from ..e2e.suite import HEADER, RESPONSE_NONCE_HEADER, SEALED_MEDIA_TYPE, request_info
from ..errors import E2E_KEY_RETIRED, E2E_REQUIRED, INTERNAL, CodedError
from ..jwk import b64url_encode
from ..auth.signatures import parse_signature_input
from .body_limits import refuse_declared_oversize
from .error_shape import api_error_response

STREAM_MEDIA_TYPE = "text/event-stream"
KEY_ROUTE = ("GET", "/api/e2e/key")  # the one route a retired key still opens (api/e2e_key.py)
# The headers whose meaning the page acts on travel inside the seal, in the answer's meta line
# (docs/E2E.md, "The meta line"); the copies outside are for HTTP's sake and are not believed.
SEALED_HEADERS = ("retry-after", "content-disposition")


def require_sealed_header() -> str:
    value = request.headers.get(HEADER)
    if not value:
        raise E2EError(E2E_REQUIRED)
    return value


def request_target() -> str:
    """The path and query exactly as the client sent and signed them."""
    raw_path = request.scope.get("raw_path") or request.path.encode()
    query = request.scope.get("query_string") or b""
    return raw_path.decode("latin-1") + ("?" + query.decode("latin-1") if query else "")


async def original_body() -> bytes:
    """The body as it arrived (the ciphertext, once the request was opened): what the signature covers."""
    sealed = g.get("e2e_sealed_body")
    return sealed if sealed is not None else await request.get_data(cache=True)


async def begin_sealed_request(device_id: str) -> None:
    """Set up this request's context for ``device_id`` (the keyid its Signature-Input names, not yet
    verified) from the ``Privchat-E2E`` header alone. Refusals before this are plain (there is
    nothing to seal them under): no header, a malformed or old one, an unknown key. From here on
    ``g.e2e_sealer`` exists, and every answer to this request leaves sealed: the signature's
    refusals, a body too large or that does not open, and a retired key's refusal."""
    header = parse_header(require_sealed_header())
    keys = current_app.extensions["privchat"].e2e_keys
    key = await keys.accepted(header.kid)
    begun = begin_request(key.private_key, header.enc, request_info(request.method, request_target(), device_id))
    g.e2e_context = begun
    g.e2e_kid = key.kid
    g.e2e_sealer = begun.sealer
    if key.retired_at is not None and (request.method, request.path) != KEY_ROUTE:
        raise E2EError(E2E_KEY_RETIRED)  # sealed: the context exists, and the answer names the current key


async def open_sealed_body() -> None:
    """Open the body under the context ``begin_sealed_request`` made, and put the plaintext in its place."""
    refuse_declared_oversize()
    body = await request.get_data(cache=True)
    plaintext = g.e2e_context.open_body(body)
    g.e2e_sealed_body = body
    # The handler reads the JSON inside: a fresh body holding the plaintext, typed as what it is.
    plain = request.body_class(len(plaintext), None)
    plain.append(plaintext)
    plain.set_complete()
    request.body = plain
    request._cached_json = {False: Ellipsis, True: Ellipsis}
    if plaintext:
        request.headers["Content-Type"] = "application/json"


def opened_kid() -> str:
    """The server key this request was opened with."""
    return g.e2e_kid


def response_sealer() -> ResponseSealer | None:
    return g.get("e2e_sealer")


def meta_line(status: int, headers: dict[str, str]) -> bytes:
    """The meta line every sealed answer begins with: its status, the current server key and the
    headers the page acts on, so none of them can be changed or hidden on the way."""
    keys = current_app.extensions["privchat"].e2e_keys
    meta = {"status": status, "kid": keys.current.kid, "headers": headers}
    return json.dumps(meta, separators=(",", ":"), ensure_ascii=False).encode("utf-8") + b"\n"


def answer_meta(response: Response) -> bytes:
    return meta_line(response.status_code,
                     {name: response.headers[name] for name in SEALED_HEADERS if name in response.headers})


def mark_sealed(response: Response, sealer: ResponseSealer) -> Response:
    response.headers[RESPONSE_NONCE_HEADER] = b64url_encode(sealer.nonce)
    return response


async def open_registration() -> None:
    """A pairing request (signed by the key it registers, not by a paired device): its context is set
    up for the keyid its signature names and its body opened, before the view checks that signature."""
    signature_input = parse_signature_input(request.headers)  # unsigned: 401 signature_missing
    await begin_sealed_request(signature_input.key_id)
    await open_sealed_body()


async def seal_answer(response: Response) -> Response:
    """Every answer to an opened request, sealed whole; a stream is sealed frame by frame by its sender."""
    sealer = response_sealer()
    if sealer is None:
        return response
    if response.mimetype == STREAM_MEDIA_TYPE:
        if RESPONSE_NONCE_HEADER in response.headers:
            return response  # sealed frame by frame (reply_stream.py)
        # Fail closed: a stream nobody sealed never leaves; its events are dropped for an error.
        response = api_error_response(CodedError(INTERNAL))
    plaintext = await response.get_data()
    response.set_data(sealer.seal_body(answer_meta(response) + plaintext))  # padded to its size class
    response.mimetype = SEALED_MEDIA_TYPE
    return mark_sealed(response, sealer)
