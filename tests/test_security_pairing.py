"""Pairing a device: one-time codes (expiry, single use, lockout, stored hashed) and key checks.

Every registration here is signed by the key it registers unless the test is about exactly that,
so each refusal is caused by the one detail the test changes.
"""

from __future__ import annotations

import json
import re
import sqlite3
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from privchat.auth.pairing import ALPHABET, hash_code, normalise
from tests.support.server import LiveServer, SignedClient
from tests.support.e2e import code_mac
from tests.support.signing import TestDevice, b64url


def assert_error(response: httpx.Response, status: int, code: str) -> None:
    assert response.status_code == status, f"expected {status} {code}, got {response.status_code}: {response.text}"
    assert response.json()["error"]["code"] == code, response.text


def database_file(server: LiveServer) -> Path:
    return Path(server.config["storage"]["data_dir"]) / "privchat.sqlite3"


def register(server: LiveServer, device: TestDevice, code: str, *, public_key: dict[str, Any] | None = None,
             sign: dict[str, Any] | None = None) -> httpx.Response:
    """Register as the page does: a proof of the code bound to the server key, never the code itself."""
    client = SignedClient(server.url, device)
    proof = code_mac(b"privchat pairing proof v1", code, device.device_id, client.server_key().kid)
    body = {"pairing_proof": proof, "public_key": public_key if public_key is not None else device.public_jwk, "name": device.name}
    return client.post("/api/auth/device", body, sign=sign)


def private_d(device: TestDevice) -> str:
    return b64url(device.key.private_numbers().private_value.to_bytes(32, "big"))


# --- the code's life -------------------------------------------------------------------------------

def test_expired_code(server_factory: Any) -> None:
    server = server_factory({"auth": {"pairing_code_ttl_seconds": 30}})
    pairing = json.loads(server.cli("pair", "--json").stdout)
    assert pairing["expires_in_seconds"] == 30
    assert 25 <= pairing["expires_at"] - time.time() <= 31
    with sqlite3.connect(database_file(server), timeout=10) as conn:
        # The only open code on this fresh server (its hash is keyed, so it is found by state).
        changed = conn.execute("UPDATE pairing_codes SET expires_at = 0 WHERE used_at IS NULL AND voided_at IS NULL").rowcount
    assert changed == 1
    assert_error(register(server, TestDevice(), pairing["code"]), 403, "pairing_expired")
    # control: an unexpired code from the same server pairs
    assert register(server, TestDevice(), server.pair_code()).status_code == 201


def test_code_is_single_use(shared_server: LiveServer) -> None:
    code = shared_server.pair_code()
    first = register(shared_server, TestDevice(name="first"), code)
    assert first.status_code == 201, first.text
    assert_error(register(shared_server, TestDevice(name="second"), code), 403, "pairing_used")


def test_wrong_code(shared_server: LiveServer) -> None:
    shared_server.pair_code()  # resets the wrong-try count left by other tests
    assert_error(register(shared_server, TestDevice(), "ZZZZZ-ZZZZZ"), 403, "pairing_invalid")


def test_lockout_after_five_wrong_codes(server_factory: Any) -> None:
    server = server_factory()
    right = server.pair_code()
    wrong = "00000-00000" if normalise(right) != "0000000000" else "11111-11111"
    attacker = TestDevice(name="guesser")
    for attempt in range(1, 5):
        assert_error(register(server, attacker, wrong), 403, "pairing_invalid")
    assert_error(register(server, attacker, wrong), 423, "pairing_locked")  # the 5th wrong try
    owner = TestDevice(name="owner's phone")
    assert_error(register(server, owner, right), 423, "pairing_locked")  # even the right code now
    assert_error(register(server, owner, right), 423, "pairing_locked")
    fresh = server.pair_code()  # the owner at the machine unlocks by asking for a new code
    response = register(server, owner, fresh)
    assert response.status_code == 201, response.text
    assert response.json()["device_id"] == owner.device_id
    # the voided code stays refused; `privchat pair` purged its row, so it is now simply unknown
    assert_error(register(server, TestDevice(), right), 403, "pairing_invalid")


