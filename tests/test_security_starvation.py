"""Nothing unauthenticated can starve the owner: preflights are never counted, buckets behind the
tunnel belong to a device or an Access identity (never to cloudflared's loopback address), and a
body over its route's limit is refused while it arrives, chunked or not, so the gate never buffers
more than the route allows.
"""

from __future__ import annotations

import socket
import time
from pathlib import Path
from typing import Iterator

import httpx
import pytest

from tests.support.e2e import SealedExchange, ServerKey
from tests.support.server import LiveServer, SignedClient, write_config
from tests.support.signing import TestDevice
from tests.test_security_access import AUD, KID, PUBLIC_HOST, TEAM, JwksServer, new_rsa_key, public_jwk, token

ALLOWED = "http://127.0.0.1:8764"
SIGNED_PER_MINUTE = 20
REGISTRATIONS_PER_MINUTE = 3


@pytest.fixture(scope="module")
def tight(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LiveServer, SignedClient, JwksServer, object]]:
    """A server with small limits, Access configured (so the tunnel listener is up), one paired device."""
    key = new_rsa_key()
    jwks = JwksServer([public_jwk(key, KID)])
    folder: Path = tmp_path_factory.mktemp("tight")
    config = write_config(folder, {
        "rate_limits": {"signed_per_minute": SIGNED_PER_MINUTE, "chat_per_minute": 5,
                        "registration_per_minute": REGISTRATIONS_PER_MINUTE},
        "access": {"team_domain": TEAM, "aud": [AUD], "public_hostnames": [PUBLIC_HOST], "certs_url": jwks.certs_url},
        "model": {"enabled": False},
    })
    server = LiveServer(folder, config).start()
    try:
        yield server, server.pair(), jwks, key
    finally:
        server.stop()
        jwks.close()


def preflight(url: str, **headers: str) -> httpx.Response:
    return httpx.options(url + "/api/settings", timeout=30, headers={
        "Origin": ALLOWED, "Access-Control-Request-Method": "PUT",
        "Access-Control-Request-Headers": "content-type,content-digest,signature,signature-input", **headers})


def test_preflights_are_never_rate_limited(tight) -> None:
    server, owner, _jwks, _key = tight
    for _ in range(200):
        response = preflight(server.url)
        assert response.status_code == 200, response.text
    assert owner.get("/api/settings").status_code == 200, "200 preflights from nowhere used up the owner's requests"
    # The control: the limit is real, the owner's own signed requests do count.
    statuses = [owner.get("/api/settings").status_code for _ in range(SIGNED_PER_MINUTE + 2)]
    assert 429 in statuses, statuses
    response = owner.get("/api/settings")
    assert response.status_code == 429 and int(response.headers["Retry-After"]) >= 1


def register_attempt(server: LiveServer, access_token: str) -> int:
    """A malformed registration through the tunnel listener: refused, but counted against the bucket."""
    response = httpx.post(server.tunnel_url + "/api/auth/device", timeout=30, content=b"{}",
                          headers={"Host": PUBLIC_HOST, "Content-Type": "application/json", "Cf-Access-Jwt-Assertion": access_token})
    return response.status_code


def test_registration_buckets_behind_the_tunnel_belong_to_the_access_identity(tight) -> None:
    """Every tunnelled request comes from cloudflared on 127.0.0.1: a per-address bucket would be one for all."""
    server, _owner, _jwks, key = tight
    stranger = token(key, sub="someone-else", email="someone@else.test")
    statuses = [register_attempt(server, stranger) for _ in range(REGISTRATIONS_PER_MINUTE + 1)]
    assert statuses[-1] == 429 and 429 not in statuses[:-1], statuses
    # The owner's identity, on the same loopback peer through the same cloudflared, has its own bucket.
    assert register_attempt(server, token(key, sub="owner", email="owner@example.test")) != 429


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def send_chunked(port: int, path: str, total: int, *, chunk: int = 256 * 1024, device: TestDevice | None = None,
                 server_key: ServerKey | None = None) -> tuple[int, int]:
    """PUT ``total`` bytes as a chunked body on a raw socket; returns (status, bytes sent before the answer came)."""
    head = (f"PUT {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n"
            "Transfer-Encoding: chunked\r\n")
    if device is not None and server_key is not None:
        # Signed over an empty body: the digest will not match, but the body is refused for its size
        # first (sealed: the header makes a context before the body is read).
        e2e = SealedExchange(server_key, "PUT", path, device.device_id, b"").header
        for name, value in device.sign("PUT", path, b"", e2e=e2e).items():
            head += f"{name}: {value}\r\n"
    sent = 0
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall((head + "\r\n").encode())
        sock.setblocking(False)
        answer = b""
        piece = b"[" + b"0," * (chunk // 2 - 1) + b"0"
        while sent < total:
            try:
                answer += sock.recv(65536)
            except BlockingIOError:
                pass
            if b"\r\n\r\n" in answer:
                break
            try:
                sock.setblocking(True)
                sock.sendall(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
                sent += len(piece)
                sock.setblocking(False)
            except (BrokenPipeError, ConnectionResetError):
                break
        sock.setblocking(True)
        sock.settimeout(30)
        deadline = time.monotonic() + 30
        while b"\r\n\r\n" not in answer and time.monotonic() < deadline:
            try:
                data = sock.recv(65536)
            except ConnectionResetError:
                break
            if not data:
                break
            answer += data
    status = int(answer.split(b" ", 2)[1]) if answer.startswith(b"HTTP/1.1 ") else 0
    return status, sent


def test_chunked_body_over_the_route_limit_is_refused_while_it_arrives(tight) -> None:
    server, owner, _jwks, _key = tight
    assert server.process is not None
    before = rss_kib(server.process.pid)
    status, sent = send_chunked(server.port, "/api/settings", 20 * 1024 * 1024, device=owner.device,
                                server_key=owner.server_key())
    grown = rss_kib(server.process.pid) - before
    assert status == 413, status
    assert sent < 20 * 1024 * 1024, "the server read the whole 20 MiB before refusing it"
    # Settings allow 1 MiB (server.max_body_bytes): the server may hold that much, never the 64 MiB the import route allows.
    assert grown < 8 * 1024, f"the server's memory grew by {grown} KiB for a refused body"
    assert owner.get("/api/settings").status_code in (200, 429)  # still serving


def test_declared_length_over_the_limit_is_refused_before_reading(tight) -> None:
    server, _owner, _jwks, _key = tight
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
        sock.sendall(f"PUT /api/settings HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                     f"Content-Length: {20 * 1024 * 1024}\r\n\r\n".encode())
        answer = b""
        while b"payload_too_large" not in answer:  # no body sent at all: the answer must come anyway
            data = sock.recv(65536)
            if not data:
                break
            answer += data
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert b"payload_too_large" in answer


def test_import_route_keeps_its_larger_limit() -> None:
    """The control: the body limit depends on the route, and only import gets the large one."""
    from privchat.api.body_limits import body_limit

    assert body_limit("POST", "/api/history/import", body_bytes=1, import_bytes=2) == 2
    assert body_limit("PUT", "/api/settings", body_bytes=1, import_bytes=2) == 1
    assert body_limit("GET", "/api/history/import", body_bytes=1, import_bytes=2) == 1
