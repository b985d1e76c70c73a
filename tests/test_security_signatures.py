"""Attack matrix for the RFC 9421 request signatures, against the app in this process.

Every case sends one crafted request and checks the exact status and error code, so a check that
silently stopped running (or started answering with another code) fails here. Each refusal has a
control next to it that differs only in the attacked detail and passes, so a test cannot pass just
because the server refuses everything.

The requests go through Quart's test client to the app ``privchat serve`` runs (tests/support/inprocess.py):
the gate's decisions need no socket. What needs a real process keeps a live server: the CLI revoking
a device while the server runs, and a restart that must not reopen the replay window.
"""

from __future__ import annotations

import json
import time
from typing import Any

import httpx
import pytest

from tests.support.e2e import OpenedResponse, SealError, SealedExchange, ServerKey
from tests.support.inprocess import InProcessServer
from tests.support.server import LiveServer, SignedClient
from tests.support.signing import COMPONENTS, TestDevice, content_digest

SETTINGS_BODY = json.dumps({"temperature": 0.5}).encode()
NO_MODEL = {"model": {"enabled": False}}  # the live servers here test the process, not the model


# Every request here is sealed as the page seals it (docs/E2E.md), so that what is attacked is the
# signature alone: signed() seals the body it is given and signs the sealed bytes; send() puts the
# sealed bytes on the wire when it is handed that same body (any other body goes as given: an
# attack), and opens the answer.
_SEALED: dict[str, tuple[bytes, SealedExchange]] = {}


def send(server: InProcessServer | LiveServer, method: str, path: str, headers: dict[str, str], body: bytes = b"") -> Any:
    all_headers = dict(headers)
    plaintext, exchange = _SEALED.get(headers.get("Privchat-E2E", ""), (None, None))
    wire = exchange.sealed_body if exchange is not None and body == plaintext else body
    if wire:
        all_headers.setdefault("Content-Type", "application/privchat-e2e" if exchange is not None else "application/json")
    if isinstance(server, LiveServer):
        response = httpx.request(method, server.url + path, headers=all_headers, content=wire, timeout=30)
    else:
        response = server.http().request(method, path, headers=all_headers, content=wire)
    if exchange is None:
        return response
    try:
        return OpenedResponse(response, exchange.opener(response), stream=False)
    except SealError:
        return response  # sealed under a context the sender does not have (see assert_refused_unreadably)


def assert_error(response: httpx.Response, status: int, code: str) -> None:
    assert response.status_code == status, f"expected {status} {code}, got {response.status_code}: {response.text}"
    assert response.json()["error"]["code"] == code, response.text
    assert response.json()["error"]["message"], response.text


def assert_refused_unreadably(response: Any, status: int) -> None:
    """A request changed on the way (method, path or query) is refused, and the refusal is sealed under
    the context the changed request made: the sender's own context does not open it, so the page
    shows that an answer was changed on the way rather than any reason an edge might write."""
    assert response.status_code == status, response.text
    assert not isinstance(response, OpenedResponse) and "Privchat-E2E-Nonce" in response.headers, response.headers
    assert b"signature" not in response.content


def signed(client: SignedClient, method: str, path: str, body: bytes = b"", **sign: Any) -> dict[str, str]:
    return signed_by(client.device, client.server_key(), method, path, body, **sign)


def signed_by(device: TestDevice, server_key: ServerKey, method: str, path: str, body: bytes = b"", **sign: Any) -> dict[str, str]:
    exchange = SealedExchange(server_key, method, path, sign.get("key_id") or device.device_id, body)
    headers = device.sign(method, path, exchange.sealed_body, e2e=exchange.header, **sign)
    headers["Privchat-E2E"] = exchange.header
    _SEALED[exchange.header] = (body, exchange)
    return headers


def key_of(server: InProcessServer | LiveServer) -> ServerKey:
    health = server.health() if isinstance(server, LiveServer) else server.http().get("/api/health").json()
    return ServerKey.from_health(health)


# --- controls -------------------------------------------------------------------------------------

def test_valid_signed_request_passes(app_server: InProcessServer, app_client: SignedClient) -> None:
    response = send(app_server, "GET", "/api/settings", signed(app_client, "GET", "/api/settings"))
    assert response.status_code == 200, response.text
    assert set(response.json()) >= {"system_prompt", "temperature", "max_tokens"}


