"""A stand-in for the Cloudflare edge (with Access) for one application, on loopback.

It stands only where Cloudflare's edge stands: in front of cloudflared. The chain in tests is

    client --> EdgeStandIn --> OriginHarness (real cloudflared, tests/support/cloudflared.py) --> backend

so every behaviour cloudflared owns (the Access JWT check on ``access.required`` rules, ingress
matching, its 502s) comes from cloudflared's own code, and this file plays only what Cloudflare
documents for the edge and Access:

* Access, without a valid ``CF_Authorization`` cookie: what Access gives a browser, a 302 to the
  login page and no CORS headers (a page's fetch then fails as it does against real Access).
  ``/cdn-cgi/access/login?redirect_url=...`` is the sign-in page: like Access's, it needs a person
  (here one click on "Sign in", a one-click identity provider); the form's POST sets the cookie (a
  JWT from the test key) and redirects back. A fetch that follows the redirect only gets the page.
* Access, CORS preflights (OPTIONS with ``Origin`` and ``Access-Control-Request-Method``): answered
  here from the application's CORS settings (``AccessCors``) and never forwarded. Without CORS
  settings a preflight is a request without a session: 403. A preflight the settings do not allow
  gets 403 without any ``Access-Control-*`` header, so the browser fails it.
* The edge, with a valid session: the request goes upstream with ``Host`` = the public hostname,
  ``Cf-Access-Jwt-Assertion`` (by default the session's own JWT, as Access does; ``forward_token``
  can substitute a bad one to play a misconfiguration), ``Cf-Connecting-Ip``, ``X-Forwarded-For``,
  ``X-Forwarded-Proto``, ``Cf-Ray``, ``Cf-Visitor``, ``Cdn-Loop`` and
  ``Cf-Access-Authenticated-User-Email``. Method, path, query, every other header and the body pass
  byte for byte (the device signature covers them). The answer streams back chunk by chunk as it
  arrives (SSE), headers unchanged except ``Server: cloudflare`` and hop-by-hop ones. Every exchange
  is recorded (``forwarded``), both ways, headers and body bytes, as the edge holds them after TLS:
  what a test scans to show the edge sees only ciphertext.
* The edge's 100 s idle cutoff (``idle_timeout``): if the upstream sends nothing for that long, a
  response whose headers have not gone out becomes 524; one already streaming is cut off. An
  upstream that cannot be reached gives 502.

The signing keys are served at ``/cdn-cgi/access/certs`` on the stand-in itself (``jwks_url``, plain
http, for the backend's ``access.certs_url``); cloudflared fetches the same keys over TLS from an
``AccessKeyServer`` (``access_key_server()``).
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from dataclasses import dataclass, field
from http.cookies import SimpleCookie
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any, Callable, NamedTuple
from urllib.parse import parse_qs, quote, urlsplit

import httpx
import jwt
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

if TYPE_CHECKING:
    from tests.support.cloudflared import AccessKeyServer

COOKIE = "CF_Authorization"
ACCESS_HEADER = "Cf-Access-Jwt-Assertion"
LOGIN_PATH = "/cdn-cgi/access/login"
CERTS_PATH = "/cdn-cgi/access/certs"
# Hop-by-hop headers (RFC 9110 7.6.1) are the proxy's own business; everything else passes.
HOP_BY_HOP = {"connection", "keep-alive", "proxy-connection", "proxy-authenticate", "proxy-authorization",
              "te", "trailer", "transfer-encoding", "upgrade"}
# Headers the edge sets itself: whatever the client sent under these names is replaced, not passed on.
EDGE_SET = {ACCESS_HEADER.lower(), "cf-connecting-ip", "cf-ray", "cf-visitor", "cdn-loop", "x-forwarded-proto",
            "cf-access-authenticated-user-email"}
# Framing the stand-in redoes itself (it reads the whole body, and answers Expect: 100-continue).
REFRAMED = {"host", "content-length", "expect"}
CONNECT_TIMEOUT = 10.0


def new_rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


# --------------------------------------------------------------------------- Access's CORS settings


def _allows(allowed: list[str], value: str) -> bool:
    """Case-insensitive membership; ``"*"`` plays Access's "allow all" switch."""
    return "*" in allowed or value.lower() in {item.lower() for item in allowed}