def test_code_is_stored_only_hashed_and_sealed(server_factory: Any) -> None:
    server = server_factory()
    code = server.pair_code()
    raw = normalise(code)
    with sqlite3.connect(database_file(server), timeout=10) as conn:
        hashes = [row[0] for row in conn.execute("SELECT code_hash FROM pairing_codes")]
    assert len(hashes) == 1 and len(hashes[0]) == 64  # control: the code is in the database, hashed
    # keyed with a secret derived from the data key: a copied database cannot test guesses offline
    assert hash_code(code) not in hashes
    server.stop()  # checkpoints the WAL into the main file
    files = [p for p in database_file(server).parent.iterdir() if p.name.startswith("privchat.sqlite3")]
    assert database_file(server) in files
    for path in files:
        data = path.read_bytes()
        for form in {code, raw, code.lower(), raw.lower()}:
            assert form.encode() not in data, f"raw pairing code found in {path.name}"
            assert form.encode("utf-16-le") not in data, f"raw pairing code (UTF-16) found in {path.name}"


# --- the key being registered ----------------------------------------------------------------------

def test_jwk_with_private_member_is_refused(shared_server: LiveServer) -> None:
    device = TestDevice()
    code = shared_server.pair_code()
    leaked = {**device.public_jwk, "d": private_d(device)}
    assert_error(register(shared_server, device, code, public_key=leaked), 400, "invalid_public_key")
    # control: the same key and code without "d" pairs (the refusal did not use up the code)
    assert register(shared_server, device, code).status_code == 201


def test_off_curve_point_is_refused(shared_server: LiveServer) -> None:
    device = TestDevice()
    numbers = device.key.public_key().public_numbers()
    y = numbers.y ^ 1  # a valid 32-byte coordinate, but (x, y) is no longer on P-256
    off_curve = {**device.public_jwk, "y": b64url(y.to_bytes(32, "big"))}
    assert_error(register(shared_server, device, shared_server.pair_code(), public_key=off_curve), 400, "invalid_public_key")


@pytest.mark.parametrize("change", [{"kty": "RSA"}, {"kty": "OKP"}, {"crv": "P-384"}, {"crv": "secp256k1"}],
                         ids=["kty-RSA", "kty-OKP", "crv-P-384", "crv-secp256k1"])
def test_wrong_kty_or_crv_is_refused(shared_server: LiveServer, change: dict[str, str]) -> None:
    device = TestDevice()
    assert_error(register(shared_server, device, shared_server.pair_code(), public_key={**device.public_jwk, **change}),
                 400, "invalid_public_key")


def test_short_coordinate_is_refused(shared_server: LiveServer) -> None:
    device = TestDevice()
    short = {**device.public_jwk, "x": b64url(b"\x01" * 31)}
    assert_error(register(shared_server, device, shared_server.pair_code(), public_key=short), 400, "invalid_public_key")


def test_registration_signed_by_another_key(shared_server: LiveServer) -> None:
    """Proof of possession: registering someone else's public key needs their private key."""
    victim, attacker = TestDevice(name="victim"), TestDevice(name="attacker")
    code = shared_server.pair_code()
    assert_error(register(shared_server, attacker, code, public_key=victim.public_jwk), 401, "signature_invalid")
    # keyid claims to be the registered key, the signature is the attacker's
    assert_error(register(shared_server, attacker, code, public_key=victim.public_jwk, sign={"key_id": victim.device_id}),
                 401, "signature_invalid")
    # control: the code was not used up, and the key's owner can register it
    assert register(shared_server, victim, code).status_code == 201


def test_unsigned_registration(shared_server: LiveServer) -> None:
    device = TestDevice()
    body = {"pairing_proof": "A" * 43, "public_key": device.public_jwk, "name": "unsigned"}
    assert_error(httpx.post(shared_server.url + "/api/auth/device", json=body), 401, "signature_missing")


def test_same_key_twice(shared_server: LiveServer) -> None:
    device = TestDevice()
    assert register(shared_server, device, shared_server.pair_code()).status_code == 201
    assert_error(register(shared_server, device, shared_server.pair_code()), 409, "device_exists")


# --- what `privchat pair` prints -------------------------------------------------------------------

def test_pair_json_fields(shared_server: LiveServer) -> None:
    payload = json.loads(shared_server.cli("pair", "--json").stdout)
    assert {"code", "url", "expires_at", "expires_in_seconds", "api_origin"} <= set(payload)
    assert len(set(ALPHABET)) == 32
    raw = normalise(payload["code"])
    assert re.fullmatch(f"[{ALPHABET}]{{10}}", raw), payload["code"]  # 10 * log2(32) = 50 bits >= 40
    assert f"#pair={payload['code']}&api=" in payload["url"]
    assert payload["url"].endswith("api=" + payload["api_origin"]) or f"api={payload['api_origin']}&" in payload["url"]
    codes = {normalise(json.loads(shared_server.cli("pair", "--json").stdout)["code"]) for _ in range(3)}
    assert len(codes | {raw}) == 4  # fresh randomness each time


