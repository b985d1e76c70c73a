"""Opening a sealed request and sealing its answer (docs/E2E.md, "A request" and "A response").

The request is one HPKE message under ``SetupBaseR(enc, skR, info)``. The answer is sealed under a
key exported from that same context, as RFC 9458 §4.4 does it for Oblivious HTTP, and cut into
chunks as draft-ietf-ohai-chunked-ohttp does: chunk i uses nonce ``nonce_base XOR i`` and the last
one is sealed with the associated data ``"final"``. So the page can tell a dropped, reordered,
replayed or cut-off event from a whole answer, and only someone holding the request's context
(the page that made it, and this server) can read or forge the answer.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from pyhpke import KEMKeyInterface

from ..errors import E2E_OPEN_FAILED
from .errors import E2EError
from .padding import pad, unpad
from .suite import FINAL_AAD, KEY_BYTES, NONCE_BYTES, RESPONSE_EXPORT_LABEL, RESPONSE_NONCE_BYTES, SUITE


def _hkdf(salt: bytes, secret: bytes, info: bytes, length: int) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=length, salt=salt, info=info).derive(secret)


@dataclass
class ResponseSealer:
    """Seals one answer, chunk by chunk, under the key the request's context exports."""

    secret: bytes
    enc: bytes
    nonce: bytes = field(default_factory=lambda: os.urandom(RESPONSE_NONCE_BYTES))
    counter: int = 0
    finished: bool = False

    def __post_init__(self) -> None:
        salt = self.enc + self.nonce
        self._aead = AESGCM(_hkdf(salt, self.secret, b"key", KEY_BYTES))
        self._nonce_base = int.from_bytes(_hkdf(salt, self.secret, b"nonce", NONCE_BYTES), "big")

    def seal(self, plaintext: bytes, *, final: bool) -> bytes:
        """The next chunk. After the final one nothing more may be sealed."""
        if self.finished:
            raise RuntimeError("this answer's final chunk was already sealed")
        chunk_nonce = (self._nonce_base ^ self.counter).to_bytes(NONCE_BYTES, "big")
        self.counter += 1
        self.finished = final
        return self._aead.encrypt(chunk_nonce, plaintext, FINAL_AAD if final else b"")

    def seal_body(self, content: bytes) -> bytes:
        """A whole (non-stream) answer: one final chunk, padded to its size class."""
        return self.seal(pad(content), final=True)


@dataclass(frozen=True)
class OpenedRequest:
    plaintext: bytes
    sealer: ResponseSealer


@dataclass
class RequestContext:
    """A request's HPKE context, set up from its header alone: the answer's sealer exists from here
    on, so every refusal after this point (the signature's included) can leave sealed."""

    context: Any
    sealer: ResponseSealer

    def open_body(self, body: bytes) -> bytes:
        """The body, opened and unpadded (empty body: nothing to open). A body that opens but is
        not padded as docs/E2E.md says is refused like one that does not open."""
        if not body:
            return b""
        try:
            return unpad(self.context.open(body))
        except Exception as exc:  # pyhpke's own errors, a bad tag, bad padding
            raise E2EError(E2E_OPEN_FAILED) from exc


def begin_request(private_key: KEMKeyInterface, enc: bytes, info: bytes) -> RequestContext:
    """Set up the recipient context and prepare the answer's sealer."""
    try:
        context = SUITE.create_recipient_context(enc, private_key, info)
    except Exception as exc:  # pyhpke raises its own errors and ValueError for bad points
        raise E2EError(E2E_OPEN_FAILED) from exc
    secret = context.export(RESPONSE_EXPORT_LABEL, KEY_BYTES)
    return RequestContext(context=context, sealer=ResponseSealer(secret=secret, enc=enc))


def open_request(private_key: KEMKeyInterface, enc: bytes, info: bytes, body: bytes) -> OpenedRequest:
    """Both steps at once: the context, then the body."""
    request = begin_request(private_key, enc, info)
    return OpenedRequest(plaintext=request.open_body(body), sealer=request.sealer)
