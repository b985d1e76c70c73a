"""Device public keys: strict P-256 JWK parsing, RFC 7638 thumbprints, short fingerprints.

Only a bare public P-256 key is accepted: a JWK that carries the private member ``d`` means the
browser exported its secret, which the page never does, so it is refused rather than trusted.
"""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec

from .errors import PrivchatError


class JwkError(PrivchatError, ValueError):
    """The public key is not a usable P-256 JWK; the message says which part."""


def b64url_decode(value: str) -> bytes:
    if not isinstance(value, str) or any(c in value for c in "+/="):
        raise JwkError("JWK members must be base64url without padding")
    try:
        return base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
    except (ValueError, TypeError) as exc:
        raise JwkError("JWK member is not valid base64url") from exc


def b64url_encode(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def parse_p256_public_jwk(jwk: Any) -> tuple[dict[str, str], ec.EllipticCurvePublicKey]:
    """Return the canonical public members and the key, or raise JwkError."""
    if not isinstance(jwk, dict):
        raise JwkError("public_key must be a JWK object")
    if "d" in jwk:
        raise JwkError("public_key contains a private key member ('d'); send only the public key")
    if jwk.get("kty") != "EC":
        raise JwkError("public_key must have kty 'EC'")
    if jwk.get("crv") != "P-256":
        raise JwkError("public_key must be on curve P-256")
    x, y = b64url_decode(jwk.get("x", "")), b64url_decode(jwk.get("y", ""))
    if len(x) != 32 or len(y) != 32:
        raise JwkError("public_key coordinates must be 32 bytes each")
    try:
        key = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), b"\x04" + x + y)
    except ValueError as exc:
        raise JwkError("public_key is not a point on the P-256 curve") from exc
    return {"crv": "P-256", "kty": "EC", "x": jwk["x"], "y": jwk["y"]}, key


def thumbprint(public_members: dict[str, str]) -> str:
    """RFC 7638: SHA-256 over the required members in lexicographic order, no whitespace."""
    canonical = json.dumps({k: public_members[k] for k in ("crv", "kty", "x", "y")}, separators=(",", ":"), sort_keys=True)
    return b64url_encode(hashlib.sha256(canonical.encode("utf-8")).digest())


def short_fingerprint(device_id: str) -> str:
    """What a person compares between the page and the CLI: 8 bytes, hex, in groups of four."""
    digest = b64url_decode(device_id)[:8].hex().upper()
    return " ".join(digest[i : i + 4] for i in range(0, 16, 4))
