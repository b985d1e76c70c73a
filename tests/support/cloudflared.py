"""Real cloudflared for tests: find (or build) it, and run its origin side on loopback.

Why: the edge stand-in (``tests/support/edge.py``) can only guess what cloudflared does with a
request. ``../shared/tools/cloudflared`` builds cloudflared's own source, plus ``originharness``,
a small program that puts cloudflared's real request building, ingress matching, Access JWT
middleware and origin proxy behind a plain HTTP listener. Tests put the stand-in (playing the
Cloudflare edge) in front of it, so what reaches the backend is what cloudflared really sends.

cloudflared's Access validator is unmodified: it fetches
``https://<team>.cloudflareaccess.com/cdn-cgi/access/certs`` with Go's default HTTP client, which
honours ``HTTPS_PROXY`` and ``SSL_CERT_FILE``. ``AccessKeyServer`` provides both ends of that on
loopback: a test CA, a TLS server for ``<team>.cloudflareaccess.com`` serving the test's JWKS, and
a CONNECT proxy that sends ``*.cloudflareaccess.com:443`` there and refuses every other
destination. Nothing here ever connects anywhere but 127.0.0.1.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import os
import queue
import select
import shutil
import socket
import socketserver
import ssl
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Callable

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

BUILD_SCRIPT = Path(__file__).resolve().parents[2].parent / "shared" / "tools" / "cloudflared" / "build"
BUILD_TIMEOUT = 900.0  # the first build compiles cloudflared (about 1-2 minutes on 2 cores); later runs are cached
ACCESS_DOMAIN = "cloudflareaccess.com"
CERTS_PATH = "/cdn-cgi/access/certs"
LISTENING_PREFIX = "ORIGINHARNESS_LISTENING "

SKIP_HARNESS_MESSAGE = (
    "these tests run cloudflared's own origin code built from ../shared/tools/cloudflared; that folder is "
    f"absent in this checkout ({BUILD_SCRIPT.parent}). Put the shared tools folder next to the repository "
    "(its `build` script compiles cloudflared and the origin harness offline, Go >= 1.26) and run pytest again."
)
SKIP_CLOUDFLARED_MESSAGE = (
    "these tests run the real cloudflared CLI: neither ../shared/tools/cloudflared (which builds it) nor a "
    "`cloudflared` on PATH was found. Put the shared tools folder next to the repository or install cloudflared."
)


# --------------------------------------------------------------------------- finding the programs


@dataclass(frozen=True)
class CloudflaredTools:
    cloudflared: Path | None  # the real CLI (`ingress validate`, `ingress rule`)
    originharness: Path | None  # cloudflared's origin side behind a local listener; only from the build script


class CloudflaredBuildError(RuntimeError):
    """The shared tools folder is there but its build failed: a broken setup, not a reason to skip."""


@functools.cache
def _locate() -> CloudflaredTools | CloudflaredBuildError | None:
    if BUILD_SCRIPT.is_file():
        try:
            return _run_build_script()
        except CloudflaredBuildError as error:
            return error  # cached too, so a broken build is attempted once per process
    found = shutil.which("cloudflared")
    return CloudflaredTools(cloudflared=Path(found), originharness=None) if found else None


def _run_build_script() -> CloudflaredTools:
    try:
        done = subprocess.run(["bash", str(BUILD_SCRIPT)], capture_output=True, text=True, timeout=BUILD_TIMEOUT,
                              stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired as error:
        raise CloudflaredBuildError(f"{BUILD_SCRIPT} took more than {BUILD_TIMEOUT:.0f} s") from error
    paths = dict(line.split("=", 1) for line in done.stdout.splitlines() if "=" in line)
    if done.returncode != 0 or "CLOUDFLARED" not in paths or "ORIGINHARNESS" not in paths:
        raise CloudflaredBuildError(f"{BUILD_SCRIPT} failed (exit {done.returncode}):\n{done.stderr[-4000:]}")
    return CloudflaredTools(cloudflared=Path(paths["CLOUDFLARED"]), originharness=Path(paths["ORIGINHARNESS"]))


def find_tools() -> CloudflaredTools | None:
    """cloudflared and the origin harness, built from ../shared/tools/cloudflared if that folder exists
    (cached per process); else a ``cloudflared`` on PATH without a harness; else None.
    Raises ``CloudflaredBuildError`` when the folder exists but its build fails."""
    found = _locate()
    if isinstance(found, CloudflaredBuildError):
        raise found
    return found


def require_harness() -> CloudflaredTools:
    """The tools, with ``originharness`` set; skips the calling test when the shared folder is absent."""
    import pytest

    tools = find_tools()
    if tools is None or tools.originharness is None:
        pytest.skip(SKIP_HARNESS_MESSAGE)
    return tools


def require_cloudflared() -> CloudflaredTools:
    """The tools, with ``cloudflared`` set; skips the calling test when there is no cloudflared at all."""
    import pytest

    tools = find_tools()
    if tools is None or tools.cloudflared is None:
        pytest.skip(SKIP_CLOUDFLARED_MESSAGE)
    return tools


# --------------------------------------------------------------------------- test CA


@dataclass(frozen=True)
class TestCertificates:
    ca_pem: Path  # what SSL_CERT_FILE points at
    server_pem: Path
    server_key: Path


def _private_key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())


def make_test_certificates(directory: Path, hostname: str) -> TestCertificates:
    """A throwaway CA (valid one day) and a server certificate it signed for ``hostname``."""
    now = dt.datetime.now(dt.timezone.utc)
    valid = {"not_valid_before": now - dt.timedelta(hours=1), "not_valid_after": now + dt.timedelta(days=1)}
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "privchat test CA (never trust outside tests)")])
    ca_cert = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
               .serial_number(x509.random_serial_number())
               .not_valid_before(valid["not_valid_before"]).not_valid_after(valid["not_valid_after"])
               .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
               .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                            content_commitment=False, key_encipherment=False, data_encipherment=False,
                                            key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
               .sign(ca_key, hashes.SHA256()))
    server_key = ec.generate_private_key(ec.SECP256R1())
    server_cert = (x509.CertificateBuilder()
                   .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hostname)]))
                   .issuer_name(ca_name).public_key(server_key.public_key())
                   .serial_number(x509.random_serial_number())
                   .not_valid_before(valid["not_valid_before"]).not_valid_after(valid["not_valid_after"])
                   .add_extension(x509.SubjectAlternativeName([x509.DNSName(hostname)]), critical=False)
                   .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
                   .sign(ca_key, hashes.SHA256()))
    certs = TestCertificates(directory / "ca.pem", directory / "server.pem", directory / "server.key")
    certs.ca_pem.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    certs.server_pem.write_bytes(server_cert.public_bytes(serialization.Encoding.PEM))
    certs.server_key.write_bytes(_private_key_pem(server_key))
    return certs


# --------------------------------------------------------------------------- JWKS over TLS


class _TLSHTTPServer(ThreadingHTTPServer):
    """Threaded HTTPS server; the TLS handshake runs in the connection's thread, not the accept loop."""

    daemon_threads = True

    def __init__(self, handler: type[BaseHTTPRequestHandler], context: ssl.SSLContext) -> None:
        self.tls_context = context
        super().__init__(("127.0.0.1", 0), handler)

    def finish_request(self, request: Any, client_address: Any) -> None:
        request.settimeout(10)
        try:
            tls = self.tls_context.wrap_socket(request, server_side=True)
        except (ssl.SSLError, OSError):
            return  # a failed handshake (e.g. a client that does not trust the CA) is that client's problem
        try:
            super().finish_request(tls, client_address)
        finally:
            tls.close()


