"""One-time pairing codes: short-lived, single use, stored sealed, void after wrong tries.

A code carries 50 bits of randomness (10 Crockford base32 characters), enough that with the
attempt limit an online guess has no practical chance; it is typed or scanned once and forgotten.

The code never travels (docs/E2E.md, "Pairing"). A typed code is the password of an OPAQUE login
(``auth/pake.py``; this store picks the code and counts the tries). With a link, the page proves it
knows the code with
``pairing_proof`` = HMAC(code, device id, the server key's kid it sealed to), and the server answers
with ``key_confirmation`` = HMAC(code, device id, the kid that opened the request). A key swapped on
the path makes the proof match no code (a wrong try), and a stand-in that answers by itself cannot
make the confirmation without the code. So the server keeps each code sealed with the data key
(a copied database alone reveals none), beside the keyed hash that names its row.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from ..errors import PAIRING_EXPIRED, PAIRING_INVALID, PAIRING_LOCKED, PAIRING_USED, CodedError
from ..config import Config
from ..storage.db import Database

ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"  # Crockford: no I, L, O, U
CODE_LENGTH = 10  # 10 * 5 = 50 bits


class PairingError(CodedError):
    """A code refused: wrong, used or expired (403); or pairing locked after too many wrong codes
    (423: the owner must act at the machine, `privchat pair`). Typed or linked: auth/pake.py raises it too."""


# pairing_locked, for the code a try names: it was voided when pairing locked, not just now.
VOIDED = "That pairing code was voided after too many wrong tries. Run `privchat pair` again."


@dataclass(frozen=True)
class PairingCode:
    code: str
    expires_at: float


def normalise(code: str) -> str:
    cleaned = code.strip().upper().replace("-", "").replace(" ", "")
    return cleaned.translate(str.maketrans({"O": "0", "I": "1", "L": "1"}))


def pairing_secret(data_key: bytes | None) -> bytes | None:
    """A key for hashing codes, derived from the data key: a copied database alone then gives no
    way to test guesses of a still-open code offline (with encryption off, a plain hash is used)."""
    if data_key is None:
        return None
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"privchat pairing codes").derive(data_key)


def hash_code(code: str, secret: bytes | None = None) -> str:
    message = ("privchat-pairing|" + normalise(code)).encode()
    if secret is None:
        return hashlib.sha256(message).hexdigest()
    return hmac.new(secret, message, hashlib.sha256).hexdigest()


def _code_mac(label: bytes, code: str, device_id: str, kid: str) -> str:
    mac = hmac.new(normalise(code).encode("utf-8"), b"\x00".join((label, device_id.encode(), kid.encode())), hashlib.sha256)
    return base64.urlsafe_b64encode(mac.digest()).rstrip(b"=").decode("ascii")


def pairing_proof(code: str, device_id: str, kid: str) -> str:
    """What the page sends instead of the code (docs/E2E.md)."""
    return _code_mac(b"privchat pairing proof v1", code, device_id, kid)


def key_confirmation(code: str, device_id: str, kid: str) -> str:
    """What the server answers, over the kid that really opened the request."""
    return _code_mac(b"privchat pairing confirm v1", code, device_id, kid)


def format_code(raw: str) -> str:
    return f"{raw[:5]}-{raw[5:]}"


class PairingStore:
    def __init__(self, database: Database, ttl_seconds: int, max_attempts: int) -> None:
        self.database = database
        self.ttl = ttl_seconds
        self.max_attempts = max_attempts
        self.secret = pairing_secret(database.cipher.data_key)

    @classmethod
    def from_config(cls, database: Database, config: Config) -> "PairingStore":
        return cls(database, config.auth.pairing_code_ttl_seconds, config.auth.pairing_max_attempts)

    async def create(self) -> PairingCode:
        """A new code; it also clears the wrong-try count, since the owner is at the machine."""
        raw = "".join(secrets.choice(ALPHABET) for _ in range(CODE_LENGTH))
        now = time.time()
        async with self.database.transaction() as conn:
            await conn.execute("DELETE FROM pairing_failures")
            await conn.execute("DELETE FROM pairing_codes WHERE expires_at < ? OR used_at IS NOT NULL OR voided_at IS NOT NULL", (now - 86_400,))
            code_hash = hash_code(raw, self.secret)
            sealed = self.database.cipher.seal(raw, table="pairing_codes", column="code", row_id=code_hash)
            await conn.execute("INSERT INTO pairing_codes (code_hash, created_at, expires_at, code_sealed) VALUES (?, ?, ?, ?)",
                               (code_hash, now, now + self.ttl, sealed))
        return PairingCode(format_code(raw), now + self.ttl)

    async def begin_login(self) -> tuple[str, str, int]:
        """A typed-code pairing starts (auth/pake.py): the newest open code, its hash, and the id of
        the wrong try this start counts as until its login succeeds. Typed pairing always uses the
        code `privchat pair` printed last; a link names its code by its proof."""
        now = time.time()
        async with self.database.transaction() as conn:
            async with conn.execute("SELECT COUNT(*) FROM pairing_failures") as cursor:
                failures = int((await cursor.fetchone())[0])
            if failures >= self.max_attempts:
                await conn.execute("UPDATE pairing_codes SET voided_at = ? WHERE used_at IS NULL AND voided_at IS NULL", (now,))
                raise PairingError(PAIRING_LOCKED)
            async with conn.execute("SELECT * FROM pairing_codes WHERE code_sealed IS NOT NULL AND voided_at IS NULL "
                                    "ORDER BY created_at DESC LIMIT 1") as cursor:
                row = await cursor.fetchone()
            if row is None or row["expires_at"] < now:
                raise PairingError(PAIRING_EXPIRED)
            if row["used_at"] is not None:
                raise PairingError(PAIRING_USED)
            cursor = await conn.execute("INSERT INTO pairing_failures (at) VALUES (?)", (now,))
            attempt_id = int(cursor.lastrowid)
        code = self.database.cipher.open(row["code_sealed"], table="pairing_codes", column="code", row_id=row["code_hash"])
        return code, row["code_hash"], attempt_id

    async def redeem_login(self, conn: Any, code_hash: str, attempt_id: int) -> None:
        """A typed-code login succeeded: use its code up and take back the wrong try its start counted,
        inside the caller's transaction; PairingError if the code was used, voided or expired since."""
        now = time.time()
        async with conn.execute("SELECT * FROM pairing_codes WHERE code_hash = ?", (code_hash,)) as cursor:
            row = await cursor.fetchone()
        if row is None or row["voided_at"] is not None:
            raise PairingError(PAIRING_LOCKED, VOIDED)
        if row["used_at"] is not None:
            raise PairingError(PAIRING_USED)
        if row["expires_at"] < now:
            raise PairingError(PAIRING_EXPIRED)
        await conn.execute("UPDATE pairing_codes SET used_at = ? WHERE code_hash = ?", (now, code_hash))
        await conn.execute("DELETE FROM pairing_failures WHERE rowid = ?", (attempt_id,))

    async def failed_tries(self, since: float, settled: float = 5.0) -> int:
        """Wrong tries since ``since``. A typed-code login counts from its start until it succeeds, a
        second or so later; one still counted after ``settled`` seconds failed or was abandoned."""
        async with self.database.conn.execute("SELECT COUNT(*) FROM pairing_failures WHERE at >= ? AND at <= ?",
                                              (since, time.time() - settled)) as cursor:
            return int((await cursor.fetchone())[0])

    async def _matching_row(self, conn: Any, proof: str, device_id: str, kid: str) -> tuple[Any, str] | None:
        """The code row whose code makes this proof for this device and key, with the code."""
        async with conn.execute("SELECT * FROM pairing_codes WHERE code_sealed IS NOT NULL") as cursor:
            rows = await cursor.fetchall()
        for row in rows:
            code = self.database.cipher.open(row["code_sealed"], table="pairing_codes", column="code", row_id=row["code_hash"])
            if hmac.compare_digest(pairing_proof(code, device_id, kid), proof):
                return row, code
        return None

    async def redeem(self, conn: Any, proof: str, device_id: str, kid: str) -> str:
        """Use up the code this proof was made with, inside the caller's transaction, and return the
        code (for the key confirmation); or raise PairingError, recording a wrong try.

        A proof made for another server key matches no code: on the path, that is a swapped key.
        The caller must commit even on PairingError so the wrong try is counted.
        """
        now = time.time()
        async with conn.execute("SELECT COUNT(*) FROM pairing_failures") as cursor:
            failures = int((await cursor.fetchone())[0])
        if failures >= self.max_attempts:
            raise PairingError(PAIRING_LOCKED)
        match = await self._matching_row(conn, proof, device_id, kid)
        if match is None:
            await conn.execute("INSERT INTO pairing_failures (at) VALUES (?)", (now,))
            if failures + 1 >= self.max_attempts:
                await conn.execute("UPDATE pairing_codes SET voided_at = ? WHERE used_at IS NULL AND voided_at IS NULL", (now,))
                raise PairingError(PAIRING_LOCKED)
            raise PairingError(PAIRING_INVALID)
        row, code = match
        if row["used_at"] is not None:
            raise PairingError(PAIRING_USED)
        if row["voided_at"] is not None:
            raise PairingError(PAIRING_LOCKED, VOIDED)
        if row["expires_at"] < now:
            raise PairingError(PAIRING_EXPIRED)
        await conn.execute("UPDATE pairing_codes SET used_at = ? WHERE code_hash = ?", (now, row["code_hash"]))
        return code
