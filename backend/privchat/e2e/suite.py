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

VERSION = 2  # the `v` member of the request header; docs/E2E.md, "Versions"
REQUEST_LABEL = b"privchat e2e v2 request"
RESPONSE_EXPORT_LABEL = b"privchat e2e v2 response"
FINAL_AAD = b"final"
TAG_BYTES = 16  # AES-GCM's tag: a sealed body or frame is its plaintext plus this

# Shape (docs/E2E.md, "Padding" and "A reply stream"): a sealed body is a size class long; a reply
# is sealed frames of one of FRAME_SIZES bytes, one every FRAME_TICK_SECONDS. A 1 KiB frame a tick
# carries 1,006 bytes of events, about 14 tokens (a CPU model's whole output at 140 tokens/s), so
# every frame of a CPU reply is the same size; 100 ms adds 50 ms to the first token on average.
BODY_FLOOR = 1024
BODY_POWER_LIMIT = 1024 * 1024  # powers of two up to here, whole MiB above
LENGTH_BYTES = 4  # a padded body's length prefix
FRAME_SIZES = (1024, 4096, 16384)
FRAME_LENGTH_BYTES = 2  # a frame's payload length prefix
FRAME_TICK_SECONDS = 0.1

HEADER = "Privchat-E2E"
RESPONSE_NONCE_HEADER = "Privchat-E2E-Nonce"
SEALED_MEDIA_TYPE = "application/privchat-e2e"
SEALED_EVENT = "sealed"


def request_info(method: str, target: str, device_id: str) -> bytes:
    """Binds the context to what the request is: its method, path and query, and the signing device."""
    return b"\x00".join((REQUEST_LABEL, method.upper().encode("ascii"), target.encode("latin-1"), device_id.encode("ascii")))