def _jwks_handler(owner: "AccessKeyServer") -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def do_GET(self) -> None:  # noqa: N802
            if self.path.split("?", 1)[0] != CERTS_PATH:
                self._send(404, b"not found", "text/plain")
                return
            owner._count_fetch()
            self._send(200, json.dumps(owner.jwks_provider()).encode(), "application/json")

        def _send(self, status: int, body: bytes, content_type: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    return Handler


# --------------------------------------------------------------------------- CONNECT proxy

Route = Callable[[str, int], "tuple[str, int] | None"]


@dataclass(frozen=True)
class ConnectAttempt:
    target: str  # host:port as asked for
    allowed: bool


class ConnectProxy:
    """A CONNECT-only proxy on 127.0.0.1. ``route(host, port)`` gives the loopback address to tunnel to,
    or None to refuse with 502. It never dials anything ``route`` did not return."""

    def __init__(self, route: Route) -> None:
        self.route = route
        self.attempts: list[ConnectAttempt] = []
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._open: set[socket.socket] = set()
        self._server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _connect_handler(self), bind_and_activate=True)
        self._server.daemon_threads = True
        self._started = False

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    @property
    def refused(self) -> list[str]:
        with self._lock:
            return [a.target for a in self.attempts if not a.allowed]

    def start(self) -> "ConnectProxy":
        if not self._started:
            threading.Thread(target=self._server.serve_forever, name="connect-proxy", daemon=True).start()
            self._started = True
        return self

    def stop(self) -> None:
        self._stopping.set()
        if self._started:
            self._server.shutdown()
            self._started = False
        self._server.server_close()
        with self._lock:
            open_sockets, self._open = list(self._open), set()
        for sock in open_sockets:
            _close_quietly(sock)

    def _note(self, target: str, allowed: bool) -> None:
        with self._lock:
            self.attempts.append(ConnectAttempt(target, allowed))

    def _track(self, sock: socket.socket, add: bool) -> None:
        with self._lock:
            (self._open.add if add else self._open.discard)(sock)

    def _relay(self, client: socket.socket, upstream: socket.socket, early: bytes) -> None:
        """Copy bytes both ways until one side closes or the proxy stops."""
        if early:
            upstream.sendall(early)
        peers = {client: upstream, upstream: client}
        while not self._stopping.is_set():
            try:
                readable, _, _ = select.select(list(peers), [], [], 0.5)
                for sock in readable:
                    data = sock.recv(65536)
                    if not data:
                        return
                    peers[sock].sendall(data)
            except (OSError, ValueError):
                return


