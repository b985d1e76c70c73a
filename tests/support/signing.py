"""A test device: a P-256 key and a signer for privchat's RFC 9421 profile.

It signs with http-message-signatures' own signer (the library's, not the server's code path), so
a passing test means two independent ends agree. Every knob an attack test needs to turn (tag,
algorithm, components, created, DER encoding) is a parameter.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import json
import secrets
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature, encode_dss_signature
from http_message_signatures import HTTPMessageSigner, algorithms

COMPONENTS = ("@method", "@path", "@query", "content-digest", "privchat-e2e")
COMPONENTS_WITHOUT_E2E = COMPONENTS[:4]  # for requests sent on purpose without the E2E header


def b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def content_digest(body: bytes) -> str:
    return f"sha-256=:{base64.b64encode(hashlib.sha256(body).digest()).decode()}:"


class _Message:
    def __init__(self, method: str, url: str, headers: dict[str, str]) -> None:
        self.method, self.url, self.headers = method, url, headers


class _Keys:
    def __init__(self, key: ec.EllipticCurvePrivateKey) -> None:
        self.key = key

    def resolve_private_key(self, key_id: str) -> ec.EllipticCurvePrivateKey:
        return self.key

    def resolve_public_key(self, key_id: str) -> ec.EllipticCurvePublicKey:
        return self.key.public_key()


class _AnyAlgorithm(algorithms.ECDSA_P256_SHA256):
    """Same key type, another declared alg: for the 'another alg' attack."""

    algorithm_id = "ecdsa-p384-sha384"


@dataclass
class TestDevice:
    __test__ = False  # a helper, not a test class
    name: str = "test device"
    key: ec.EllipticCurvePrivateKey = field(default_factory=lambda: ec.generate_private_key(ec.SECP256R1()))

    @property
    def public_jwk(self) -> dict[str, str]:
        numbers = self.key.public_key().public_numbers()
        return {"kty": "EC", "crv": "P-256", "x": b64url(numbers.x.to_bytes(32, "big")), "y": b64url(numbers.y.to_bytes(32, "big"))}

    @property
    def device_id(self) -> str:
        jwk = self.public_jwk
        canonical = json.dumps({k: jwk[k] for k in ("crv", "kty", "x", "y")}, separators=(",", ":"))
        return b64url(hashlib.sha256(canonical.encode()).digest())

    def sign(self, method: str, url: str, body: bytes = b"", *, created: float | None = None, nonce: str | None = None,
             tag: str = "privchat", components: tuple[str, ...] | None = None, der: bool = False,
             alg: str | None = None, key_id: str | None = None, digest: str | None = None,
             label: str = "sig1", e2e: str | None = None) -> dict[str, str]:
        """Headers for a signed request. ``digest`` overrides Content-Digest ('' leaves it out);
        ``e2e`` is the Privchat-E2E header value, covered by the signature when given."""
        if components is None:
            components = COMPONENTS if e2e is not None else COMPONENTS_WITHOUT_E2E
        headers: dict[str, str] = {}
        if e2e is not None:
            headers["Privchat-E2E"] = e2e
        if digest is None:
            headers["Content-Digest"] = content_digest(body)
        elif digest:
            headers["Content-Digest"] = digest
        parts = urlsplit(url)
        full_url = url if parts.scheme else "http://127.0.0.1" + url
        message = _Message(method.upper(), full_url, headers)
        algorithm = _AnyAlgorithm if alg else algorithms.ECDSA_P256_SHA256
        signer = HTTPMessageSigner(signature_algorithm=algorithm, key_resolver=_Keys(self.key))
        prepared = signer.prepare(
            message,
            key_id=key_id or self.device_id,
            created=datetime.datetime.fromtimestamp(created if created is not None else time.time()),
            nonce=nonce or b64url(secrets.token_bytes(16)),
            label=label,
            tag=tag,
            covered_component_ids=components,
            use_existing_digest=bool(headers.get("Content-Digest")),
        )
        der_signature = self.key.sign(prepared.signature_base, ec.ECDSA(hashes.SHA256()))
        if der:
            signature = der_signature
        else:
            r, s = decode_dss_signature(der_signature)
            signature = r.to_bytes(32, "big") + s.to_bytes(32, "big")
        signer.apply(message, prepared, signature)
        return dict(message.headers)


def raw_to_der(raw: bytes) -> bytes:
    return encode_dss_signature(int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big"))
