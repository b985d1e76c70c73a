"""A stand-in for the edge: cloudflared + Cloudflare Access for one application, on loopback.

cloudflared cannot run in the test environment, so this small reverse proxy plays both parts:

* Access: a request without a valid ``CF_Authorization`` cookie gets what Access gives a browser,
  a 302 to the login page and no CORS headers (a page's fetch then fails like it does against real
  Access). OPTIONS preflights are passed to the origin ("Bypass OPTIONS requests to origin").
  ``/cdn-cgi/access/login?redirect_url=...`` signs in at once (a one-click identity provider): it
  sets the cookie (a JWT from the same test key) and redirects back.
* cloudflared: with a valid session the request goes to the backend with ``Host`` set to the public
  hostname, ``Cf-Access-Jwt-Assertion`` (RS256, kid, aud, iss = team domain, iat/exp, email) and
  ``Cf-Connecting-Ip``; method, path, query, every other header and the body are passed byte for
  byte (the device signature covers them). The answer streams back chunk by chunk as it arrives
  (SSE), headers unchanged.

The signing keys are served at ``/cdn-cgi/access/certs`` on the stand-in itself (``jwks_url``),
which is what the backend's ``access.certs_url`` points at.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from dataclasses import dataclass, field
from http.cookies import SimpleCookie
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

import httpx
import jwt
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

COOKIE = "CF_Authorization"
ACCESS_HEADER = "Cf-Access-Jwt-Assertion"
LOGIN_PATH = "/cdn-cgi/access/login"
CERTS_PATH = "/cdn-cgi/access/certs"
# Hop-by-hop headers (RFC 9110 7.6.1) are the proxy's own business; everything else passes.
HOP_BY_HOP = {"connection", "keep-alive", "proxy-connection", "proxy-authenticate", "proxy-authorization",
              "te", "trailer", "transfer-encoding", "upgrade"}


def new_rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@dataclass
class Forwarded:
    method: str
    target: str
    headers: dict[str, str]
    body: bytes
    status: int


@dataclass
class EdgeStandIn:
    """Start with ``start()``. ``url`` is its loopback address (for Python clients and the backend's
    ``access.certs_url``); a browser uses ``public_origin``, the public hostname mapped to loopback."""

    backend_url: str
    public_hostname: str = "chat-api.standin.test"
    team_domain: str = "https://teststandin.cloudflareaccess.com"
    aud: str = field(default_factory=lambda: uuid.uuid4().hex + uuid.uuid4().hex)
    email: str = "owner@standin.test"
    kid: str = field(default_factory=lambda: "standin-" + uuid.uuid4().hex[:8])
    key: rsa.RSAPrivateKey = field(default_factory=new_rsa_key)
    session_seconds: int = 3600
    forwarded: list[Forwarded] = field(default_factory=list)
    refused: list[tuple[str, str, int]] = field(default_factory=list)  # (method, target, status) stopped by "Access"
    certs_fetches: int = 0

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._httpd: ThreadingHTTPServer | None = None
        self._client = httpx.Client(timeout=httpx.Timeout(60, read=None), follow_redirects=False, trust_env=False)

    # ---------------------------------------------------------------- public surface

    @property
    def port(self) -> int:
        assert self._httpd is not None, "start() the stand-in first"
        return self._httpd.server_address[1]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def public_origin(self) -> str:
        """The API origin a browser uses: the public hostname on the stand-in's port (see ``chromium_args``)."""
        return f"http://{self.public_hostname}:{self.port}"

    def chromium_args(self) -> list[str]:
        """Resolve the public hostname (and its site's other names) to loopback inside Chromium only."""
        parent = self.public_hostname.split(".", 1)[-1]
        return [f"--host-resolver-rules=MAP {self.public_hostname} 127.0.0.1, MAP *.{parent} 127.0.0.1"]

    @property
    def jwks_url(self) -> str:
        return self.url + CERTS_PATH

    @property
    def forwarded_count(self) -> int:
        with self._lock:
            return len(self.forwarded)

    def login_url(self, redirect_url: str, origin: str | None = None) -> str:
        """The sign-in page on ``origin`` (default ``url``); it sets the session cookie for that host."""
        return f"{origin or self.url}{LOGIN_PATH}?redirect_url={quote(redirect_url, safe='')}"

    def jwks(self) -> dict[str, Any]:
        return {"keys": [{**RSAAlgorithm.to_jwk(self.key.public_key(), as_dict=True), "kid": self.kid, "alg": "RS256", "use": "sig"}]}

    def mint(self, *, key: rsa.RSAPrivateKey | None = None, kid: str | None = None, lifetime: int | None = None,
             issued_ago: int = 0, **overrides: Any) -> str:
        """An Access JWT; by default a valid one. ``key``/``kid`` forge, ``lifetime``/``issued_ago`` expire, overrides change claims."""
        now = int(time.time()) - issued_ago
        claims = {"aud": [self.aud], "iss": self.team_domain, "iat": now, "nbf": now,
                  "exp": now + (self.session_seconds if lifetime is None else lifetime),
                  "email": self.email, "sub": uuid.uuid5(uuid.NAMESPACE_DNS, self.email).hex, "type": "app",
                  "identity_nonce": uuid.uuid4().hex, "country": "XX", **overrides}
        return jwt.encode(claims, key or self.key, algorithm="RS256", headers={"kid": kid or self.kid})

    def expired_token(self) -> str:
        return self.mint(issued_ago=7200, lifetime=600)

    def wrong_aud_token(self) -> str:
        return self.mint(aud=[uuid.uuid4().hex])

    def forged_token(self, *, same_kid: bool = True) -> str:
        """Well-formed and otherwise valid, but signed by a key that is not the team's."""
        return self.mint(key=new_rsa_key(), kid=self.kid if same_kid else "forged-" + uuid.uuid4().hex[:8])

    def session_valid(self, token: str | None) -> bool:
        if not token:
            return False
        try:
            jwt.decode(token, self.key.public_key(), algorithms=["RS256"], audience=self.aud, issuer=self.team_domain,
                       options={"require": ["exp", "iat", "iss", "aud"]})
        except jwt.PyJWTError:
            return False
        return True

    def start(self) -> "EdgeStandIn":
        handler = _handler_for(self)
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._httpd.daemon_threads = True
        threading.Thread(target=self._httpd.serve_forever, name="edge-standin", daemon=True).start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None
        self._client.close()

    def __enter__(self) -> "EdgeStandIn":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    # ---------------------------------------------------------------- internals

    def _record(self, item: Forwarded) -> None:
        with self._lock:
            self.forwarded.append(item)

    def _refuse(self, method: str, target: str, status: int) -> None:
        with self._lock:
            self.refused.append((method, target, status))


