"""The one gate every request passes, step 2 of the request pipeline (``pipeline.py``, which installs
it and says which routes are not signed by a paired device). The gate's steps:

1. The socket. privchat listens on two loopback ports, and trust follows the one a request came in
   on, never a header: on ``tunnel.port`` (the only port cloudflared points at) every request,
   preflights included, must carry a valid Cloudflare Access JWT and name a configured public
   hostname in ``Host``; on ``server.port`` (local use) ``Host`` must be a loopback name (against
   DNS rebinding), and a public hostname there is refused, so a tunnelled request can never pass
   as local by rewriting ``Host``, and a local process cannot pass as tunnelled either.
2. Origin: a state-changing request from a browser origin that is not allowed is refused.
3. Sealing and signature: every route signed by a paired device (all but those ``pipeline.py``
   lists) must be end-to-end encrypted
   (``Privchat-E2E``, docs/E2E.md) and carry a valid RFC 9421 signature from an active device,
   which covers that header and the sealed body. The context is set up from the header and the
   keyid the signature names *before* the signature is checked (``api/sealed.py``), so the
   signature's refusals leave sealed; then the signature, then the body is opened for the verified
   device (``g.device_id``), so the handler reads plaintext and its answer leaves sealed.

Each check fails closed and answers with its own error code. A route is public only if
``pipeline.py``'s table says so, so a new route is signed unless someone decides otherwise.
"""

from __future__ import annotations

from typing import Any

from quart import current_app, g, request

from ..addresses import is_loopback_host
from ..config import Config
from ..errors import (ACCESS_DENIED, DEVICE_REVOKED, DEVICE_UNKNOWN, HOST_NOT_ALLOWED, ORIGIN_NOT_ALLOWED, REPLAYED,
                      SIGNATURE_INVALID, CodedError)
from ..auth.access import ACCESS_HEADER, AccessError
from .sealed import begin_sealed_request, open_sealed_body, original_body, request_target, require_sealed_header
from ..auth.signatures import RequestView, SignatureError, check_content_digest, check_freshness, parse_signature_input

STATE_CHANGING = {"POST", "PUT", "PATCH", "DELETE"}


def request_host() -> str:
    host = request.host or ""
    if host.startswith("["):
        return host[1 : host.index("]")] if "]" in host else host
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


async def request_view() -> RequestView:
    """The request as signed: method, target, headers and the body as it arrived (ciphertext)."""
    return RequestView(method=request.method, target=request_target(), headers=dict(request.headers),
                       body=await original_body())


async def verify_device_signature(*, registering_key: tuple[str, Any] | None = None) -> str:
    """Run the signature checks; returns the verified keyid. ``registering_key`` = (id, key) of a new device.

    Order: the profile and digest (no I/O), freshness, the device's key (cached by id), the
    library's cryptographic check, then one database statement that records the nonce only if
    the device is active, so replay and revocation are both decided by the database.
    """
    state = current_app.extensions["privchat"]
    view = await request_view()
    try:
        signature_input = parse_signature_input(view.headers)
        check_content_digest(view.headers, view.body)
        check_freshness(signature_input.created, max_age=state.verifier.max_age, max_future=state.verifier.max_future)
        valid_until = state.verifier.valid_until(signature_input.created)
        if registering_key is not None:
            key_id, key = registering_key
            if signature_input.key_id != key_id:
                raise SignatureError(SIGNATURE_INVALID, "The registration must be signed by the key it registers (keyid = its thumbprint).")
            state.verifier.verify(view, key_id, key)
            if not await state.nonces.use(key_id, signature_input.nonce, valid_until):
                raise SignatureError(REPLAYED)
            return key_id
        key_id = signature_input.key_id
        key = await state.devices.public_key(key_id)
        if key is None:
            raise SignatureError(DEVICE_UNKNOWN)
        state.verifier.verify(view, key_id, key)
        outcome = await state.nonces.use_if_active(key_id, signature_input.nonce, valid_until)
        if outcome == "revoked":
            raise SignatureError(DEVICE_REVOKED)
        if outcome == "replayed":
            raise SignatureError(REPLAYED)
    except SignatureError:
        g.pop("device_id", None)
        raise
    g.device_id = key_id
    return key_id


def arrived_through_tunnel(config: Config) -> bool:
    """Did this request come in on the tunnel listener? The socket's port decides, nothing the client sends.

    A request whose listening socket is unknown counts as tunnelled, so it meets the stricter checks.
    """
    if not config.access_enabled:
        return False
    server = request.scope.get("server")
    return not server or server[1] == config.tunnel_port


async def check_listener(state: Any) -> None:
    """Step 1: the socket, then Access and Host for that socket (see the module docstring)."""
    config: Config = state.config
    host = request_host().lower()
    public_hosts = config.access.public_hostnames
    if arrived_through_tunnel(config):
        try:
            g.access_claims = await state.access.verify(request.headers.get(ACCESS_HEADER))
        except AccessError as exc:
            raise CodedError(ACCESS_DENIED, reason=exc.message) from exc
        if host not in public_hosts:
            raise CodedError(HOST_NOT_ALLOWED,
                             f"Requests through the tunnel must be for {' or '.join(public_hosts)}, not {host!r}; "
                             "remove any httpHostHeader from the cloudflared rule (`privchat tunnel validate`).")
        return
    if host in public_hosts:
        raise CodedError(HOST_NOT_ALLOWED,
                         f"Requests for {host} come through the tunnel on tunnel.port {config.tunnel_port}, not on this local port; "
                         "if cloudflared points here, run `privchat tunnel setup` again.")
    if not is_loopback_host(host):
        raise CodedError(HOST_NOT_ALLOWED, host=host)


async def check_arrival(state: Any) -> None:
    """Steps 1 and 2, for every request: the socket, then the Origin of a state-changing one."""
    await check_listener(state)
    if request.method == "OPTIONS" or request.endpoint is None:
        return
    origin = request.headers.get("Origin")
    if origin and request.method in STATE_CHANGING and origin.lower() not in state.config.server.allowed_origins:
        raise CodedError(ORIGIN_NOT_ALLOWED, origin=origin)


async def open_signed_request(state: Any) -> None:
    """Step 3, for a route signed by a paired device: the sealed context, the signature, the body.

    An unsigned request hears that it is unsigned (401, plain: no keyid, no context); a signed one
    gets its context from the E2E header first, so the signature's refusals leave sealed and the
    page can believe them (docs/E2E.md). A signed but plain one hears it is not sealed.
    """
    try:
        claimed = parse_signature_input(request.headers).key_id
    except SignatureError:
        if request.headers.get("Signature-Input") and request.headers.get("Signature"):
            require_sealed_header()  # signed (if badly) but plain: say it is not sealed
        raise  # no keyid to set a context up for: plain
    await begin_sealed_request(claimed)
    device_id = await verify_device_signature()
    await open_sealed_body()
    await state.devices.touch(device_id)


def current_device_id() -> str:
    """The verified device of this request (set by the gate)."""
    return g.device_id
