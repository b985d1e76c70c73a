"""The client half of end-to-end encryption, in Python, for tests: what the page does, with pyhpke.

``SealedExchange`` seals one request to the server key (docs/E2E.md, version 2) and opens its
answer: one padded chunk for JSON, frame by frame for an event stream, enforcing the numbering, the
frame sizes, the padding and the final flag.
``OpenedResponse`` wraps an httpx response so a test reads plaintext through the usual
``status_code``/``headers``/``json()``/``text``/``iter_text()``, and can still see the raw bytes
(``raw_content``) that crossed the wire.

It shares the suite constants with the backend but none of its code paths: sealing here is the
sender side (``create_sender_context``), which the backend never runs, and the padding and the
frames are read here from the contract, not with the backend's functions. The page's own
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
    FRAME_SIZES,
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

        from privchat.jwk import thumbprint
        from privchat.e2e.keys import public_jwk_of

        jwk = public_jwk_of(ec.generate_private_key(ec.SECP256R1()))
        return cls(kid=thumbprint(jwk), jwk=jwk)


def body_class(content_length: int) -> int:
    """docs/E2E.md, "Padding": the sealed size of a body whose content has this many bytes."""
    needed = content_length + 20
    if needed <= 1 << 20:
        size = 1024
        while size < needed:
            size *= 2
        return size
    return -(-needed // (1 << 20)) * (1 << 20)


def pad_body(content: bytes) -> bytes:
    return len(content).to_bytes(4, "big") + content + bytes(body_class(len(content)) - 20 - len(content))


def unpad_body(padded: bytes, code: str = "e2e_response_invalid") -> bytes:
    length = int.from_bytes(padded[:4], "big")
    if len(padded) < 4 or 4 + length > len(padded) or len(padded) + 16 != body_class(length) or any(padded[4 + length:]):
        raise SealError(code, f"a body of {len(padded)} bytes is not padded as the contract says")
    return padded[4:4 + length]


def split_meta(content: bytes, status: int | None = None) -> tuple[dict[str, Any], bytes]:
    """docs/E2E.md, "The meta line": the first line of every sealed answer, then what it carries.
    With ``status`` (the one outside), a meta status that differs is refused: the edge changed it."""
    line, sep, rest = content.partition(b"\n")
    try:
        meta = json.loads(line.decode("utf-8")) if sep else None
    except ValueError:
        meta = None
    if not isinstance(meta, dict) or not isinstance(meta.get("status"), int) or not isinstance(meta.get("kid"), str) \
            or not isinstance(meta.get("headers"), dict):
        raise SealError("e2e_response_invalid", f"a sealed answer without its meta line: {content[:80]!r}")
    if status is not None and meta["status"] != status:
        raise SealError("e2e_status_mismatch", f"sealed status {meta['status']}, {status} outside")
    return meta, rest


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
        self.sealed_body = self.context.seal(pad_body(body)) if body else b""
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
        if opener is None:
            return json.loads(content)
        return json.loads(split_meta(unpad_body(opener.open(content)[0]), response.status_code)[1])


class FrameReader:
    """Reads a reply stream's sealed frames (docs/E2E.md, "A reply stream"): opens each in order,
    checks its size and padding, and gives back the events its payload completes, as
    ``(id, event, data)``. An empty frame gives nothing."""

    def __init__(self, opener: ChunkOpener, status: int | None = None) -> None:
        self.opener = opener
        self.status = status  # the status outside, which the meta line must repeat
        self.meta: dict[str, Any] | None = None
        self.buffer = b""
        self.final_seen = False
        self.frames: list[tuple[int, int]] = []  # (sealed size, payload bytes) of each frame, for shape tests

    def feed(self, sealed: bytes) -> list[tuple[str | None, str, Any]]:
        if self.final_seen:
            raise SealError("e2e_event_invalid", "a frame after the final one")
        if len(sealed) not in FRAME_SIZES:
            raise SealError("e2e_event_invalid", f"a frame of {len(sealed)} bytes, not one of {FRAME_SIZES}")
        plaintext, final = self.opener.open(sealed)
        k = int.from_bytes(plaintext[:2], "big")
        if 2 + k > len(plaintext) or any(plaintext[2 + k:]):
            raise SealError("e2e_event_invalid", "a frame's padding is not as the contract says")
        self.frames.append((len(sealed), k))
        self.buffer += plaintext[2:2 + k]
        events = []
        while b"\n" in self.buffer:
            if self.meta is None:
                self.meta, self.buffer = split_meta(self.buffer, self.status)
                continue
            line, self.buffer = self.buffer.split(b"\n", 1)
            if self.final_seen:
                raise SealError("e2e_event_invalid", "an event after the final one")
            try:
                inner = json.loads(line.decode("utf-8"))
            except ValueError as exc:
                raise SealError("e2e_event_invalid", f"an event that is not JSON: {line[:80]!r}") from exc
            if inner["event"] in ("done", "error"):
                if not final or self.buffer:
                    raise SealError("e2e_event_invalid", f"{inner['event']} not at the end of the final frame")
                self.final_seen = True
            events.append((inner.get("id"), inner["event"], inner.get("data")))
        if final and not self.final_seen:
            raise SealError("e2e_event_invalid", "the final frame does not end with done or error")
        return events

    @property
    def finished(self) -> bool:
        return self.final_seen


def sse_blocks(texts: Iterator[str]) -> Iterator[str]:
    """The SSE text of a stream, block by block (an event or a comment, without its blank line)."""
    buffer = ""
    for text in texts:
        buffer += text
        while "\n\n" in buffer:
            block, buffer = buffer.split("\n\n", 1)
            yield block


def sealed_frame_of(block: str) -> bytes:
    fields = dict(line.split(": ", 1) for line in block.split("\n") if ": " in line)
    if fields.get("event") != SEALED_EVENT or set(fields) != {"event", "data"}:
        raise SealError("e2e_event_invalid", f"an unsealed event in a sealed stream: {block[:80]!r}")
    return b64url_decode(fields["data"])


def open_events(opener: ChunkOpener | FrameReader, texts: Iterator[str], *, whole: bool = True) -> Iterator[str]:
    """Sealed frames in, the plain SSE text the events inside would make out: ``id:``, ``event:``,
    ``data:``. An empty frame comes out as a ``: ping`` comment (it is what keeps a waiting stream
    alive now), so tests that read a stream as events see what they saw before frames.
    ``whole=False`` opens a part of a stream (more may follow), so its end is not checked."""
    reader = opener if isinstance(opener, FrameReader) else FrameReader(opener)
    for block in sse_blocks(texts):
        if block.startswith(":"):
            raise SealError("e2e_event_invalid", f"a comment in a framed stream: {block!r}")
        events = reader.feed(sealed_frame_of(block))
        if not events and reader.frames[-1][1] == 0:
            yield ": ping\n\n"
        for id, event, data in events:
            head = f"id: {id}\n" if id is not None else ""
            yield f"{head}event: {event}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n"
    if whole and not reader.finished:
        raise SealError("e2e_truncated", "the stream ended before its final frame")


class OpenedResponse:
    """An httpx response whose body reads as the plaintext inside its seal."""

    def __init__(self, response: httpx.Response, opener: ChunkOpener | None, *, stream: bool) -> None:
        self.raw = response
        self.opener = opener
        self.stream = stream
        self._content: bytes | None = None
        self.meta: dict[str, Any] | None = None
        if not stream:
            self.raw_content = response.content
            if opener is not None:
                plaintext, final = opener.open(self.raw_content)
                if not final:
                    raise SealError("e2e_truncated", "a one-chunk answer not marked final")
                self.meta, self._content = split_meta(unpad_body(plaintext), response.status_code)
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
        self.frames = FrameReader(self.opener, self.raw.status_code)
        yield from open_events(self.frames, self.raw.iter_text())

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