@dataclass
class AccessCors:
    """An Access application's CORS settings (what Access answers preflights with).

    ``"*"`` in a list stands for Access's "Allow all origins/methods/headers"; the answer then echoes
    what was asked, which is what a browser needs when credentials are allowed."""

    allowed_origins: list[str]
    allow_credentials: bool = False
    allowed_methods: list[str] = field(default_factory=lambda: ["GET", "POST"])
    allowed_headers: list[str] = field(default_factory=list)
    max_age: int = 600

    def preflight_headers(self, origin: str, method: str, requested_headers: list[str]) -> dict[str, str] | None:
        """The ``Access-Control-*`` headers for an allowed preflight, or None when it is not allowed."""
        if not (_allows(self.allowed_origins, origin) and _allows(self.allowed_methods, method)
                and all(_allows(self.allowed_headers, name) for name in requested_headers)):
            return None
        headers = {"Access-Control-Allow-Origin": origin,
                   "Access-Control-Allow-Methods": method if "*" in self.allowed_methods else ", ".join(self.allowed_methods),
                   "Access-Control-Max-Age": str(self.max_age),
                   "Vary": "Origin"}
        listed = ", ".join(requested_headers) if "*" in self.allowed_headers else ", ".join(self.allowed_headers)
        if listed:
            headers["Access-Control-Allow-Headers"] = listed
        if self.allow_credentials:
            headers["Access-Control-Allow-Credentials"] = "true"
        return headers


# --------------------------------------------------------------------------- records


class Preflight(NamedTuple):
    method: str  # the method asked for (Access-Control-Request-Method); the request itself is always OPTIONS
    path: str
    status: int


@dataclass
class Forwarded:
    method: str
    target: str
    headers: dict[str, str]
    body: bytes
    status: int  # what the upstream answered; 502/524 when the stand-in answered for it
    outcome: str = "streaming"  # then "complete", "idle-timeout", "upstream-aborted" or "client-gone"
    # What went back, as the edge saw it (TLS ends here): every header and every byte of the body.
    response_headers: list[tuple[str, str]] = field(default_factory=list)
    response_body: bytearray = field(default_factory=bytearray)

    def wire_bytes(self) -> bytes:
        """Everything of this exchange the edge handled in the clear, both ways, as one byte string."""
        head = f"{self.method} {self.target}\n" + "".join(f"{k}: {v}\n" for k, v in self.headers.items())
        back = f"\n{self.status}\n" + "".join(f"{k}: {v}\n" for k, v in self.response_headers)
        return head.encode("latin-1", "replace") + self.body + back.encode("latin-1", "replace") + bytes(self.response_body)


@dataclass(frozen=True)
class Tamper:
    """What a tampering edge does with one request. ``forge``: answer it itself, plain, with this
    status and JSON error (and the CORS headers a real answer carries, so the page can read it);
    ``status``: forward it, then change the status of the (sealed) answer on the way back."""

    kind: str  # "forge" or "status"
    status: int
    code: str = ""
    message: str = ""


# --------------------------------------------------------------------------- the stand-in


