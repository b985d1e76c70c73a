"""The client half of end-to-end encryption, in Python, for tests: what the page does, with pyhpke.

``SealedExchange`` seals one request to the server key (docs/E2E.md) and opens its answer: one
chunk for JSON, chunk by chunk for an event stream, enforcing the numbering and the final flag.
``OpenedResponse`` wraps an httpx response so a test reads plaintext through the usual
``status_code``/``headers``/``json()``/``text``/``iter_text()``, and can still see the raw bytes
(``raw_content``) that crossed the wire.

It shares the suite constants with the backend but none of its code paths: sealing here is the
sender side (``create_sender_context``), which the backend never runs. The page's own
implementation (@hpke/core) is checked against both in tests/test_e2e_interop.py.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from dataclasses import dataclass
from typing import Any, Iterator

import httpx
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from pyhpke import KEMKey

from privchat.e2e.header import format_header
from privchat.e2e.suite import (
    FINAL_AAD,
    KEY_BYTES,
    NONCE_BYTES,
    RESPONSE_EXPORT_LABEL,
    RESPONSE_NONCE_HEADER,
    SEALED_EVENT,
    SUITE,
    request_info,
)


class SealError(AssertionError):
    """An answer that does not open as the contract says: ``code`` is what the page would show."""

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(f"{code}: {detail}")
        self.code = code


def code_mac(label: bytes, code: str, device_id: str, kid: str) -> str:
    """The pairing proof or key confirmation (docs/E2E.md), written here from the contract."""
    normal = code.strip().upper().replace("-", "").replace(" ", "").translate(str.maketrans({"O": "0", "I": "1", "L": "1"}))
    mac = hmac.new(normal.encode(), label + b"\x00" + device_id.encode() + b"\x00" + kid.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(mac).rstrip(b"=").decode()


def b64url_decode(value: str) -> bytes:
    return base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))


@dataclass(frozen=True)
class ServerKey:
    kid: str
    jwk: dict[str, str]

    @classmethod
    def from_health(cls, health: dict[str, Any]) -> "ServerKey":
        return cls(kid=health["e2e"]["kid"], jwk=health["e2e"]["jwk"])

    @classmethod
    def throwaway(cls) -> "ServerKey":
        """A key no server holds (requests sealed to it must be refused)."""
        from cryptography.hazmat.primitives.asymmetric import ec

        from privchat.auth.jwk import thumbprint
        from privchat.e2e.keys import public_jwk_of

        jwk = public_jwk_of(ec.generate_private_key(ec.SECP256R1()))
        return cls(kid=thumbprint(jwk), jwk=jwk)


class ChunkOpener:
    """Opens the chunks of one answer in order: chunk i with counter i, the last one marked final."""

    def __init__(self, secret: bytes, enc: bytes, response_nonce: bytes) -> None:
        salt = enc + response_nonce
        key = HKDF(algorithm=hashes.SHA256(), length=KEY_BYTES, salt=salt, info=b"key").derive(secret)
        base = HKDF(algorithm=hashes.SHA256(), length=NONCE_BYTES, salt=salt, info=b"nonce").derive(secret)
        self.aead, self.nonce_base, self.counter, self.finished = AESGCM(key), int.from_bytes(base, "big"), 0, False

    def open(self, chunk: bytes) -> tuple[bytes, bool]:
        if self.finished:
            raise SealError("e2e_event_invalid", "data after the final chunk")
        nonce = (self.nonce_base ^ self.counter).to_bytes(NONCE_BYTES, "big")
        for aad, final in ((b"", False), (FINAL_AAD, True)):
            try:
                plaintext = self.aead.decrypt(nonce, chunk, aad)
            except Exception:
                continue
            self.counter += 1
            self.finished = final
            return plaintext, final
        raise SealError("e2e_event_invalid", f"chunk {self.counter} does not open")


class SealedExchange:
    """One request's HPKE context: seal the body, then open the answer."""

    def __init__(self, server: ServerKey, method: str, target: str, device_id: str, body: bytes) -> None:
        self.kid = server.kid
        self.enc, self.context = SUITE.create_sender_context(KEMKey.from_jwk(server.jwk),
                                                             request_info(method, target, device_id))
        self.sealed_body = self.context.seal(body) if body else b""
        self.secret = self.context.export(RESPONSE_EXPORT_LABEL, KEY_BYTES)

    @property
    def header(self) -> str:
        return format_header(self.kid, self.enc)

    def opener(self, response: Any) -> ChunkOpener | None:
        """For an answer with ``status_code`` and ``headers`` (httpx's or Quart's test response)."""
        nonce = response.headers.get(RESPONSE_NONCE_HEADER)
        if nonce is None:
            if 200 <= response.status_code < 300:
                raise SealError("e2e_unsealed", f"a {response.status_code} answer came without a seal")
            return None
        return ChunkOpener(self.secret, self.enc, b64url_decode(nonce))

    def signed_headers(self, device: Any, method: str, path: str) -> dict[str, str]:
        """Everything a hand-built request needs besides its body (``sealed_body``)."""
        headers = dict(device.sign(method, path, self.sealed_body, e2e=self.header))
        if self.sealed_body:
            headers["Content-Type"] = "application/privchat-e2e"
        return headers

    def open_json(self, response: Any, content: bytes) -> Any:
        """A one-chunk answer's JSON (a plain error's JSON when it came unsealed)."""
        opener = self.opener(response)
        return json.loads(opener.open(content)[0] if opener is not None else content)


