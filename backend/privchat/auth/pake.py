"""Typed-code pairing through OPAQUE (RFC 9807): a swapped key gets one online guess, not a search.

With a link or QR the server key's id travels with the code, out of band, and the page refuses any
other key. A code the owner *types* has no such pin: the page learns the key from plain health,
and whoever swaps it reads what the page sends. When that was an HMAC keyed by the 50-bit code,
it could be searched offline within the code's ten minutes. So a typed code is used as the password
of an OPAQUE login instead (``opaque-ke`` on both sides: ``opaquepy`` here, ``@serenity-kit/opaque``
in the page, suite ristretto255 / TripleDH / SHA-512, Argon2id m=19456 KiB t=2 p=1): the transcript
gives nothing to search, a stand-in without the server's record cannot finish a login, and each
login *started* counts as a wrong try until it succeeds (a client-side guess needs a start). Both
ends then hold a session key no one on the path has, and bind the pairing to it:

- the page's ``device_proof`` = HMAC(session key, "privchat pairing device v2" 0 device id 0 kid it
  sealed to): the server registers no other device for this login, and a key swapped on the path
  makes the proof fail (a wrong try);
- the server's ``key_confirmation`` = HMAC(session key, "privchat pairing confirm v2" 0 device id 0
  kid that opened the request): the page pins that key only if the confirmation checks.

The server knows the code (sealed in ``pairing_codes``), so it registers it with itself on first
use, in memory, under a server setup made once per process: nothing about OPAQUE is stored, and a
restart only makes the next login register the code again. The login's state between its two
steps stays in memory too, for ``LOGIN_SECONDS``.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass

import opaquepy
from opaquepy import lib as opaque

from ..errors import PAIRING_INVALID
from .pairing import PairingError

USER_ID = "privchat-pairing"  # one identity: the code is the secret, the open code is the record
LOGIN_SECONDS = 120.0  # between a login's start and its finish
DEVICE_LABEL = b"privchat pairing device v2"
CONFIRM_LABEL = b"privchat pairing confirm v2"


@dataclass
class _Login:
    state: str
    code_hash: str
    attempt_id: int
    started: float


def _b64url_decode(value: str) -> bytes:
    return base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))


def _mac(label: bytes, session_key: str, device_id: str, kid: str) -> str:
    mac = hmac.new(_b64url_decode(session_key), b"\x00".join((label, device_id.encode(), kid.encode())), hashlib.sha256)
    return base64.urlsafe_b64encode(mac.digest()).rstrip(b"=").decode("ascii")


def device_proof(session_key: str, device_id: str, kid: str) -> str:
    return _mac(DEVICE_LABEL, session_key, device_id, kid)


def key_confirmation(session_key: str, device_id: str, kid: str) -> str:
    return _mac(CONFIRM_LABEL, session_key, device_id, kid)


def _register(setup: str, code: str) -> str:
    """The record for ``code``, made by running both halves of registration here (Argon2id inside)."""
    request, state = opaque.register_client(code)
    response = opaque.register(setup, request, USER_ID)
    upload = opaque.register_client_finish(state, code, response)
    return opaque.register_finish(upload)


class PairingLogins:
    """The server's half of OPAQUE for open pairing codes, all in memory."""

    def __init__(self) -> None:
        self._setup = opaquepy.create_setup()
        self._records: dict[str, str] = {}  # code hash -> record
        self._logins: dict[str, _Login] = {}

    async def start(self, code: str, code_hash: str, request: str, attempt_id: int) -> tuple[str, str]:
        """Answer the page's first message for this code: (login id, the server's message)."""
        self._forget_old()
        record = self._records.get(code_hash)
        if record is None:
            record = await asyncio.to_thread(_register, self._setup, code)
            self._records[code_hash] = record
        try:
            response, state = await asyncio.to_thread(opaque.login, self._setup, record, request, USER_ID)
        except ValueError as exc:
            raise PairingError(PAIRING_INVALID) from exc
        login_id = secrets.token_urlsafe(18)
        self._logins[login_id] = _Login(state, code_hash, attempt_id, time.monotonic())
        return login_id, response

    def finish(self, login_id: str, finalization: str) -> tuple[str, str, int]:
        """(session key, code hash, attempt id) for a login the page finished; otherwise PairingError
        (pairing_invalid: a wrong code, a message changed on the way, or an old login). A login
        finishes once, right or wrong."""
        self._forget_old()
        login = self._logins.pop(login_id, None)
        if login is None:
            raise PairingError(PAIRING_INVALID)
        try:
            session_key = opaque.login_finish(finalization, login.state)
        except ValueError as exc:
            raise PairingError(PAIRING_INVALID) from exc
        return session_key, login.code_hash, login.attempt_id

    def forget_code(self, code_hash: str) -> None:
        self._records.pop(code_hash, None)

    def _forget_old(self) -> None:
        now = time.monotonic()
        for login_id in [k for k, v in self._logins.items() if now - v.started > LOGIN_SECONDS]:
            del self._logins[login_id]