@dataclass
class EdgeStandIn:
    """Start with ``start()``. ``url`` is its loopback address (for Python clients and the backend's
    ``access.certs_url``); a browser uses ``public_origin``, the public hostname mapped to loopback.
    ``upstream_url`` is where cloudflared listens (``OriginHarness.url``)."""

    upstream_url: str
    public_hostname: str = "chat-api.standin.test"
    team_domain: str = "https://teststandin.cloudflareaccess.com"
    aud: str = field(default_factory=lambda: uuid.uuid4().hex + uuid.uuid4().hex)
    email: str = "owner@standin.test"
    kid: str = field(default_factory=lambda: "standin-" + uuid.uuid4().hex[:8])
    key: rsa.RSAPrivateKey = field(default_factory=new_rsa_key)
    session_seconds: int = 3600
    cors: AccessCors | None = None
    idle_timeout: float = 100.0  # Cloudflare's proxy read timeout; set ~1 s in a test that needs a 524
    # What goes out as Cf-Access-Jwt-Assertion: None forwards the session's own JWT (what Access does);
    # a callable substitutes its result (None from it: send no assertion at all).
    forward_token: Callable[[], str | None] | None = None
    # An edge that changes traffic: called with (method, target) for each request it would forward;
    # a Tamper it returns is played instead (None: forward untouched). Tests only.
    tamper: "Callable[[str, str], Tamper | None] | None" = None
    forwarded: list[Forwarded] = field(default_factory=list)
    refused: list[tuple[str, str, int]] = field(default_factory=list)  # (method, target, status) stopped by "Access"
    preflights: list[Preflight] = field(default_factory=list)
    certs_fetches: int = 0

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._httpd: ThreadingHTTPServer | None = None
        self._client: httpx.Client | None = None

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
    def team_name(self) -> str:
        """``teamName`` for cloudflared's ``originRequest.access`` (from ``team_domain``)."""
        host = urlsplit(self.team_domain).hostname or ""
        return host.split(".", 1)[0]

    def access_key_server(self) -> "AccessKeyServer":
        """An (unstarted) ``AccessKeyServer`` serving this stand-in's keys to cloudflared."""
        from tests.support.cloudflared import AccessKeyServer

        return AccessKeyServer(self.jwks, self.team_name)

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
        return self._session_claims(token) is not None

    def start(self) -> "EdgeStandIn":
        self._client = _upstream_client()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self._httpd.daemon_threads = True
        threading.Thread(target=self._httpd.serve_forever, name="edge-standin", daemon=True).start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None
        if self._client is not None:
            self._client.close()
            self._client = None

    def __enter__(self) -> "EdgeStandIn":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    # ---------------------------------------------------------------- internals

    def _session_claims(self, token: str | None) -> dict[str, Any] | None:
        if not token:
            return None
        try:
            return jwt.decode(token, self.key.public_key(), algorithms=["RS256"], audience=self.aud,
                              issuer=self.team_domain, options={"require": ["exp", "iat", "iss", "aud"]})
        except jwt.PyJWTError:
            return None

    def _assertion_for(self, session_token: str) -> str | None:
        return session_token if self.forward_token is None else self.forward_token()

    def _upstream_timeout(self) -> httpx.Timeout:
        # httpx's read timeout is per read: exactly "nothing from upstream for idle_timeout seconds".
        return httpx.Timeout(CONNECT_TIMEOUT, connect=CONNECT_TIMEOUT, read=self.idle_timeout, write=60.0)

    def _record(self, item: Forwarded) -> None:
        with self._lock:
            self.forwarded.append(item)

    def _refuse(self, method: str, target: str, status: int) -> None:
        with self._lock:
            self.refused.append((method, target, status))

    def _record_preflight(self, item: Preflight) -> None:
        with self._lock:
            self.preflights.append(item)

    def _count_certs_fetch(self) -> None:
        with self._lock:
            self.certs_fetches += 1


def _upstream_client() -> httpx.Client:
    """A client that adds nothing of its own (no default Accept, Accept-Encoding, User-Agent)."""
    client = httpx.Client(follow_redirects=False, trust_env=False)
    client.headers.clear()
    return client


def _connection_tokens(headers: Any) -> set[str]:
    """Header names listed in Connection: hop-by-hop for this request too."""
    return {token.strip().lower() for value in headers.get_all("Connection") or [] for token in value.split(",")}


