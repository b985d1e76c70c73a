"""The ``Privchat-E2E`` request header: ``kid="<server kid>", enc=:<base64 enc>:`` (RFC 8941).

Parsed with ``http_sf`` (the structured-field parser ``http-message-signatures`` uses), strictly:
exactly these two members, a 65-byte encapsulated key.
"""

from __future__ import annotations

from dataclasses import dataclass

import http_sf

from .errors import E2EMalformed
from .suite import ENC_BYTES


@dataclass(frozen=True)
class SealedRequestHeader:
    kid: str
    enc: bytes


def parse_header(value: str) -> SealedRequestHeader:
    try:
        members = http_sf.parse(value.encode("ascii"), tltype="dictionary")
    except (http_sf.StructuredFieldError, ValueError, UnicodeEncodeError) as exc:
        raise E2EMalformed("it is not a structured-field dictionary") from exc
    if not isinstance(members, dict) or set(members) != {"kid", "enc"}:
        raise E2EMalformed('it must have exactly the members kid="…" and enc=:…:')
    (kid, kid_params), (enc, enc_params) = members["kid"], members["enc"]
    if kid_params or enc_params:
        raise E2EMalformed("its members take no parameters")
    if not isinstance(kid, str) or not kid or len(kid) > 64:
        raise E2EMalformed("kid must be the server key's thumbprint as a string")
    if not isinstance(enc, bytes) or len(enc) != ENC_BYTES:
        raise E2EMalformed(f"enc must be the {ENC_BYTES}-byte encapsulated key as a byte sequence")
    return SealedRequestHeader(kid=kid, enc=enc)


def format_header(kid: str, enc: bytes) -> str:
    return http_sf.ser({"kid": kid, "enc": enc})
