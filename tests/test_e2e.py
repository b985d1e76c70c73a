"""End-to-end payload encryption (docs/E2E.md), the backend's half, through the in-process app.

Each refusal is checked for its code and for losing nothing (a refused write changes nothing), and
each property of the answers (sealed whatever the status, numbered, final-flagged) is checked on
the bytes that crossed the wire. The page's half and Python↔JS interop are in
pages/test/e2e*.test.js and tests/test_e2e_interop.py; the capture of everything crossing the edge
while Chromium uses the page is in tests/test_tunnel_path.py.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any, Iterator

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from privchat.e2e.keys import public_jwk_of, rotate
from privchat.e2e.suite import SEALED_EVENT, SUITE
from privchat.jwk import thumbprint
from tests.support.e2e import ChunkOpener, OpenedResponse, SealError, SealedExchange, ServerKey, b64url_decode, code_mac, open_events
from tests.support.inprocess import InProcessServer, factory
from tests.support.server import SignedClient
from tests.support.signing import TestDevice

VECTORS = Path(__file__).resolve().parents[1] / "pages" / "test" / "vectors" / "rfc9180-a3-base.json"
MARKER = "zebra-quartz-4417"


@pytest.fixture
def apps(tmp_path: Path) -> Iterator:
    yield from factory(tmp_path)


def settings_of(client: SignedClient) -> dict[str, Any]:
    response = client.get("/api/settings")
    assert response.status_code == 200 and response.sealed
    return response.json()


def writable(settings: dict[str, Any], **changes: Any) -> dict[str, Any]:
    return {**{k: v for k, v in settings.items() if k != "defaults"}, **changes}


def other_server_key() -> ServerKey:
    private = ec.generate_private_key(ec.SECP256R1())
    jwk = public_jwk_of(private)
    return ServerKey(kid=thumbprint(jwk), jwk=jwk)


def send_sealed(client: SignedClient, method: str, path: str, exchange: SealedExchange, body: bytes,
                header: str | None = None, *, opened: bool = True) -> Any:
    """Send a request whose sealed body and header a test has prepared (or spoiled) itself; its
    answer opened with the exchange's context (``opened=False``: the raw answer)."""
    headers = {"Content-Type": "application/privchat-e2e"} if body else {}
    headers.update(client.device.sign(method, path, body, e2e=header or exchange.header))
    response = client.http.send(client.http.build_request(method, path, content=body, headers=headers))
    return OpenedResponse(response, exchange.opener(response), stream=False) if opened else response


# --- the suite itself: RFC 9180 known answers through the backend's library -------------------------

def test_rfc9180_a3_known_answers_open_and_export_through_pyhpke() -> None:
    vectors = json.loads(VECTORS.read_text())
    assert (vectors["kem_id"], vectors["kdf_id"], vectors["aead_id"], vectors["mode"]) == (0x10, 1, 1, 0)
    sk_r = SUITE.kem.deserialize_private_key(bytes.fromhex(vectors["skRm"]))
    context = SUITE.create_recipient_context(bytes.fromhex(vectors["enc"]), sk_r, bytes.fromhex(vectors["info"]))
    # The context counts its own sequence numbers, so the published ones that follow each other
    # from 0 are opened in order (A.3.1 publishes 0 to 9, then 255 and 256).
    in_order = [e for e in sorted(vectors["encryptions"], key=lambda e: e["seq"])]
    opened = 0
    for item in in_order:
        if item["seq"] != opened:
            break
        assert context.open(bytes.fromhex(item["ct"]), bytes.fromhex(item["aad"])) == bytes.fromhex(item["pt"])
        opened += 1
    assert opened >= 2
    for item in vectors["exports"]:
        assert context.export(bytes.fromhex(item["exporter_context"]), item["L"]) == bytes.fromhex(item["exported_value"])


# --- requests -------------------------------------------------------------------------------------------

def test_a_plain_request_is_refused_and_changes_nothing(app_client: SignedClient) -> None:
    before = settings_of(app_client)
    response = app_client.request("PUT", "/api/settings", json_body=writable(before, system_prompt=MARKER), seal=False)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "e2e_required"
    assert "Privchat-E2E-Nonce" not in response.headers
    assert settings_of(app_client) == before


