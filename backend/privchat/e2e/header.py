"""The ``Privchat-E2E`` request header: ``v=2, kid="<server kid>", enc=:<base64 enc>:`` (RFC 8941).

Parsed with ``http_sf`` (the structured-field parser ``http-message-signatures`` uses), strictly:
exactly these three members, a 65-byte encapsulated key. A header without ``v`` (version 1, which
had only ``kid`` and ``enc``) or with a lower one comes from a page older than the server: it is
told to reload, not that its header is broken.
"""

from __future__ import annotations

from dataclasses import dataclass

import http_sf

from ..errors import E2E_MALFORMED, E2E_VERSION_OLD
from .errors import E2EError
from .suite import ENC_BYTES, VERSION


@dataclass(frozen=True)
class SealedRequestHeader:
    kid: str
    enc: bytes


def parse_header(value: str) -> SealedRequestHeader:
    try:
        members = http_sf.parse(value.encode("ascii"), tltype="dictionary")
    except (http_sf.StructuredFieldError, ValueError, UnicodeEncodeError) as exc:
        raise E2EError(E2E_MALFORMED, detail="it is not a structured-field dictionary") from exc
    if not isinstance(members, dict):
        raise E2EError(E2E_MALFORMED, detail="it is not a structured-field dictionary")
    version = members.get("v", (1, {}))[0]
    if isinstance(version, int) and not isinstance(version, bool) and version < VERSION:
        raise E2EError(E2E_VERSION_OLD)
    if version != VERSION:
        raise E2EError(E2E_MALFORMED, detail=f"v must be {VERSION}")
    if set(members) != {"v", "kid", "enc"}:
        raise E2EError(E2E_MALFORMED, detail=f'it must have exactly the members v={VERSION}, kid="…" and enc=:…:')
    (kid, kid_params), (enc, enc_params) = members["kid"], members["enc"]
    if kid_params or enc_params or members["v"][1]:
        raise E2EError(E2E_MALFORMED, detail="its members take no parameters")
    if not isinstance(kid, str) or not kid or len(kid) > 64:
        raise E2EError(E2E_MALFORMED, detail="kid must be the server key's thumbprint as a string")
    if not isinstance(enc, bytes) or len(enc) != ENC_BYTES:
        raise E2EError(E2E_MALFORMED, detail=f"enc must be the {ENC_BYTES}-byte encapsulated key as a byte sequence")
    return SealedRequestHeader(kid=kid, enc=enc)


def format_header(kid: str, enc: bytes) -> str:
    return http_sf.ser({"v": VERSION, "kid": kid, "enc": enc})
