"""CORS with exact origins, the Origin check on state-changing requests, security headers, rate limits.

All of it is decided by the app, so the requests go through Quart's test client to the app
``privchat serve`` runs (tests/support/inprocess.py), arriving on the local port as a browser's would.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Iterator

import httpx
import pytest

from tests.support.inprocess import InProcessServer, factory
from tests.support.server import SignedClient
from tests.support.signing import TestDevice

ALLOWED = "http://127.0.0.1:8764"  # in the default server.allowed_origins
EVIL = "https://evil.example"
REQUEST_HEADERS = "content-digest,signature,signature-input,content-type"


@pytest.fixture
def app_factory(tmp_path: Path) -> Iterator[Callable[..., InProcessServer]]:
    yield from factory(tmp_path)


def assert_error(response: httpx.Response, status: int, code: str) -> None:
    assert response.status_code == status, f"expected {status} {code}, got {response.status_code}: {response.text}"
    assert response.json()["error"]["code"] == code, response.text


def preflight(server: InProcessServer, origin: str, **extra: str) -> httpx.Response:
    headers = {"Origin": origin, "Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": REQUEST_HEADERS, **extra}
    return server.http().options("/api/chat", headers=headers)


# --- preflight -------------------------------------------------------------------------------------

def test_preflight_from_an_allowed_origin(app_server: InProcessServer) -> None:
    response = preflight(app_server, ALLOWED)
    assert response.status_code in (200, 204), response.text
    assert response.headers["Access-Control-Allow-Origin"] == ALLOWED
    assert response.headers["Access-Control-Allow-Credentials"] == "true"
    allowed = {h.strip().lower() for h in response.headers["Access-Control-Allow-Headers"].split(",")}
    assert {"content-digest", "signature", "signature-input", "content-type"} <= allowed
    assert "POST" in response.headers["Access-Control-Allow-Methods"]
    assert int(response.headers["Access-Control-Max-Age"]) > 0
    assert "Access-Control-Allow-Private-Network" not in response.headers  # only when asked


def test_preflight_private_network_access(app_server: InProcessServer) -> None:
    response = preflight(app_server, ALLOWED, **{"Access-Control-Request-Private-Network": "true"})
    assert response.headers["Access-Control-Allow-Origin"] == ALLOWED
    assert response.headers["Access-Control-Allow-Private-Network"] == "true"


def test_preflight_from_an_unlisted_origin(app_server: InProcessServer) -> None:
    response = preflight(app_server, EVIL, **{"Access-Control-Request-Private-Network": "true"})
    assert "Access-Control-Allow-Origin" not in response.headers, dict(response.headers)
    assert "Access-Control-Allow-Credentials" not in response.headers
    assert "Access-Control-Allow-Private-Network" not in response.headers


def test_origin_is_matched_exactly_not_by_prefix(app_server: InProcessServer) -> None:
    for near_miss in ("http://127.0.0.1:8764.evil.example", "http://127.0.0.1:8763", "https://127.0.0.1:8764", "null"):
        response = preflight(app_server, near_miss)
        assert "Access-Control-Allow-Origin" not in response.headers, (near_miss, dict(response.headers))


def test_simple_response_to_an_allowed_origin_carries_cors(app_server: InProcessServer, app_client: SignedClient) -> None:
    response = app_client.get("/api/settings", headers={"Origin": ALLOWED})
    assert response.status_code == 200, response.text
    assert response.headers["Access-Control-Allow-Origin"] == ALLOWED
    assert response.headers["Access-Control-Allow-Credentials"] == "true"


# --- Origin check on state-changing requests -------------------------------------------------------

def test_signed_post_from_an_unlisted_origin_is_refused(app_server: InProcessServer, app_client: SignedClient) -> None:
    response = app_client.put("/api/settings", {"temperature": 0.3}, headers={"Origin": EVIL})
    assert_error(response, 403, "origin_not_allowed")
    response = app_client.post("/api/chat", {"message": "hi", "options": {"max_tokens": 1}}, headers={"Origin": EVIL})
    assert_error(response, 403, "origin_not_allowed")


def test_refused_origin_changes_nothing(app_server: InProcessServer, app_client: SignedClient) -> None:
    assert app_client.put("/api/settings", {"max_tokens": 321}).status_code == 200
    assert_error(app_client.put("/api/settings", {"max_tokens": 123}, headers={"Origin": EVIL}), 403, "origin_not_allowed")
    assert app_client.get("/api/settings").json()["max_tokens"] == 321


def test_unlisted_origin_registration_is_refused(app_server: InProcessServer) -> None:
    device = TestDevice()
    client = app_server.client(device, extra_headers={"Origin": EVIL})
    assert_error(client.register(app_server.pair_code()), 403, "origin_not_allowed")


def test_signed_post_from_an_allowed_origin_passes(app_server: InProcessServer, app_client: SignedClient) -> None:
    response = app_client.put("/api/settings", {"temperature": 0.4}, headers={"Origin": ALLOWED})
    assert response.status_code == 200, response.text
    assert response.headers["Access-Control-Allow-Origin"] == ALLOWED


# --- security headers ------------------------------------------------------------------------------

def test_security_headers_on_json(app_server: InProcessServer, app_client: SignedClient) -> None:
    for response in (app_client.get("/api/settings"), app_server.http().get("/api/health"),
                     app_server.http().get("/api/settings")):
        # A sealed answer's type is the seal's; health and gate refusals are plain JSON.
        assert response.headers["Content-Type"].split(";")[0] in ("application/json", "application/privchat-e2e"), response.headers
        assert response.headers["Cache-Control"] == "no-store"
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert response.headers["Referrer-Policy"] == "no-referrer"
        assert "default-src 'none'" in response.headers["Content-Security-Policy"]


# --- rate limits -----------------------------------------------------------------------------------

def test_registration_rate_limit(app_factory: Callable[..., InProcessServer]) -> None:
    server = app_factory({"rate_limits": {"registration_per_minute": 2}})
    codes = [server.pair_code() for _ in range(3)]
    for code in codes[:2]:
        assert server.client(TestDevice()).register(code).status_code == 201
    response = server.client(TestDevice()).register(codes[2])
    assert_error(response, 429, "rate_limited")
    assert int(response.headers["Retry-After"]) > 0


def test_signed_rate_limit(app_factory: Callable[..., InProcessServer]) -> None:
    server = app_factory({"rate_limits": {"signed_per_minute": 3}})
    client = server.pair()
    for _ in range(3):
        assert client.get("/api/settings").status_code == 200
    response = client.get("/api/settings")
    assert_error(response, 429, "rate_limited")
    assert int(response.headers["Retry-After"]) > 0
    # per device: another device still has its own budget
    other = server.pair()
    assert other.get("/api/settings").status_code == 200


def test_no_answer_counts_a_devices_requests_outside_the_seal(app_factory: Callable[..., InProcessServer]) -> None:
    """quart-rate-limiter writes RateLimit-Limit/-Remaining/-Reset on every answer to a limited route;
    outside the seal they would tell the edge how many requests each device made. The limit itself
    still holds (the 429 here is the control: the limiter is active on these routes, so its header
    hook would have run), but no answer, passed or refused, carries the counters."""
    server = app_factory({"rate_limits": {"signed_per_minute": 3}})
    client = server.pair()
    answers = [client.get("/api/settings") for _ in range(4)]
    assert [a.status_code for a in answers] == [200, 200, 200, 429]
    for answer in answers:
        counters = [name for name in answer.headers if name.lower().startswith("ratelimit")]
        assert not counters, (answer.status_code, counters)