def open_events(opener: ChunkOpener, texts: Iterator[str], *, whole: bool = True) -> Iterator[str]:
    """Sealed SSE text in, the plain SSE text the stream would have been out (pings kept).
    ``whole=False`` opens a part of a stream (more may follow), so its end is not checked."""
    buffer = ""
    for text in texts:
        buffer += text
        while "\n\n" in buffer:
            block, buffer = buffer.split("\n\n", 1)
            if block.startswith(":"):
                yield block + "\n\n"
                continue
            fields = dict(line.split(": ", 1) for line in block.split("\n") if ": " in line)
            if fields.get("event") != SEALED_EVENT:
                raise SealError("e2e_event_invalid", f"an unsealed event in a sealed stream: {block[:80]!r}")
            plaintext, _final = opener.open(b64url_decode(fields["data"]))
            inner = json.loads(plaintext)
            head = f"id: {inner['id']}\n" if inner.get("id") is not None else ""
            yield f"{head}event: {inner['event']}\ndata: {json.dumps(inner['data'], ensure_ascii=False)}\n\n"
    if whole and not opener.finished:
        raise SealError("e2e_truncated", "the stream ended before its final event")


class OpenedResponse:
    """An httpx response whose body reads as the plaintext inside its seal."""

    def __init__(self, response: httpx.Response, opener: ChunkOpener | None, *, stream: bool) -> None:
        self.raw = response
        self.opener = opener
        self.stream = stream
        self._content: bytes | None = None
        if not stream:
            self.raw_content = response.content
            if opener is not None:
                plaintext, final = opener.open(self.raw_content)
                if not final:
                    raise SealError("e2e_truncated", "a one-chunk answer not marked final")
                self._content = plaintext
            else:
                self._content = self.raw_content

    def __getattr__(self, name: str) -> Any:
        return getattr(self.raw, name)

    @property
    def sealed(self) -> bool:
        return self.opener is not None

    @property
    def content(self) -> bytes:
        if self._content is None:
            self.read()
        return self._content  # type: ignore[return-value]

    @property
    def text(self) -> str:
        return self.content.decode("utf-8")

    def json(self) -> Any:
        return json.loads(self.content)

    def read(self) -> bytes:
        if self._content is None:
            self._content = "".join(self.iter_text()).encode("utf-8")
        return self._content

    def iter_text(self) -> Iterator[str]:
        if not self.stream:
            yield self.text
            return
        if self.opener is None:
            yield from self.raw.iter_text()
            return
        yield from open_events(self.opener, self.raw.iter_text())

    def iter_lines(self) -> Iterator[str]:
        buffer = ""
        for text in self.iter_text():
            buffer += text
            while "\n" in buffer:
                line, buffer = buffer.split("\n", 1)
                yield line
        if buffer:
            yield buffer

    def close(self) -> None:
        self.raw.close()

    def __enter__(self) -> "OpenedResponse":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