def test_valid_signed_request_with_body_passes(app_server: InProcessServer, app_client: SignedClient) -> None:
    headers = signed(app_client, "PUT", "/api/settings", SETTINGS_BODY)
    response = send(app_server, "PUT", "/api/settings", headers, SETTINGS_BODY)
    assert response.status_code == 200, response.text
    assert response.json()["temperature"] == 0.5


# --- who signs -----------------------------------------------------------------------------------

def test_no_signature(app_server: InProcessServer) -> None:
    assert_error(send(app_server, "GET", "/api/settings", {}), 401, "signature_missing")


def test_signature_without_signature_input(app_server: InProcessServer, app_client: SignedClient) -> None:
    headers = signed(app_client, "GET", "/api/settings")
    del headers["Signature-Input"]
    assert_error(send(app_server, "GET", "/api/settings", headers), 401, "signature_missing")


def test_malformed_signature_header(app_server: InProcessServer, app_client: SignedClient) -> None:
    headers = signed(app_client, "GET", "/api/settings")
    headers["Signature"] = "sig1=:not base64 ((("
    assert_error(send(app_server, "GET", "/api/settings", headers), 401, "signature_malformed")


def test_signature_by_unknown_key(app_server: InProcessServer) -> None:
    stranger = TestDevice(name="stranger")
    assert_error(send(app_server, "GET", "/api/settings", signed_by(stranger, key_of(app_server), "GET", "/api/settings")), 401, "device_unknown")


def test_signature_by_wrong_key_for_a_paired_keyid(app_server: InProcessServer, app_client: SignedClient) -> None:
    """An attacker who knows a paired device's id (it is no secret) signs with their own key."""
    attacker = TestDevice(name="attacker")
    headers = signed_by(attacker, key_of(app_server), "GET", "/api/settings", key_id=app_client.device.device_id)
    assert_error(send(app_server, "GET", "/api/settings", headers), 401, "signature_invalid")


def test_signature_by_revoked_device(app_server: InProcessServer) -> None:
    client = app_server.pair(name="to be revoked")
    app_server.revoke(client.device.device_id)  # the store call `privchat devices revoke` makes
    assert_error(client.get("/api/settings"), 403, "device_revoked")


def test_cli_revoke_while_running_refuses_the_very_next_request(server_factory: Any) -> None:
    """Live: the CLI is another process writing the database under the running server."""
    server = server_factory(NO_MODEL)
    client = server.pair(name="revoked while running")
    assert client.get("/api/settings").status_code == 200
    server.cli("devices", "revoke", client.device.device_id)
    assert_error(client.get("/api/settings"), 403, "device_revoked")
    assert_error(client.get("/api/auth/device"), 403, "device_revoked")


# --- replay and freshness --------------------------------------------------------------------------

def test_same_signed_request_twice_is_replayed(app_server: InProcessServer, app_client: SignedClient) -> None:
    headers = signed(app_client, "GET", "/api/settings")
    first = send(app_server, "GET", "/api/settings", headers)
    assert first.status_code == 200, first.text
    assert_error(send(app_server, "GET", "/api/settings", headers), 401, "replayed")


def test_replayed_body_request_is_refused_and_changes_nothing(app_server: InProcessServer, app_client: SignedClient) -> None:
    body = json.dumps({"max_tokens": 77}).encode()
    headers = signed(app_client, "PUT", "/api/settings", body)
    assert send(app_server, "PUT", "/api/settings", headers, body).status_code == 200
    app_client.put("/api/settings", {"max_tokens": 99})
    assert_error(send(app_server, "PUT", "/api/settings", headers, body), 401, "replayed")
    assert app_client.get("/api/settings").json()["max_tokens"] == 99


def test_created_too_old(app_server: InProcessServer, app_client: SignedClient) -> None:
    headers = signed(app_client, "GET", "/api/settings", created=time.time() - 61)
    assert_error(send(app_server, "GET", "/api/settings", headers), 401, "signature_expired")


def test_created_inside_the_window_passes(app_server: InProcessServer, app_client: SignedClient) -> None:
    headers = signed(app_client, "GET", "/api/settings", created=time.time() - 40)
    assert send(app_server, "GET", "/api/settings", headers).status_code == 200


def test_created_in_the_future(app_server: InProcessServer, app_client: SignedClient) -> None:
    headers = signed(app_client, "GET", "/api/settings", created=time.time() + 30)
    assert_error(send(app_server, "GET", "/api/settings", headers), 401, "clock_skew")