def _upstream_headers(edge: EdgeStandIn, incoming: Any, client_ip: str, assertion: str | None,
                      email: str | None, ray: str, body_length: int | None) -> list[tuple[str, str]]:
    """The client's headers minus hop-by-hop and edge-owned ones, then what the edge adds."""
    dropped = HOP_BY_HOP | EDGE_SET | REFRAMED | _connection_tokens(incoming)
    headers = [(name, value) for name, value in incoming.items()
               if name.lower() not in dropped and name.lower() != "x-forwarded-for"]
    earlier_hops = ", ".join(incoming.get_all("X-Forwarded-For") or [])
    headers += [("Host", edge.public_hostname),
                ("Cf-Connecting-Ip", client_ip),
                ("X-Forwarded-For", f"{earlier_hops}, {client_ip}" if earlier_hops else client_ip),
                ("X-Forwarded-Proto", "https"),
                ("Cf-Ray", ray),
                ("Cf-Visitor", '{"scheme":"https"}'),
                ("Cdn-Loop", "cloudflare")]
    if email:
        headers.append(("Cf-Access-Authenticated-User-Email", email))
    if assertion is not None:
        headers.append((ACCESS_HEADER, assertion))
    if body_length is not None:
        headers.append(("Content-Length", str(body_length)))
    return headers