def test_an_unsigned_request_still_hears_it_is_unsigned(app_server: InProcessServer) -> None:
    response = app_server.http().get("/api/settings")
    assert response.status_code == 401 and response.json()["error"]["code"] == "signature_missing"


def test_every_answer_is_sealed_and_its_content_is_not_in_the_bytes(app_client: SignedClient) -> None:
    settings = settings_of(app_client)
    assert app_client.put("/api/settings", writable(settings, system_prompt=MARKER)).status_code == 200
    response = app_client.get("/api/settings")
    assert response.sealed and response.headers["content-type"] == "application/privchat-e2e"
    assert response.json()["system_prompt"] == MARKER
    assert MARKER.encode() not in response.raw_content
    # Errors from a handler are sealed too: they exist only after the request opened.
    missing = app_client.get("/api/history/no-such-conversation")
    assert missing.status_code == 404 and missing.sealed
    assert missing.json()["error"]["code"] == "not_found" and b"not_found" not in missing.raw_content
    app_client.put("/api/settings", writable(settings))


def test_a_flipped_bit_in_the_body_is_refused_and_changes_nothing(app_client: SignedClient) -> None:
    before = settings_of(app_client)
    body = json.dumps(writable(before, system_prompt=MARKER)).encode()
    exchange = SealedExchange(app_client.server_key(), "PUT", "/api/settings", app_client.device.device_id, body)
    spoiled = bytearray(exchange.sealed_body)
    spoiled[len(spoiled) // 2] ^= 0x01
    response = send_sealed(app_client, "PUT", "/api/settings", exchange, bytes(spoiled))
    assert response.status_code == 400 and response.json()["error"]["code"] == "e2e_open_failed"
    assert settings_of(app_client) == before
    # Negative control: the same request unspoiled goes through.
    assert send_sealed(app_client, "PUT", "/api/settings", exchange, exchange.sealed_body).status_code == 200
    app_client.put("/api/settings", writable(before))


def test_a_request_sealed_to_another_key_is_refused(app_client: SignedClient) -> None:
    stranger = other_server_key()
    unknown = app_client.request("GET", "/api/settings", server_key=stranger)
    assert unknown.status_code == 400 and unknown.json()["error"]["code"] == "e2e_key_unknown"
    # Sealed to another key but naming the server's kid: the body does not open.
    before = settings_of(app_client)
    body = json.dumps(writable(before, system_prompt=MARKER)).encode()
    exchange = SealedExchange(stranger, "PUT", "/api/settings", app_client.device.device_id, body)
    header = exchange.header.replace(stranger.kid, app_client.server_key().kid)
    response = send_sealed(app_client, "PUT", "/api/settings", exchange, exchange.sealed_body, header=header, opened=False)
    # Refused, sealed under the server's context for that enc, which the stranger's does not open.
    assert response.status_code == 400 and "Privchat-E2E-Nonce" in response.headers
    assert settings_of(app_client) == before


def test_the_context_is_bound_to_method_path_and_device(app_client: SignedClient, app_server: InProcessServer) -> None:
    before = settings_of(app_client)
    body = json.dumps(writable(before, system_prompt=MARKER)).encode()
    key = app_client.server_key()
    for method, path, device_id in (("POST", "/api/settings", app_client.device.device_id),
                                    ("PUT", "/api/history/import", app_client.device.device_id),
                                    ("PUT", "/api/settings", TestDevice().device_id)):
        exchange = SealedExchange(key, method, path, device_id, body)
        response = send_sealed(app_client, "PUT", "/api/settings", exchange, exchange.sealed_body, opened=False)
        # Refused (the body does not open under the request's real method, path and device), and
        # sealed under that real context, which the sender's mismatched one cannot open either.
        assert response.status_code == 400 and "Privchat-E2E-Nonce" in response.headers, (method, path)
        with pytest.raises(SealError):
            exchange.open_json(response, response.content)
    assert settings_of(app_client) == before


def test_the_encapsulated_key_is_covered_by_the_signature(app_client: SignedClient) -> None:
    exchange = SealedExchange(app_client.server_key(), "GET", "/api/settings", app_client.device.device_id, b"")
    headers = app_client.device.sign("GET", "/api/settings", b"", e2e=exchange.header)
    swapped = SealedExchange(app_client.server_key(), "GET", "/api/settings", app_client.device.device_id, b"")
    headers["Privchat-E2E"] = swapped.header  # an edge swapping in its own context
    response = app_client.http.send(app_client.http.build_request("GET", "/api/settings", headers=headers))
    # Refused, and sealed under the context the swapped header made: only its maker opens it.
    assert response.status_code == 401 and swapped.open_json(response, response.content)["error"]["code"] == "signature_invalid"
    with pytest.raises(SealError):
        exchange.open_json(response, response.content)


V1_ENC = base64.b64encode(bytes([4]) + bytes(64)).decode()


@pytest.mark.parametrize("header, code", [
    ('v=2, kid="x"', "e2e_malformed"),
    ('v=2, kid="x", enc=:AAAA:', "e2e_malformed"),
    (f'v=3, kid="x", enc=:{V1_ENC}:', "e2e_malformed"),
    (f'v="2", kid="x", enc=:{V1_ENC}:', "e2e_malformed"),
    ("not a dictionary (", "e2e_malformed"),
    # A page from before version 2 (no v member): told to reload, not that its header is broken.
    (f'kid="x", enc=:{V1_ENC}:', "e2e_version_old"),
    (f'v=1, kid="x", enc=:{V1_ENC}:', "e2e_version_old"),
])
def test_a_malformed_header_is_refused(app_client: SignedClient, header: str, code: str) -> None:
    headers = app_client.device.sign("GET", "/api/settings", b"", e2e=header)
    response = app_client.http.send(app_client.http.build_request("GET", "/api/settings", headers=headers))
    assert response.status_code == 400 and response.json()["error"]["code"] == code


# --- answers --------------------------------------------------------------------------------------------

# Long enough that its replay takes three frames of the largest size, so there is an order to break.
LONG_TAIL = " and on" * 5000


def finished_reply(client: SignedClient) -> str:
    """A finished reply holding the marker, written by import (the in-process app runs no model)."""
    imported = client.post("/api/history/import", {
        "format": "privchat-export", "version": 1, "exported_at": 1.0,
        "conversations": [{"id": "e2e-stream", "title": "t", "created_at": 1.0, "updated_at": 1.0, "messages": [
            {"id": "e2e-user", "role": "user", "content": "hello", "created_at": 1.0, "status": "complete"},
            {"id": "e2e-reply", "role": "assistant", "content": f"a reply with {MARKER}" + LONG_TAIL, "created_at": 2.0,
             "status": "complete"},
        ]}]})
    assert imported.status_code == 200, imported.text
    return "e2e-reply"


def raw_stream(client: SignedClient, path: str) -> tuple[SealedExchange, bytes, list[str]]:
    """One sealed event stream as it crossed the wire: its exchange, response nonce and raw events."""
    exchange = SealedExchange(client.server_key(), "GET", path, client.device.device_id, b"")
    response = send_sealed(client, "GET", path, exchange, b"", opened=False)
    assert response.status_code == 200, response.text
    nonce = b64url_decode(response.headers["Privchat-E2E-Nonce"])
    return exchange, nonce, [block + "\n\n" for block in response.text.split("\n\n") if block]


def test_stream_frames_are_sealed_numbered_and_final_flagged(app_client: SignedClient) -> None:
    reply_id = finished_reply(app_client)
    exchange, nonce, events = raw_stream(app_client, f"/api/chat/{reply_id}/stream")
    assert len(events) == 3 and all(e.startswith(f"event: {SEALED_EVENT}\ndata: ") for e in events)
    sizes = [len(b64url_decode(e.split("data: ", 1)[1].strip())) for e in events]
    assert sizes[:2] == [16384, 16384] and sizes[2] in (1024, 4096, 16384), sizes
    assert MARKER.encode() not in "".join(events).encode() and b"snapshot" not in "".join(events).encode()

    def opened(spoil) -> str:
        try:
            text = "".join(open_events(ChunkOpener(exchange.secret, exchange.enc, nonce), iter(spoil(list(events)))))
        except SealError as exc:
            return exc.code
        assert MARKER in text and "event: done" in text
        return "whole"

    def flip(items: list[str]) -> list[str]:
        head, data = items[0].rsplit("data: ", 1)
        raw = bytearray(b64url_decode(data.strip()))
        raw[3] ^= 0x80
        return [head + "data: " + base64.urlsafe_b64encode(bytes(raw)).rstrip(b"=").decode() + "\n\n"] + items[1:]

    assert opened(lambda items: items) == "whole"  # the control: untouched, it opens
    assert opened(flip) == "e2e_event_invalid"
    assert opened(lambda items: items[1:]) == "e2e_event_invalid"  # dropped
    assert opened(lambda items: items[::-1]) == "e2e_event_invalid"  # reordered
    assert opened(lambda items: [items[0], items[0], items[1]]) == "e2e_event_invalid"  # replayed
    assert opened(lambda items: items[:2]) == "e2e_truncated"  # cut before the final frame
    assert opened(lambda items: items + items[:1]) == "e2e_event_invalid"  # anything after the final one


def test_a_reattach_is_a_new_context_with_its_own_numbering(app_client: SignedClient) -> None:
    reply_id = finished_reply(app_client)
    first, first_nonce, first_events = raw_stream(app_client, f"/api/chat/{reply_id}/stream")
    second, second_nonce, second_events = raw_stream(app_client, f"/api/chat/{reply_id}/stream")
    assert first_nonce != second_nonce and first_events != second_events
    # An answer to one request does not open under another request's context.
    with pytest.raises(SealError):
        "".join(open_events(ChunkOpener(second.secret, second.enc, second_nonce), iter(first_events)))


# --- the key: published, pinned at pairing, rotated ------------------------------------------------------

def test_health_publishes_the_key_whose_thumbprint_is_its_kid(app_server: InProcessServer) -> None:
    e2e = app_server.http().get("/api/health").json()["e2e"]
    assert thumbprint(e2e["jwk"]) == e2e["kid"] and set(e2e["jwk"]) == {"crv", "kty", "x", "y"}
    assert len(e2e["fingerprint"]) == 19


def test_pairing_proves_the_code_without_sending_it_and_confirms_the_key(apps) -> None:
    app = apps()
    code = app.pair_code()
    device = TestDevice()
    client = app.client(device)
    # A stand-in key on the path: the page's proof is bound to the kid it sealed to, so the real
    # server finds no code for it (a wrong try), even with the right code.
    stand_in = other_server_key()
    proof = code_mac(b"privchat pairing proof v1", code, device.device_id, stand_in.kid)
    refused = client.post("/api/auth/device", {"pairing_proof": proof, "public_key": device.public_jwk, "name": "x"})
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "pairing_invalid"
    body = {"pairing_proof": code_mac(b"privchat pairing proof v1", code, device.device_id, client.server_key().kid),
            "public_key": device.public_jwk, "name": "phone"}
    sent = client.post("/api/auth/device", body)
    assert sent.status_code == 201, sent.text
    confirmation = sent.json()["key_confirmation"]
    assert confirmation == code_mac(b"privchat pairing confirm v1", code, device.device_id, client.server_key().kid)
    assert confirmation != code_mac(b"privchat pairing confirm v1", code, device.device_id, stand_in.kid)
    assert code.replace("-", "").encode() not in sent.raw_content and b"phone" not in sent.raw_content


def test_rotation_keeps_the_old_key_for_the_grace_period_and_tells_the_new_one(apps) -> None:
    app = apps()
    client = app.pair()
    old = client.server_key()
    new_key, _retired = app.run(rotate(app.state.database))
    health = app.http().get("/api/health").json()["e2e"]
    assert health["kid"] == new_key.kid != old.kid
    told = client.get("/api/e2e/key", server_key=old)  # sealed to the pinned, retired key
    assert told.status_code == 200 and told.sealed and told.json()["kid"] == new_key.kid
    assert told.meta["kid"] == new_key.kid  # every sealed answer names the current key
    assert client.get("/api/settings", server_key=ServerKey(new_key.kid, new_key.public_jwk)).status_code == 200


def test_a_retired_key_opens_only_the_key_route(apps) -> None:
    """Whoever holds a leaked old key learns the new public key and nothing else: every other route
    refuses it, sealed, naming the current key, so the page moves on and sends again."""
    app = apps()
    client = app.pair()
    old = client.server_key()
    new_key, _retired = app.run(rotate(app.state.database))
    for method, path in (("GET", "/api/settings"), ("GET", "/api/history"), ("POST", "/api/search")):
        refused = client.request(method, path, server_key=old, json_body={"q": "x"} if method == "POST" else None)
        assert refused.status_code == 409 and refused.sealed, (path, refused.status_code)
        assert refused.json()["error"]["code"] == "e2e_key_retired" and refused.meta["kid"] == new_key.kid
    assert client.get("/api/e2e/key", server_key=old).status_code == 200  # the control: the key route opens


def test_rotate_revoke_old_refuses_the_old_key_everywhere(apps) -> None:
    app = apps()
    client = app.pair()
    old = client.server_key()
    assert client.get("/api/e2e/key", server_key=old).status_code == 200  # before: it opens
    new_key, _retired = app.run(rotate(app.state.database, revoke_old=True))
    for path in ("/api/e2e/key", "/api/settings"):
        refused = client.get(path, server_key=old)
        assert refused.status_code == 400 and refused.json()["error"]["code"] == "e2e_key_unknown", path
    assert client.get("/api/settings", server_key=ServerKey(new_key.kid, new_key.public_jwk)).status_code == 200


def test_refusals_after_the_header_are_sealed_and_name_the_status(apps) -> None:
    """Once the E2E header parses and names a key the server holds, a refusal is sealed, the
    signature's too, so the page can believe it; the meta line repeats the status, and a reader
    refuses an answer whose outer status was changed."""
    app = apps()
    client = app.pair()
    stranger = app.client(TestDevice())
    unknown = stranger.get("/api/settings")
    assert unknown.status_code == 401 and unknown.sealed and unknown.json()["error"]["code"] == "device_unknown"
    assert unknown.meta["status"] == 401
    app.revoke(client.device.device_id)
    revoked = client.get("/api/settings")
    assert revoked.status_code == 403 and revoked.sealed and revoked.json()["error"]["code"] == "device_revoked"
    # An edge that turns the refusal into a success: the status inside says otherwise.
    exchange = SealedExchange(client.server_key(), "GET", "/api/settings", client.device.device_id, b"")
    answer = send_sealed(client, "GET", "/api/settings", exchange, b"", opened=False)
    answer.status_code = 200
    with pytest.raises(SealError) as changed:
        exchange.open_json(answer, answer.content)
    assert changed.value.code == "e2e_status_mismatch"


def test_past_the_grace_period_the_old_key_is_refused(apps) -> None:
    app = apps({"e2e": {"rotation_grace_hours": 0}})
    client = app.pair()
    old = client.server_key()
    app.run(rotate(app.state.database))
    refused = client.get("/api/e2e/key", server_key=old)
    assert refused.status_code == 400 and refused.json()["error"]["code"] == "e2e_key_unknown"
    assert client.get("/api/e2e/key", server_key=client.server_key(refresh=True)).status_code == 200


def test_the_private_key_is_stored_sealed(apps) -> None:
    app = apps()
    kid = app.http().get("/api/health").json()["e2e"]["kid"]
    database_file = app.state.config.database_path
    app.run(app.state.database.checkpoint())
    raw = database_file.read_bytes()
    assert b"PRIVATE KEY" not in raw and kid.encode() in raw  # the row is there; its key is not readable