def test_created_slightly_in_the_future_is_tolerated(app_server: InProcessServer, app_client: SignedClient) -> None:
    headers = signed(app_client, "GET", "/api/settings", created=time.time() + 2)
    assert send(app_server, "GET", "/api/settings", headers).status_code == 200


# --- the request changed after signing ------------------------------------------------------------

def test_body_changed_after_signing(app_server: InProcessServer, app_client: SignedClient) -> None:
    """The body is swapped in transit, the signed Content-Digest left as it was."""
    headers = signed(app_client, "PUT", "/api/settings", SETTINGS_BODY)
    tampered = json.dumps({"temperature": 1.9}).encode()
    assert_error(send(app_server, "PUT", "/api/settings", headers, tampered), 401, "digest_mismatch")


def test_body_and_digest_changed_after_signing(app_server: InProcessServer, app_client: SignedClient) -> None:
    """The body is swapped and a matching Content-Digest recomputed: the signature no longer covers it."""
    headers = signed(app_client, "PUT", "/api/settings", SETTINGS_BODY)
    tampered = json.dumps({"temperature": 1.9}).encode()
    headers["Content-Digest"] = content_digest(tampered)
    assert_error(send(app_server, "PUT", "/api/settings", headers, tampered), 401, "signature_invalid")


@pytest.mark.parametrize(("signed_as", "sent_as"), [
    pytest.param(("GET", "/api/settings"), ("GET", "/api/devices"), id="path"),
    pytest.param(("GET", "/api/history"), ("DELETE", "/api/history"), id="method"),
    pytest.param(("GET", "/api/history?limit=1"), ("GET", "/api/history?limit=2"), id="query"),
    pytest.param(("GET", "/api/history"), ("GET", "/api/history?limit=2"), id="query-added"),
])
def test_request_line_changed_after_signing(app_server: InProcessServer, app_client: SignedClient,
                                            signed_as: tuple[str, str], sent_as: tuple[str, str]) -> None:
    """Signed for one method, path and query, sent with another: the control is test_signed_query_passes."""
    headers = signed(app_client, *signed_as)
    assert_refused_unreadably(send(app_server, *sent_as, headers), 401)


def test_signed_query_passes(app_server: InProcessServer, app_client: SignedClient) -> None:
    headers = signed(app_client, "GET", "/api/history?limit=1")
    response = send(app_server, "GET", "/api/history?limit=1", headers)
    assert response.status_code == 200, response.text
    assert "conversations" in response.json()


# --- Content-Digest --------------------------------------------------------------------------------

def test_content_digest_missing(app_server: InProcessServer, app_client: SignedClient) -> None:
    headers = signed(app_client, "PUT", "/api/settings", SETTINGS_BODY)
    del headers["Content-Digest"]
    assert_error(send(app_server, "PUT", "/api/settings", headers, SETTINGS_BODY), 401, "digest_missing")


def test_content_digest_missing_on_empty_body(app_server: InProcessServer, app_client: SignedClient) -> None:
    headers = signed(app_client, "GET", "/api/settings")
    del headers["Content-Digest"]
    assert_error(send(app_server, "GET", "/api/settings", headers), 401, "digest_missing")


def test_content_digest_wrong_but_signed(app_server: InProcessServer, app_client: SignedClient) -> None:
    """A correctly signed request whose (signed) digest is not the digest of the body sent."""
    headers = signed(app_client, "PUT", "/api/settings", SETTINGS_BODY, digest=content_digest(b"something else"))
    assert headers["Content-Digest"] == content_digest(b"something else")
    assert_error(send(app_server, "PUT", "/api/settings", headers, SETTINGS_BODY), 401, "digest_mismatch")


# --- the profile: encoding, algorithm, tag, components ---------------------------------------------

def test_der_encoded_signature(app_server: InProcessServer, app_client: SignedClient) -> None:
    headers = signed(app_client, "GET", "/api/settings", der=True)
    assert_error(send(app_server, "GET", "/api/settings", headers), 401, "signature_invalid")


def test_another_algorithm(app_server: InProcessServer, app_client: SignedClient) -> None:
    headers = signed(app_client, "GET", "/api/settings", alg="x")
    assert 'alg="ecdsa-p384-sha384"' in headers["Signature-Input"]
    assert_error(send(app_server, "GET", "/api/settings", headers), 401, "signature_algorithm")


