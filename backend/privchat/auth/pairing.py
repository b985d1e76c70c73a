"""One-time pairing codes: short-lived, single use, stored only as a hash, void after wrong tries.

A code carries 50 bits of randomness (10 Crockford base32 characters), enough that with the
attempt limit an online guess has no practical chance; it is typed or scanned once and forgotten.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from ..errors import CodedError
from ..config import Config
from ..storage.db import Database

ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"  # Crockford: no I, L, O, U
CODE_LENGTH = 10  # 10 * 5 = 50 bits


class PairingError(CodedError):
    """A code refused: wrong, used or expired (403)."""

    status = 403


class PairingLocked(PairingError):
    """Too many wrong codes: 423, the owner must act at the machine (`privchat pair`)."""

    status = 423


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
            await conn.execute("INSERT INTO pairing_codes (code_hash, created_at, expires_at) VALUES (?, ?, ?)",
                               (hash_code(raw, self.secret), now, now + self.ttl))
        return PairingCode(format_code(raw), now + self.ttl)

    async def redeem(self, conn: Any, code: str) -> None:
        """Use up a code inside the caller's transaction, or raise PairingError (recording a wrong try).

        The caller must commit even on PairingError so the wrong try is counted: see ``redeem_or_count``.
        """
        now = time.time()
        async with conn.execute("SELECT COUNT(*) FROM pairing_failures") as cursor:
            failures = int((await cursor.fetchone())[0])
        if failures >= self.max_attempts:
            raise PairingLocked("pairing_locked", "Too many wrong pairing codes. Run `privchat pair` again for a new code.")
        async with conn.execute("SELECT * FROM pairing_codes WHERE code_hash = ?", (hash_code(code, self.secret),)) as cursor:
            row = await cursor.fetchone()
        if row is None:
            await conn.execute("INSERT INTO pairing_failures (at) VALUES (?)", (now,))
            if failures + 1 >= self.max_attempts:
                await conn.execute("UPDATE pairing_codes SET voided_at = ? WHERE used_at IS NULL AND voided_at IS NULL", (now,))
                raise PairingLocked("pairing_locked", "Too many wrong pairing codes; every open code is now void. "
                                                     "Run `privchat pair` again for a new code.")
            raise PairingError("pairing_invalid", "That pairing code is not right. Check it against `privchat pair`.")
        if row["used_at"] is not None:
            raise PairingError("pairing_used", "That pairing code was already used. Run `privchat pair` for a new one.")
        if row["voided_at"] is not None:
            raise PairingLocked("pairing_locked", "That pairing code was voided after too many wrong tries. Run `privchat pair` again.")
        if row["expires_at"] < now:
            raise PairingError("pairing_expired", "That pairing code has expired. Run `privchat pair` for a new one.")
        await conn.execute("UPDATE pairing_codes SET used_at = ? WHERE code_hash = ?", (now, row["code_hash"]))
