"""The backend's own Cloudflare Access check, against the app in this process and a local JWKS server.

Requests for the public hostname must carry a valid Access JWT (RS256, the team's issuer, the
application's AUD, a key from the team's certs URL) *and* a device signature; loopback requests
need no token; any other Host is refused (DNS rebinding).

The requests go through Quart's test client to the app ``privchat serve`` runs
(tests/support/inprocess.py), each marked as arriving on the local port or on the tunnel port, as
Hypercorn marks it from the socket; the app fetches the keys from the JWKS server over real HTTP.
Only the bind test needs real sockets, so it alone starts a live server.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Iterator

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

from tests.support.inprocess import InProcessServer
from tests.support.server import LiveServer, SignedClient, write_config
from tests.support.signing import TestDevice

TEAM = "https://testteam.cloudflareaccess.com"
AUD = hashlib.sha256(b"privchat test application").hexdigest()
PUBLIC_HOST = "chat-api.example.test"
KID = "test-kid-1"


def b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def new_rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@dataclass
class JwksServer:
    """Serves {"keys": [...]} at /cdn-cgi/access/certs and counts the fetches."""

    keys: list[dict[str, Any]]
    hits: int = 0
    httpd: ThreadingHTTPServer = field(init=False)

    def __post_init__(self) -> None:
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802
                if self.path != "/cdn-cgi/access/certs":
                    self.send_response(404)
                    self.end_headers()
                    return
                owner.hits += 1
                body = json.dumps({"keys": owner.keys}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        # close() waits for one poll of serve_forever: keep it short.
        threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    @property
    def certs_url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/cdn-cgi/access/certs"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def public_jwk(key: rsa.RSAPrivateKey, kid: str) -> dict[str, Any]:
    return {**RSAAlgorithm.to_jwk(key.public_key(), as_dict=True), "kid": kid, "alg": "RS256", "use": "sig"}


def claims(**overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    return {"aud": [AUD], "iss": TEAM, "iat": now, "nbf": now, "exp": now + 600, "email": "owner@example.test",
            "sub": "owner", "type": "app", **overrides}


def token(key: rsa.RSAPrivateKey, kid: str = KID, **overrides: Any) -> str:
    return jwt.encode(claims(**overrides), key, algorithm="RS256", headers={"kid": kid})


def unsigned_token(header: dict[str, Any], payload: dict[str, Any]) -> str:
    return b64url(json.dumps(header).encode()) + "." + b64url(json.dumps(payload).encode())


@dataclass
class AccessSetup:
    server: InProcessServer
    jwks: JwksServer
    key: rsa.RSAPrivateKey
    device: TestDevice

    def client(self, access_token: str | None, host: str = PUBLIC_HOST, *, local_port: bool = False) -> SignedClient:
        """A signed client on the tunnel listener (what cloudflared reaches), or on the local port."""
        headers = {"Cf-Access-Jwt-Assertion": access_token} if access_token is not None else {}
        return self.server.client(self.device, host=host, extra_headers=headers, listener="local" if local_port else "tunnel")

    def unsigned(self, path: str, access_token: str | None, host: str = PUBLIC_HOST, *, method: str = "GET",
                 local_port: bool = False, headers: dict[str, str] | None = None) -> httpx.Response:
        sent = {"Host": host, **(headers or {})}
        if access_token is not None:
            sent["Cf-Access-Jwt-Assertion"] = access_token
        return self.server.http("local" if local_port else "tunnel").request(method, path, headers=sent)


def access_overrides(certs_url: str) -> dict[str, Any]:
    return {"access": {"team_domain": TEAM, "aud": [AUD], "public_hostnames": [PUBLIC_HOST], "certs_url": certs_url}}


def access_config(folder: Any, certs_url: str) -> Any:
    """A config file for a live server with Access on (both ports listened on)."""
    return write_config(folder, {**access_overrides(certs_url), "model": {"enabled": False}})


@pytest.fixture(scope="module")
def access(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AccessSetup]:
    key = new_rsa_key()
    jwks = JwksServer([public_jwk(key, KID)])
    server = InProcessServer(tmp_path_factory.mktemp("access"), access_overrides(jwks.certs_url))
    try:
        server.start()
        client = server.pair()  # pairing over loopback: no token needed there
        yield AccessSetup(server, jwks, key, client.device)
    finally:
        server.stop()
        jwks.close()


@pytest.fixture(scope="module")
def live_access(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """A real `privchat serve` with Access on: for what only sockets can show (where it listens)."""
    jwks = JwksServer([public_jwk(new_rsa_key(), KID)])
    folder = tmp_path_factory.mktemp("live-access")
    server = LiveServer(folder, access_config(folder, jwks.certs_url))
    try:
        yield server.start()
    finally:
        server.stop()
        jwks.close()


def assert_error(response: httpx.Response, status: int, code: str, says: str | None = None) -> None:
    """Exact status and code; ``says``: a phrase of the message, to show *which* check refused it."""
    assert response.status_code == status, f"expected {status} {code}, got {response.status_code}: {response.text}"
    assert response.json()["error"]["code"] == code, response.text
    if says is not None:
        assert says in response.json()["error"]["message"], response.text


# --- controls -------------------------------------------------------------------------------------

def test_valid_token_and_signature_pass(access: AccessSetup) -> None:
    response = access.client(token(access.key)).get("/api/auth/device")
    assert response.status_code == 200, response.text
    assert response.json()["device_id"] == access.device.device_id


def test_valid_token_does_not_replace_the_signature(access: AccessSetup) -> None:
    assert_error(access.unsigned("/api/settings", token(access.key)), 401, "signature_missing")


def test_loopback_needs_no_token(access: AccessSetup) -> None:
    response = access.client(None, host="127.0.0.1", local_port=True).get("/api/settings")
    assert response.status_code == 200, response.text


def test_foreign_host_is_refused(access: AccessSetup) -> None:
    assert_error(access.client(token(access.key), host="evil.example").get("/api/settings"), 403, "host_not_allowed")
    assert_error(access.unsigned("/api/health", None, host="evil.example", local_port=True), 403, "host_not_allowed")


def test_public_host_with_port_still_needs_a_token(access: AccessSetup) -> None:
    assert_error(access.client(None, host=PUBLIC_HOST + ":443").get("/api/settings"), 403, "access_denied")


# --- trust follows the socket ---------------------------------------------------------------------

@pytest.mark.parametrize("host", [PUBLIC_HOST, "127.0.0.1", "localhost", "evil.example"])
def test_tunnel_port_needs_a_token_whatever_the_host(access: AccessSetup, host: str) -> None:
    """A Host rewrite (cloudflared's httpHostHeader) cannot make a tunnelled request local."""
    assert_error(access.unsigned("/api/health", None, host=host), 403, "access_denied", "without a Cloudflare Access token")
    assert_error(access.client(None, host=host).get("/api/settings"), 403, "access_denied")


def test_tunnel_port_preflight_needs_a_token(access: AccessSetup) -> None:
    """Access answers preflights at the edge; one that reaches the tunnel port without a token is refused."""
    preflight = {"Origin": "http://127.0.0.1:8764", "Access-Control-Request-Method": "POST",
                 "Access-Control-Request-Headers": "content-type,signature"}
    refused = access.unsigned("/api/chat", None, method="OPTIONS", headers=preflight)
    assert_error(refused, 403, "access_denied")  # a preflight that is not 2xx fails in the browser
    # The same preflight on the local port is answered (the control).
    local = access.unsigned("/api/chat", None, host="127.0.0.1", method="OPTIONS", headers=preflight, local_port=True)
    assert local.status_code == 200 and "POST" in local.headers["Access-Control-Allow-Methods"], local.headers


def test_tunnel_port_with_a_token_still_needs_the_public_host(access: AccessSetup) -> None:
    for host in ("127.0.0.1", "localhost", "internal.svc"):
        assert_error(access.client(token(access.key), host=host).get("/api/settings"), 403, "host_not_allowed", "httpHostHeader")
    assert access.client(token(access.key)).get("/api/settings").status_code == 200  # control


def test_local_port_refuses_the_public_host_even_with_a_token(access: AccessSetup) -> None:
    """A cloudflared rule still pointing at the local port (an old setup) is told where to point."""
    refused = access.client(token(access.key), local_port=True).get("/api/settings")
    assert_error(refused, 403, "host_not_allowed", f"tunnel.port {access.server.tunnel_port}")
    assert_error(access.unsigned("/api/health", token(access.key), local_port=True), 403, "host_not_allowed")


# --- refused tokens (each 403 access_denied) -------------------------------------------------------

def test_token_missing(access: AccessSetup) -> None:
    assert_error(access.client(None).get("/api/settings"), 403, "access_denied", "without a Cloudflare Access token")


def test_token_missing_on_public_routes_too(access: AccessSetup) -> None:
    assert_error(access.unsigned("/api/health", None), 403, "access_denied")
    response = access.server.http("tunnel").post("/api/auth/device", headers={"Host": PUBLIC_HOST},
                                                 json={"pairing_code": "00000-00000", "public_key": {}, "name": "x"})
    assert_error(response, 403, "access_denied")


def test_token_expired(access: AccessSetup) -> None:
    now = int(time.time())
    expired = token(access.key, iat=now - 3600, nbf=now - 3600, exp=now - 120)
    assert_error(access.client(expired).get("/api/settings"), 403, "access_denied", "expired")


def test_token_wrong_aud(access: AccessSetup) -> None:
    other_aud = hashlib.sha256(b"another application").hexdigest()
    assert_error(access.client(token(access.key, aud=[other_aud])).get("/api/settings"), 403, "access_denied", "(aud)")


def test_token_wrong_iss(access: AccessSetup) -> None:
    wrong = token(access.key, iss="https://otherteam.cloudflareaccess.com")
    assert_error(access.client(wrong).get("/api/settings"), 403, "access_denied", "(iss)")


def test_token_missing_exp(access: AccessSetup) -> None:
    payload = claims()
    del payload["exp"]
    no_exp = jwt.encode(payload, access.key, algorithm="RS256", headers={"kid": KID})
    assert_error(access.client(no_exp).get("/api/settings"), 403, "access_denied", "MissingRequiredClaimError")


def test_token_alg_none(access: AccessSetup) -> None:
    forged = unsigned_token({"alg": "none", "kid": KID, "typ": "JWT"}, claims()) + "."
    assert_error(access.client(forged).get("/api/settings"), 403, "access_denied", "only RS256 is accepted")


def test_token_hs256_with_the_public_key_as_secret(access: AccessSetup) -> None:
    """The classic key-confusion attack: HMAC keyed with the (public) RSA key's PEM."""
    pem = access.key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    signing_input = unsigned_token({"alg": "HS256", "kid": KID, "typ": "JWT"}, claims())
    mac = hmac.new(pem, signing_input.encode(), hashlib.sha256).digest()
    forged = signing_input + "." + b64url(mac)
    assert_error(access.client(forged).get("/api/settings"), 403, "access_denied", "only RS256 is accepted")


def test_token_unknown_kid(access: AccessSetup) -> None:
    stranger = new_rsa_key()
    assert_error(access.client(token(stranger, kid="not-served")).get("/api/settings"), 403, "access_denied", "unknown key")


def test_token_known_kid_wrong_key(access: AccessSetup) -> None:
    stranger = new_rsa_key()
    assert_error(access.client(token(stranger, kid=KID)).get("/api/settings"), 403, "access_denied", "InvalidSignatureError")


def test_token_garbage(access: AccessSetup) -> None:
    assert_error(access.client("not.a.jwt").get("/api/settings"), 403, "access_denied", "not a JWT")


# --- key refetch is bounded -----------------------------------------------------------------------

def test_unknown_kids_cause_at_most_one_refetch(tmp_path: Path) -> None:
    key = new_rsa_key()
    jwks = JwksServer([public_jwk(key, KID)])
    try:
        server = InProcessServer(tmp_path / "refetch", access_overrides(jwks.certs_url))
        server.start()
        try:
            device = server.pair().device
            setup = AccessSetup(server, jwks, key, device)
            assert jwks.hits == 0  # keys are fetched lazily, on the first token
            assert setup.client(token(key)).get("/api/settings").status_code == 200
            assert jwks.hits == 1
            stranger = new_rsa_key()
            for i in range(20):
                assert_error(setup.client(token(stranger, kid=f"made-up-{i}")).get("/api/settings"), 403, "access_denied", "unknown key")
            assert 1 <= jwks.hits <= 2, f"{jwks.hits} fetches of the certs URL for 20 unknown kids"
            assert setup.client(token(key)).get("/api/settings").status_code == 200
        finally:
            server.stop()
    finally:
        jwks.close()


# --- loopback-only bind ----------------------------------------------------------------------------

def non_loopback_address() -> str | None:
    import socket

    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            probe.connect(("10.255.255.255", 1))  # no packet is sent; this only picks the outgoing interface
            address = probe.getsockname()[0]
    except OSError:
        return None
    return None if address.startswith("127.") or address == "0.0.0.0" else address


def test_server_is_not_reachable_on_a_non_loopback_address(live_access: LiveServer) -> None:
    import socket

    address = non_loopback_address()
    if address is None:
        pytest.skip("this machine has no non-loopback IPv4 address to probe")
    for port in (live_access.port, live_access.tunnel_port):
        with socket.create_connection(("127.0.0.1", port), timeout=5):
            pass  # control: the port is open on loopback
        with pytest.raises(OSError):
            socket.create_connection((address, port), timeout=5).close()