def test_another_tag(app_server: InProcessServer, app_client: SignedClient) -> None:
    headers = signed(app_client, "GET", "/api/settings", tag="someone-else")
    assert_error(send(app_server, "GET", "/api/settings", headers), 401, "signature_tag")


def test_component_query_left_out(app_server: InProcessServer, app_client: SignedClient) -> None:
    components = tuple(c for c in COMPONENTS if c != "@query")
    headers = signed(app_client, "GET", "/api/history?limit=1", components=components)
    assert_error(send(app_server, "GET", "/api/history?limit=1", headers), 401, "signature_components")


def test_component_content_digest_left_out(app_server: InProcessServer, app_client: SignedClient) -> None:
    components = tuple(c for c in COMPONENTS if c != "content-digest")
    headers = signed(app_client, "PUT", "/api/settings", SETTINGS_BODY, components=components)
    headers.setdefault("Content-Digest", content_digest(SETTINGS_BODY))
    assert_error(send(app_server, "PUT", "/api/settings", headers, SETTINGS_BODY), 401, "signature_components")


def test_extra_component_is_refused(app_server: InProcessServer, app_client: SignedClient) -> None:
    headers = signed(app_client, "GET", "/api/settings", components=(*COMPONENTS, "@authority"))
    assert_error(send(app_server, "GET", "/api/settings", headers), 401, "signature_components")


# --- device routes ---------------------------------------------------------------------------------

def test_who_am_i_returns_the_calling_device(app_client: SignedClient) -> None:
    response = app_client.get("/api/auth/device")
    assert response.status_code == 200, response.text
    record = response.json()
    assert record["device_id"] == app_client.device.device_id
    assert record["status"] == "active"
    assert record["revoked_at"] is None


def test_devices_list_includes_the_caller(app_client: SignedClient) -> None:
    response = app_client.get("/api/devices")
    assert response.status_code == 200, response.text
    ids = {d["device_id"]: d["status"] for d in response.json()["devices"]}
    assert ids[app_client.device.device_id] == "active"


def test_delete_device_revokes_it(app_server: InProcessServer, app_client: SignedClient) -> None:
    other = app_server.pair(name="revoked over the API")
    assert other.get("/api/settings").status_code == 200
    response = app_client.delete(f"/api/devices/{other.device.device_id}")
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "revoked"
    assert_error(other.get("/api/settings"), 403, "device_revoked")
    listed = {d["device_id"]: d["status"] for d in app_client.get("/api/devices").json()["devices"]}
    assert listed[other.device.device_id] == "revoked"
    assert app_client.get("/api/settings").status_code == 200


def test_delete_unknown_device_is_404(app_client: SignedClient) -> None:
    assert_error(app_client.delete("/api/devices/no-such-device"), 404, "not_found")


def test_device_routes_need_a_signature(app_server: InProcessServer, app_client: SignedClient) -> None:
    assert_error(send(app_server, "GET", "/api/auth/device", {}), 401, "signature_missing")
    assert_error(send(app_server, "GET", "/api/devices", {}), 401, "signature_missing")
    assert_error(send(app_server, "DELETE", f"/api/devices/{app_client.device.device_id}", {}), 401, "signature_missing")


# --- replay survives a restart ---------------------------------------------------------------------

def test_restart_does_not_reopen_replay(server_factory: Any) -> None:
    """Live: a real stop and start of the process, so nothing held in memory can carry the nonces."""
    server = server_factory(NO_MODEL)
    client = server.pair()
    headers = signed(client, "GET", "/api/settings")
    assert send(server, "GET", "/api/settings", headers).status_code == 200
    server.stop()
    server.start()
    assert_error(send(server, "GET", "/api/settings", headers), 401, "replayed")
    assert client.get("/api/settings").status_code == 200


def test_concurrent_copies_of_one_signed_request_pass_once(app_server: InProcessServer, app_client: SignedClient) -> None:
    """The eight copies are handled at once on the app's one event loop, as Hypercorn's one loop would."""
    from concurrent.futures import ThreadPoolExecutor

    headers = signed(app_client, "GET", "/api/settings")
    with ThreadPoolExecutor(max_workers=8) as pool:
        responses = list(pool.map(lambda _: send(app_server, "GET", "/api/settings", headers), range(8)))
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [200] + [401] * 7, [r.text for r in responses]
    assert all(r.json()["error"]["code"] == "replayed" for r in responses if r.status_code == 401)
