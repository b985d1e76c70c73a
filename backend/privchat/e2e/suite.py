"""The cipher suite and every label of the wire format (docs/E2E.md), in one place.

HPKE base mode, DHKEM(P-256, HKDF-SHA256) / HKDF-SHA256 / AES-128-GCM, through ``pyhpke``; the
page uses ``@hpke/core`` with the same suite, so two independent implementations meet.
"""

from __future__ import annotations

from pyhpke import AEADId, CipherSuite, KDFId, KEMId

SUITE = CipherSuite.new(KEMId.DHKEM_P256_HKDF_SHA256, KDFId.HKDF_SHA256, AEADId.AES128_GCM)
SUITE_NAME = "DHKEM(P-256, HKDF-SHA256), HKDF-SHA256, AES-128-GCM"

ENC_BYTES = 65  # an uncompressed P-256 point
KEY_BYTES = 16  # Nk of AES-128-GCM
NONCE_BYTES = 12  # Nn
RESPONSE_NONCE_BYTES = max(KEY_BYTES, NONCE_BYTES)  # RFC 9458 §4.4

REQUEST_LABEL = b"privchat e2e v1 request"
RESPONSE_EXPORT_LABEL = b"privchat e2e v1 response"
FINAL_AAD = b"final"

HEADER = "Privchat-E2E"
RESPONSE_NONCE_HEADER = "Privchat-E2E-Nonce"
SEALED_MEDIA_TYPE = "application/privchat-e2e"
SEALED_EVENT = "sealed"


def request_info(method: str, target: str, device_id: str) -> bytes:
    """Binds the context to what the request is: its method, path and query, and the signing device."""
    return b"\x00".join((REQUEST_LABEL, method.upper().encode("ascii"), target.encode("latin-1"), device_id.encode("ascii")))
