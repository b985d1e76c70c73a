"""RFC 9421 request signatures: privchat's fixed profile, verified by http-message-signatures.

The profile is fixed rather than negotiated: one algorithm (ecdsa-p256-sha256, raw r‖s), one tag
(``privchat``), exactly the components ``@method @path @query content-digest privchat-e2e`` (the
last is the end-to-end header, docs/E2E.md, so its encapsulated key cannot be swapped). Anything else is
refused before any key is looked up, each with its own error code, so a client bug is easy to see
and an attacker gets no choice of algorithm.

The cryptographic check itself, the signature base and the created/age rules are the library's;
this module adds the policy around them: profile, Content-Digest over the received bytes, the
freshness window, and the replay check.
"""

from __future__ import annotations

import datetime
import hashlib
import hmac
import time
from dataclasses import dataclass
from typing import Any, Mapping

import http_sf
from cryptography.hazmat.primitives.asymmetric import ec
from http_message_signatures import HTTPMessageVerifier, InvalidSignature, algorithms
from http_message_signatures.exceptions import HTTPMessageSignaturesException

from ..errors import (CLOCK_SKEW, DIGEST_MISMATCH, DIGEST_MISSING, SIGNATURE_ALGORITHM, SIGNATURE_COMPONENTS,
                      SIGNATURE_EXPIRED, SIGNATURE_INVALID, SIGNATURE_MALFORMED, SIGNATURE_MISSING, SIGNATURE_TAG,
                      CodedError)

ALGORITHM = "ecdsa-p256-sha256"
TAG = "privchat"
LABEL = "sig1"
REQUIRED_COMPONENTS = ("@method", "@path", "@query", "content-digest", "privchat-e2e")


class SignatureError(CodedError):
    """A refused signature (401), or a device that may not sign any more (device_revoked, 403)."""


@dataclass(frozen=True)
class SignatureInput:
    key_id: str
    nonce: str
    created: int


@dataclass(frozen=True)
class RequestView:
    """What the verifier needs of a request; ``target`` is the raw path plus ``?query`` as sent."""

    method: str
    target: str
    headers: Mapping[str, str]
    body: bytes


class _Message:
    """The minimal message object http-message-signatures reads (method, url, headers)."""

    def __init__(self, view: RequestView) -> None:
        self.method = view.method.upper()
        # Authority and scheme are not covered (cloudflared rewrites them): any fixed origin will do.
        self.url = "http://privchat.invalid" + view.target
        self.headers = dict(view.headers)


class _SingleKeyResolver:
    def __init__(self, key_id: str, key: ec.EllipticCurvePublicKey) -> None:
        self.key_id, self.key = key_id, key

    def resolve_public_key(self, key_id: str) -> ec.EllipticCurvePublicKey:
        if key_id != self.key_id:
            raise InvalidSignature("keyid changed during verification")
        return self.key

    def resolve_private_key(self, key_id: str) -> Any:  # never used: the server only verifies
        raise NotImplementedError


def _header(headers: Mapping[str, str], name: str) -> str | None:
    lowered = name.lower()
    for key, value in headers.items():
        if key.lower() == lowered:
            return value
    return None


def parse_signature_input(headers: Mapping[str, str]) -> SignatureInput:
    """Check the profile from the Signature-Input header alone; no key, no crypto yet."""
    raw_input = _header(headers, "Signature-Input")
    raw_signature = _header(headers, "Signature")
    if not raw_input or not raw_signature:
        raise SignatureError(SIGNATURE_MISSING)
    try:
        inputs = http_sf.parse(raw_input.encode(), tltype="dictionary")
        signatures = http_sf.parse(raw_signature.encode(), tltype="dictionary")
    except Exception as exc:
        raise SignatureError(SIGNATURE_MALFORMED) from exc
    if len(inputs) != 1 or len(signatures) != 1 or set(inputs) != set(signatures):
        raise SignatureError(SIGNATURE_MALFORMED, "Exactly one signature, under the same label in both headers, is expected.")
    (components, params), = inputs.values()
    if not isinstance(components, list):
        raise SignatureError(SIGNATURE_MALFORMED, "Signature-Input must list the covered components.")
    if params.get("tag") != TAG:
        raise SignatureError(SIGNATURE_TAG, tag=TAG)
    if params.get("alg") != ALGORITHM:
        raise SignatureError(SIGNATURE_ALGORITHM, algorithm=ALGORITHM)
    names = tuple(item for item, item_params in components if not item_params)
    if len(names) != len(components) or sorted(names) != sorted(REQUIRED_COMPONENTS):
        raise SignatureError(SIGNATURE_COMPONENTS, components=" ".join(REQUIRED_COMPONENTS))
    key_id, nonce, created = params.get("keyid"), params.get("nonce"), params.get("created")
    if not isinstance(key_id, str) or not key_id:
        raise SignatureError(SIGNATURE_MALFORMED, "The signature has no keyid.")
    if not isinstance(nonce, str) or not 8 <= len(nonce) <= 128:
        raise SignatureError(SIGNATURE_MALFORMED, "The signature needs a nonce of 8 to 128 characters.")
    if type(created) is not int:
        raise SignatureError(SIGNATURE_MALFORMED, "The signature needs an integer created time.")
    if "expires" in params:
        raise SignatureError(SIGNATURE_MALFORMED, "The signature must not carry expires; the server sets the window.")
    return SignatureInput(key_id=key_id, nonce=nonce, created=created)


def check_content_digest(headers: Mapping[str, str], body: bytes) -> None:
    """RFC 9530: the digest must be sha-256 of the bytes received, also for an empty body."""
    raw = _header(headers, "Content-Digest")
    if not raw:
        raise SignatureError(DIGEST_MISSING)
    try:
        parsed = http_sf.parse(raw.encode(), tltype="dictionary")
    except Exception as exc:
        raise SignatureError(DIGEST_MISMATCH, "The Content-Digest header is not a valid structured field.") from exc
    entry = parsed.get("sha-256")
    if entry is None or not isinstance(entry[0], bytes):
        raise SignatureError(DIGEST_MISMATCH, "The Content-Digest header must carry a sha-256 digest.")
    if not hmac.compare_digest(entry[0], hashlib.sha256(body).digest()):
        raise SignatureError(DIGEST_MISMATCH)


def check_freshness(created: int, *, max_age: int, max_future: int, now: float | None = None) -> None:
    now = time.time() if now is None else now
    if created > now + max_future:
        raise SignatureError(CLOCK_SKEW)
    if created < now - max_age:
        raise SignatureError(SIGNATURE_EXPIRED, max_age=max_age)


class SignatureVerifier:
    def __init__(self, max_age: int, max_future: int) -> None:
        self.max_age = max_age
        self.max_future = max_future

    def verify(self, view: RequestView, key_id: str, key: ec.EllipticCurvePublicKey) -> None:
        """The library's check over the profile's components; raises SignatureError(signature_invalid)."""
        verifier = HTTPMessageVerifier(signature_algorithm=algorithms.ECDSA_P256_SHA256,
                                       key_resolver=_SingleKeyResolver(key_id, key))
        verifier.max_clock_skew = datetime.timedelta(seconds=self.max_future)
        try:
            verifier.verify(
                _Message(view),
                max_age=datetime.timedelta(seconds=self.max_age),
                expect_tag=TAG,
                require_components=REQUIRED_COMPONENTS,
                body=view.body,
            )
        except (InvalidSignature, HTTPMessageSignaturesException) as exc:
            raise SignatureError(SIGNATURE_INVALID) from exc

    def valid_until(self, created: int) -> float:
        return created + self.max_age + self.max_future + 1