def _close_quietly(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    sock.close()


def _read_head(sock: socket.socket, limit: int = 16384) -> tuple[bytes, bytes] | None:
    """The request head (up to the blank line) and whatever arrived after it; None if the peer gave up."""
    data = b""
    while b"\r\n\r\n" not in data:
        if len(data) > limit:
            return None
        chunk = sock.recv(4096)
        if not chunk:
            return None
        data += chunk
    head, rest = data.split(b"\r\n\r\n", 1)
    return head, rest


def _connect_handler(proxy: ConnectProxy) -> type[socketserver.BaseRequestHandler]:
    class Handler(socketserver.BaseRequestHandler):
        def handle(self) -> None:
            client: socket.socket = self.request
            client.settimeout(10)
            try:
                got = _read_head(client)
            except OSError:
                return
            if got is None:
                return
            head, early = got
            parts = head.split(b"\r\n", 1)[0].decode("latin-1").split()
            if len(parts) != 3 or parts[0].upper() != "CONNECT":
                proxy._note(parts[1] if len(parts) > 1 else "?", False)
                client.sendall(b"HTTP/1.1 405 Method Not Allowed\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                return
            self.tunnel(client, parts[1], early)

        def tunnel(self, client: socket.socket, target: str, early: bytes) -> None:
            host, _, port = target.rpartition(":")
            destination = proxy.route(host.strip("[]").lower(), int(port)) if port.isdigit() else None
            proxy._note(target, destination is not None)
            upstream = None
            if destination is not None:
                try:
                    upstream = socket.create_connection(destination, timeout=10)
                except OSError:
                    upstream = None
            if upstream is None:
                client.sendall(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                return
            client.sendall(b"HTTP/1.1 200 Connection Established\r\n\r\n")
            client.settimeout(None)
            upstream.settimeout(None)
            for sock in (client, upstream):
                proxy._track(sock, True)
            try:
                proxy._relay(client, upstream, early)
            finally:
                for sock in (client, upstream):
                    proxy._track(sock, False)
                _close_quietly(upstream)

    return Handler


def refuse_everything(host: str, port: int) -> tuple[str, int] | None:
    """A ``Route`` for a harness without Access keys: every outbound HTTPS attempt fails fast, offline."""
    return None


# --------------------------------------------------------------------------- Access's key endpoint


class AccessKeyServer:
    """``https://<team>.cloudflareaccess.com/cdn-cgi/access/certs`` as cloudflared sees it, on loopback.

    Give the harness ``HTTPS_PROXY=proxy_url`` and ``SSL_CERT_FILE=ca_pem_path`` (``OriginHarness`` does
    when given this object): the proxy sends ``*.cloudflareaccess.com:443`` to a TLS server whose
    certificate the test CA signed for ``<team>.cloudflareaccess.com`` and which serves
    ``jwks_provider()`` (``{"keys": [jwk with kid, alg RS256, use sig]}``), asked afresh on every fetch.
    Other names under cloudflareaccess.com reach the same server but fail TLS (no certificate for them),
    like a wrong team name would; every other destination gets 502 from the proxy.
    """

    def __init__(self, jwks_provider: Callable[[], dict[str, Any]], team: str) -> None:
        self.jwks_provider = jwks_provider
        self.team = team
        self._fetches = 0
        self._lock = threading.Lock()
        self._dir = Path(tempfile.mkdtemp(prefix="privchat-access-keys-"))
        self._certs = make_test_certificates(self._dir, self.hostname)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self._certs.server_pem, self._certs.server_key)
        self._tls = _TLSHTTPServer(_jwks_handler(self), context)
        self.proxy = ConnectProxy(self._route)
        self._started = False

    @property
    def hostname(self) -> str:
        return f"{self.team}.{ACCESS_DOMAIN}"

    @property
    def team_domain(self) -> str:
        """The issuer cloudflared expects in tokens (``iss``)."""
        return f"https://{self.hostname}"

    @property
    def certs_url(self) -> str:
        return self.team_domain + CERTS_PATH

    @property
    def proxy_url(self) -> str:
        return self.proxy.url

    @property
    def ca_pem_path(self) -> Path:
        return self._certs.ca_pem

    @property
    def certs_fetches(self) -> int:
        with self._lock:
            return self._fetches

    def start(self) -> "AccessKeyServer":
        if not self._started:
            threading.Thread(target=self._tls.serve_forever, name="access-jwks", daemon=True).start()
            self.proxy.start()
            self._started = True
        return self

    def stop(self) -> None:
        if self._started:
            self.proxy.stop()
            self._tls.shutdown()
            self._started = False
        self._tls.server_close()
        shutil.rmtree(self._dir, ignore_errors=True)

    def __enter__(self) -> "AccessKeyServer":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def _route(self, host: str, port: int) -> tuple[str, int] | None:
        if port == 443 and host.endswith("." + ACCESS_DOMAIN):
            return ("127.0.0.1", self._tls.server_address[1])
        return None

    def _count_fetch(self) -> None:
        with self._lock:
            self._fetches += 1


# --------------------------------------------------------------------------- the origin harness


def _harness_env(proxy_url: str, ca_pem: Path | None) -> dict[str, str]:
    """The caller's environment minus every proxy setting, plus ours: Go's client may reach only our proxy."""
    env = {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")}
    env.update(HTTPS_PROXY=proxy_url, NO_PROXY="")
    if ca_pem is not None:
        env["SSL_CERT_FILE"] = str(ca_pem)
    return env


class OriginHarness:
    """cloudflared's origin side (``originharness``) for one config file, on 127.0.0.1.

    Send it what the Cloudflare edge sends to cloudflared: ``Host: <public hostname>`` plus the edge's
    headers (``Cf-Access-Jwt-Assertion``, ...); see ``EdgeStandIn``. Without ``access`` the harness still
    gets a proxy, one that refuses everything, so an Access rule fails offline instead of dialling out.
    """

    def __init__(self, config: Path | str, *, access: AccessKeyServer | None = None, binary: Path | None = None,
                 loglevel: str = "info", extra_args: tuple[str, ...] = (), workdir: Path | None = None,
                 start_timeout: float = 30.0) -> None:
        self.config = Path(config)
        self.access = access
        self.binary = binary
        self.loglevel = loglevel
        self.extra_args = extra_args
        self.start_timeout = start_timeout
        self._own_dir = workdir is None
        self._dir = Path(tempfile.mkdtemp(prefix="privchat-originharness-")) if workdir is None else Path(workdir)
        self.log_path = self._dir / "originharness.log"
        self._process: subprocess.Popen[str] | None = None
        self._own_proxy: ConnectProxy | None = None
        self._address: str | None = None
        self._final_log: str | None = None

    # ---------------------------------------------------------------- public surface

    @property
    def address(self) -> str:
        assert self._address is not None, "start() the harness first"
        return self._address

    @property
    def url(self) -> str:
        return f"http://{self.address}"

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def log(self) -> str:
        """cloudflared's log so far (stderr); still readable after ``stop()``."""
        if self._final_log is not None:
            return self._final_log
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def start(self) -> "OriginHarness":
        binary = self.binary or require_harness().originharness
        assert binary is not None
        proxy_url, ca_pem = self._proxy_settings()
        command = [str(binary), "--config", str(self.config), "--listen", "127.0.0.1:0",
                   "--loglevel", self.loglevel, *self.extra_args]
        with open(self.log_path, "w") as log_file:  # the child keeps its own descriptor
            process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=log_file,
                                       env=_harness_env(proxy_url, ca_pem), text=True)
        self._process = process
        address = self._await_listening(process)
        if address is None:
            exit_code = _exit_code_soon(process)
            log = self.log()
            self.stop()
            why = f"exited with {exit_code}" if exit_code is not None else f"did not start within {self.start_timeout:.0f} s"
            raise RuntimeError(f"originharness {why} ({self.config}); its log:\n{log}")
        self._address = address
        return self

    def stop(self) -> None:
        if self._process is not None:
            _end_process(self._process)
            if self._process.stdout:
                self._process.stdout.close()
            self._process = None
        if self._own_proxy is not None:
            self._own_proxy.stop()
            self._own_proxy = None
        if self._final_log is None:
            self._final_log = self.log()
        if self._own_dir:
            shutil.rmtree(self._dir, ignore_errors=True)

    def __enter__(self) -> "OriginHarness":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    # ---------------------------------------------------------------- internals

    def _proxy_settings(self) -> tuple[str, Path | None]:
        """HTTPS_PROXY and SSL_CERT_FILE for the child: the key server's, or a proxy that refuses everything."""
        if self.access is not None:
            return self.access.start().proxy_url, self.access.ca_pem_path
        self._own_proxy = ConnectProxy(refuse_everything).start()
        return self._own_proxy.url, None

    def _await_listening(self, process: subprocess.Popen[str]) -> str | None:
        """Reads stdout on a daemon thread (which keeps draining it) until the listening line or exit."""
        assert process.stdout is not None
        stdout = process.stdout
        lines: queue.Queue[str | None] = queue.Queue()

        def pump() -> None:
            try:
                for line in stdout:
                    lines.put(line)
            except (OSError, ValueError):
                pass
            lines.put(None)

        threading.Thread(target=pump, name="originharness-stdout", daemon=True).start()
        deadline = time.monotonic() + self.start_timeout
        try:
            while True:
                line = lines.get(timeout=max(0.0, deadline - time.monotonic()))
                if line is None:
                    return None
                if line.startswith(LISTENING_PREFIX):
                    return line[len(LISTENING_PREFIX):].strip()
        except queue.Empty:
            return None


def _exit_code_soon(process: subprocess.Popen[Any], wait: float = 1.0) -> int | None:
    """The exit code if the process ends within ``wait`` seconds (stdout closes just before it is reaped)."""
    try:
        return process.wait(wait)
    except subprocess.TimeoutExpired:
        return None


def _end_process(process: subprocess.Popen[Any], grace: float = 5.0) -> None:
    """SIGTERM (cloudflared shuts down within 2 s), then SIGKILL; always reaped."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(grace)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