def _handler_for(edge: EdgeStandIn) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: Any) -> None:
            pass

        # Every method goes through one place.
        def do_GET(self) -> None:  # noqa: N802
            self.handle_any()

        do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = do_GET  # noqa: N815

        def read_body(self) -> bytes:
            if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
                body = b""
                while True:
                    size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                    if size == 0:
                        while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                            pass
                        return body
                    body += self.rfile.read(size)
                    self.rfile.readline()
            length = int(self.headers.get("Content-Length") or 0)
            return self.rfile.read(length) if length else b""

        def simple(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None) -> None:
            self.send_response(status)
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def self_url(self, path: str) -> str:
            return f"http://{self.headers.get('Host') or urlsplit(edge.url).netloc}{path}"

        def handle_any(self) -> None:
            body = self.read_body()
            path = urlsplit(self.path).path
            if path == CERTS_PATH and self.command == "GET":
                with edge._lock:
                    edge.certs_fetches += 1
                self.simple(200, json.dumps(edge.jwks()).encode(), {"Content-Type": "application/json"})
                return
            if path == LOGIN_PATH and self.command == "GET":
                self.login()
                return
            if self.command != "OPTIONS" and not edge.session_valid(self.session_cookie()):
                # What Access answers without a session, navigation or fetch alike: off to the login page,
                # and no CORS headers, so a cross-origin fetch cannot read (or follow) it.
                edge._refuse(self.command, self.path, 302)
                self.simple(302, b"", {"Location": edge.login_url(self.self_url(self.path), self.self_url("")),
                                       "Content-Type": "text/html", "Cache-Control": "no-store"})
                return
            self.forward(body)

        def session_cookie(self) -> str | None:
            jar = SimpleCookie()
            for header in self.headers.get_all("Cookie") or []:
                try:
                    jar.load(header)
                except Exception:  # a malformed cookie header is simply no session
                    continue
            morsel = jar.get(COOKIE)
            return morsel.value if morsel else None

        def login(self) -> None:
            query = parse_qs(urlsplit(self.path).query)
            redirect = (query.get("redirect_url") or ["/"])[0]
            parts = urlsplit(redirect)
            if parts.netloc and parts.netloc != (self.headers.get("Host") or ""):
                redirect = "/"  # only back to this application
            cookie = f"{COOKIE}={edge.mint()}; Path=/; HttpOnly; SameSite=Lax; Max-Age={edge.session_seconds}"
            self.simple(302, b"", {"Location": redirect, "Set-Cookie": cookie, "Cache-Control": "no-store"})

        def forward(self, body: bytes) -> None:
            headers: list[tuple[str, str]] = []
            for name, value in self.headers.items():
                lower = name.lower()
                if lower in HOP_BY_HOP or lower in ("host", "content-length", ACCESS_HEADER.lower(), "cf-connecting-ip"):
                    continue
                headers.append((name, value))
            headers.append(("Host", edge.public_hostname))
            if self.command != "OPTIONS":
                headers.append((ACCESS_HEADER, edge.mint()))
            headers.append(("Cf-Connecting-Ip", self.client_address[0]))
            if body or self.headers.get("Content-Length") is not None:
                headers.append(("Content-Length", str(len(body))))
            request = edge._client.build_request(self.command, edge.backend_url + self.path, headers=headers, content=body)
            try:
                response = edge._client.send(request, stream=True)
            except httpx.HTTPError:
                edge._record(Forwarded(self.command, self.path, dict(headers), body, 502))
                self.simple(502, b"cloudflared: origin unreachable", {"Content-Type": "text/plain"})
                return
            edge._record(Forwarded(self.command, self.path, dict(headers), body, response.status_code))
            try:
                self.send_response(response.status_code)
                length = response.headers.get("Content-Length")
                for name, value in response.headers.multi_items():
                    if name.lower() not in HOP_BY_HOP:
                        self.send_header(name, value)
                chunked = length is None and self.command != "HEAD" and response.status_code not in (204, 304)
                if chunked:
                    self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                self.wfile.flush()
                for chunk in response.iter_raw():
                    if not chunk:
                        continue
                    if chunked:
                        self.wfile.write(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
                    else:
                        self.wfile.write(chunk)
                    self.wfile.flush()
                if chunked:
                    self.wfile.write(b"0\r\n\r\n")
                    self.wfile.flush()
            except (BrokenPipeError, ConnectionResetError):
                self.close_connection = True
            finally:
                response.close()

    return Handler