def _handler_for(edge: EdgeStandIn) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: Any) -> None:
            pass

        def version_string(self) -> str:
            return "cloudflare"

        # Every method goes through one place.
        def do_GET(self) -> None:  # noqa: N802
            self.handle_any()

        do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = do_GET  # noqa: N815

        # ------------------------------------------------------------ request plumbing

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

        def session_cookie(self) -> str | None:
            jar = SimpleCookie()
            for header in self.headers.get_all("Cookie") or []:
                try:
                    jar.load(header)
                except Exception:  # a malformed cookie header is simply no session
                    continue
            morsel = jar.get(COOKIE)
            return morsel.value if morsel else None

        def is_preflight(self) -> bool:
            return (self.command == "OPTIONS" and self.headers.get("Origin") is not None
                    and self.headers.get("Access-Control-Request-Method") is not None)

        # ------------------------------------------------------------ what Access does

        def handle_any(self) -> None:
            body = self.read_body()
            path = urlsplit(self.path).path
            if path == CERTS_PATH and self.command == "GET":
                edge._count_certs_fetch()
                self.simple(200, json.dumps(edge.jwks()).encode(), {"Content-Type": "application/json"})
                return
            if path == LOGIN_PATH and self.command == "GET":
                self.login_page()
                return
            if path == LOGIN_PATH and self.command == "POST":
                self.login()
                return
            if self.is_preflight():
                self.answer_preflight(path)
                return
            token = self.session_cookie()
            claims = edge._session_claims(token)
            if token is None or claims is None:
                # What Access answers without a session, navigation or fetch alike: off to the login page,
                # and no CORS headers, so a cross-origin fetch cannot read (or follow) it.
                edge._refuse(self.command, self.path, 302)
                self.simple(302, b"", {"Location": edge.login_url(self.self_url(self.path), self.self_url("")),
                                       "Content-Type": "text/html", "Cache-Control": "no-store"})
                return
            self.forward(body, edge._assertion_for(token), claims.get("email"))

        def answer_preflight(self, path: str) -> None:
            """Access answers preflights itself from the app's CORS settings; they never reach cloudflared."""
            method = self.headers["Access-Control-Request-Method"].strip()
            requested = [name.strip() for name in (self.headers.get("Access-Control-Request-Headers") or "").split(",")
                         if name.strip()]
            allowed = edge.cors.preflight_headers(self.headers["Origin"], method, requested) if edge.cors else None
            status = 200 if allowed is not None else 403
            edge._record_preflight(Preflight(method, path, status))
            self.simple(status, b"", allowed or {"Cache-Control": "no-store"})

        def login_page(self) -> None:
            """The sign-in page: nothing happens until a person presses the button."""
            page = ("<!doctype html><title>Sign in</title><h1>Sign in to chat-api</h1>"
                    f'<form method="post" action="{self.path}"><button id="access-login" type="submit">Sign in</button></form>')
            self.simple(200, page.encode(), {"Content-Type": "text/html; charset=utf-8", "Cache-Control": "no-store"})

        def login(self) -> None:
            query = parse_qs(urlsplit(self.path).query)
            redirect = (query.get("redirect_url") or ["/"])[0]
            parts = urlsplit(redirect)
            if parts.netloc and parts.netloc != (self.headers.get("Host") or ""):
                redirect = "/"  # only back to this application
            cookie = f"{COOKIE}={edge.mint()}; Path=/; HttpOnly; SameSite=Lax; Max-Age={edge.session_seconds}"
            self.simple(302, b"", {"Location": redirect, "Set-Cookie": cookie, "Cache-Control": "no-store"})

        # ------------------------------------------------------------ what the edge does

        def forward(self, body: bytes, assertion: str | None, email: str | None) -> None:
            ray = uuid.uuid4().hex[:16] + "-TST"
            has_body = bool(body) or self.headers.get("Content-Length") is not None
            headers = _upstream_headers(edge, self.headers, self.client_address[0], assertion, email, ray,
                                        len(body) if has_body else None)
            record = Forwarded(self.command, self.path, dict(headers), body, 0)
            plan = edge.tamper(self.command, self.path) if edge.tamper else None
            if plan is not None and plan.kind == "forge":
                record.status, record.outcome = plan.status, "forged"
                edge._record(record)
                origin = self.headers.get("Origin")
                cors = {"Access-Control-Allow-Origin": origin, "Access-Control-Allow-Credentials": "true",
                        "Vary": "Origin"} if origin else {}
                forged = json.dumps({"error": {"code": plan.code, "message": plan.message}}).encode()
                self.simple(plan.status, forged, {"Content-Type": "application/json", **cors})
                return
            assert edge._client is not None, "start() the stand-in first"
            request = edge._client.build_request(self.command, edge.upstream_url + self.path, headers=headers,
                                                 content=body, timeout=edge._upstream_timeout())
            try:
                response = edge._client.send(request, stream=True)
            except httpx.ReadTimeout:
                self.answer_for_upstream(record, 524, "idle-timeout")
                return
            except httpx.HTTPError:
                self.answer_for_upstream(record, 502, "complete")
                return
            record.status = response.status_code
            edge._record(record)
            try:
                record.outcome = self.stream_back(response, ray, record, plan.status if plan is not None else None)
            finally:
                response.close()

        def answer_for_upstream(self, record: Forwarded, status: int, outcome: str) -> None:
            """The edge's own short error: 524 (upstream silent too long) or 502 (upstream unreachable)."""
            record.status, record.outcome = status, outcome
            edge._record(record)
            self.simple(status, f"error code: {status}".encode(), {"Content-Type": "text/plain; charset=UTF-8"})

        def stream_back(self, response: httpx.Response, ray: str, record: Forwarded, status: int | None = None) -> str:
            """Headers, then each chunk as it arrives; returns how the response ended. ``status``
            replaces the upstream's (a tampering edge)."""
            chunked = (response.headers.get("Content-Length") is None and self.command != "HEAD"
                       and response.status_code not in (204, 304))
            try:
                self.send_response(status or response.status_code)
                record.response_headers = list(response.headers.multi_items())
                for name, value in response.headers.multi_items():
                    if name.lower() not in HOP_BY_HOP and name.lower() not in ("server", "date"):
                        self.send_header(name, value)
                self.send_header("Cf-Ray", ray)
                if chunked:
                    self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                self.wfile.flush()
                for chunk in response.iter_raw():
                    if chunk:
                        record.response_body += chunk
                        self.wfile.write(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n" if chunked else chunk)
                        self.wfile.flush()
                if chunked:
                    self.wfile.write(b"0\r\n\r\n")
                    self.wfile.flush()
                return "complete"
            except httpx.ReadTimeout:
                self.close_connection = True  # cut off mid-response: the client sees the body end early
                return "idle-timeout"
            except httpx.HTTPError:
                self.close_connection = True  # cloudflared aborted the stream; pass the abort on
                return "upstream-aborted"
            except (BrokenPipeError, ConnectionResetError):
                self.close_connection = True
                return "client-gone"

    return Handler
