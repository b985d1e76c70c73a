"""Wycheproof ECDSA P-256/SHA-256 (IEEE P1363, i.e. raw r‖s) vectors through the server's verify path.

The server's SignatureVerifier hands the signature base and the raw signature bytes to
http-message-signatures' ``ECDSA_P256_SHA256.verify``; this runs every vector through exactly that
call. Valid vectors must verify, invalid ones must raise (a public key that cannot be loaded counts
as a rejection), acceptable ones are only recorded. Vectors: tests/vectors/, Apache-2.0
(tests/vectors/LICENSE-wycheproof).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from http_message_signatures import algorithms

from privchat.jwk import JwkError, parse_p256_public_jwk

VECTORS = Path(__file__).parent / "vectors" / "ecdsa_secp256r1_sha256_p1363_test.json"
DATA = json.loads(VECTORS.read_text())


def load_key(group: dict[str, Any]) -> ec.EllipticCurvePublicKey:
    """The group's key from its uncompressed point; raises ValueError if cryptography refuses it."""
    return ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), bytes.fromhex(group["publicKey"]["uncompressed"]))


def verifies(key: ec.EllipticCurvePublicKey | None, sig: bytes, msg: bytes) -> tuple[bool, str]:
    if key is None:
        return False, "public key refused"
    try:
        algorithms.ECDSA_P256_SHA256(public_key=key).verify(signature=sig, message=msg)
    except Exception as exc:  # the verifier wraps every failure; any exception is a rejection
        return False, type(exc).__name__
    return True, "verified"


def run_group(group: dict[str, Any]) -> tuple[list[str], list[str], int]:
    """Returns (disagreements, acceptable-case notes, cases run)."""
    try:
        key: ec.EllipticCurvePublicKey | None = load_key(group)
    except ValueError:
        key = None
    wrong, acceptable = [], []
    for case in group["tests"]:
        accepted, why = verifies(key, bytes.fromhex(case["sig"]), bytes.fromhex(case["msg"]))
        label = f"tcId {case['tcId']} ({case['comment']}; {','.join(case['flags'])}): expected {case['result']}, got {why}"
        if case["result"] == "valid" and not accepted:
            wrong.append(label)
        elif case["result"] == "invalid" and accepted:
            wrong.append(label)
        elif case["result"] == "acceptable":
            acceptable.append(label)
    return wrong, acceptable, len(group["tests"])


def test_vector_file_is_the_p1363_p256_sha256_set() -> None:
    assert DATA["schema"] == "ecdsa_p1363_verify_schema_v1.json"
    assert DATA["algorithm"] == "ECDSA"
    assert all(g["type"] == "EcdsaP1363Verify" and g["sha"] == "SHA-256" and g["publicKey"]["curve"] == "secp256r1"
               for g in DATA["testGroups"])
    assert sum(len(g["tests"]) for g in DATA["testGroups"]) == DATA["numberOfTests"] > 200
    assert (VECTORS.parent / "LICENSE-wycheproof").read_text().lstrip().startswith("Apache License")


@pytest.mark.parametrize("index", range(len(DATA["testGroups"])), ids=lambda i: f"group{i}")
def test_wycheproof_group(index: int) -> None:
    group = DATA["testGroups"][index]
    wrong, acceptable, count = run_group(group)
    assert count == len(group["tests"])
    for note in acceptable:
        print("acceptable:", note)
    assert not wrong, f"{len(wrong)} of {count} vectors disagree:\n" + "\n".join(wrong)


def test_every_vector_decided_and_both_outcomes_seen() -> None:
    """Guards against a harness that accepts or rejects everything."""
    outcomes = {"valid": 0, "invalid": 0}
    for group in DATA["testGroups"]:
        try:
            key: ec.EllipticCurvePublicKey | None = load_key(group)
        except ValueError:
            key = None
        for case in group["tests"]:
            accepted, _ = verifies(key, bytes.fromhex(case["sig"]), bytes.fromhex(case["msg"]))
            if case["result"] in outcomes and accepted == (case["result"] == "valid"):
                outcomes[case["result"]] += 1
    assert outcomes["valid"] == sum(t["result"] == "valid" for g in DATA["testGroups"] for t in g["tests"]) > 0
    assert outcomes["invalid"] == sum(t["result"] == "invalid" for g in DATA["testGroups"] for t in g["tests"]) > 0


def test_jwk_groups_load_the_same_key_through_privchat() -> None:
    """Where a group has a JWK, privchat's own strict JWK parser yields the same point (or refuses it)."""
    checked = 0
    for group in DATA["testGroups"]:
        jwk = group.get("publicKeyJwk")
        if not jwk:
            continue
        try:
            expected = load_key(group)
        except ValueError:
            with pytest.raises(JwkError):
                parse_p256_public_jwk({k: v for k, v in jwk.items() if k != "kid"})
            continue
        _, key = parse_p256_public_jwk({k: v for k, v in jwk.items() if k != "kid"})
        assert key.public_numbers() == expected.public_numbers()
        checked += 1
    assert checked > 0