def test_pair_human_output_has_a_qr_code(shared_server: LiveServer) -> None:
    output = shared_server.cli("pair").stdout
    assert re.search(r"Pairing code: [0-9A-Z]{5}-[0-9A-Z]{5}", output), output
    qr_lines = [line for line in output.splitlines() if len(line) >= 20 and set(line.strip()) <= set("█▀▄ ") and "█" in line]
    assert len(qr_lines) >= 10, output


def test_concurrent_use_of_one_code_pairs_one_device(shared_server: LiveServer) -> None:
    from concurrent.futures import ThreadPoolExecutor

    code = shared_server.pair_code()
    devices = [TestDevice(name=f"racer {i}") for i in range(6)]
    with ThreadPoolExecutor(max_workers=6) as pool:
        responses = list(pool.map(lambda d: register(shared_server, d, code), devices))
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [201] + [403] * 5, [r.text for r in responses]
    assert all(r.json()["error"]["code"] == "pairing_used" for r in responses if r.status_code == 403)


def test_the_same_key_registered_twice_at_once_is_409_and_the_other_code_stays_unused(shared_server: LiveServer) -> None:
    """Both requests pass the "already registered?" look-up before either commits;
    the one that commits second used to hit the UNIQUE constraint and answer 500. Now the look-up is
    repeated inside the transaction, so it answers 409 device_exists and rolls back: its code stays
    open. Negative control: before the change, 8 rounds of 6 racers gave 500s (IntegrityError)."""
    from concurrent.futures import ThreadPoolExecutor

    for _ in range(8):
        device = TestDevice(name="twice at once")
        codes = [shared_server.pair_code() for _ in range(6)]
        with ThreadPoolExecutor(max_workers=len(codes)) as pool:
            responses = list(pool.map(lambda code: register(shared_server, device, code), codes))
        statuses = sorted(r.status_code for r in responses)
        assert statuses == [201] + [409] * (len(codes) - 1), [r.text for r in responses]
        for response in responses:
            if response.status_code == 409:
                error = response.json()["error"]
                assert error["code"] == "device_exists" and len(error["message"].split()) >= 6, error
        # Every code but the one that paired is still open: another device can use it.
        used = next(code for code, r in zip(codes, responses) if r.status_code == 201)
        for code in codes:
            if code != used:
                assert register(shared_server, TestDevice(name="later"), code).status_code == 201


HOSTILE_NAMES = [
    "\x1b[2K\rPaired: Owner's laptop",  # ESC: an ANSI sequence that erases and rewrites the line
    "phone\x9b31m",  # C1 CSI, the 8-bit form of ESC [
    "tab\there", "nul\x00", "del\x7f", "new\nline",
    "laptop\u202egnp.exe", "a\u202ab", "a\u202bb", "a\u202cb", "a\u202db",  # bidi embeddings and overrides
    "a\u2066b", "a\u2067b", "a\u2068b", "a\u2069b",  # bidi isolates
    "a\u200eb", "a\u200fb", "a\u061cb",  # bidi marks
]


def _odd_character(name: str) -> str:
    return next(f"U+{ord(c):04X}" for c in name if not (c.isalnum() or c in " .'[:"))


@pytest.mark.parametrize("name", HOSTILE_NAMES, ids=[_odd_character(n) for n in HOSTILE_NAMES])
def test_a_device_name_with_control_or_bidi_characters_is_refused(shared_server: LiveServer, name: str) -> None:
    """the name is printed by `privchat pair --wait` and `devices list` beside the
    fingerprint the owner compares. Negative control: before the change every one of these was 201."""
    device = TestDevice(name=name)
    code = shared_server.pair_code()
    response = register(shared_server, device, code)
    assert_error(response, 400, "invalid_device_name")
    assert "control or text-direction" in response.json()["error"]["message"]
    renamed = TestDevice(name="plain name")
    assert register(shared_server, renamed, code).status_code == 201  # the refusal did not use up the code
