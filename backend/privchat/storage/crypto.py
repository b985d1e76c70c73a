"""Encryption at rest: AES-256-GCM envelopes bound to their row, and the key hierarchy.

A random 256-bit *data key* encrypts values. It is stored in the database only wrapped (AES-GCM)
by a *key-encryption key* (KEK) that comes from a 0600 key file kept apart from the database, or
from a passphrase through scrypt. Rotating the passphrase or moving the key file therefore never
rewrites the messages, and a stolen database alone reads as noise.

Each value is sealed with a fresh 96-bit nonce, and the associated data names the table, column,
row id and key version, so a ciphertext copied into another row (or column) fails to open instead
of silently showing the wrong text.
"""

from __future__ import annotations

import base64
import os
import secrets
import stat
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

ENVELOPE_PLAINTEXT = 0x00
ENVELOPE_AES_GCM = 0x01
NONCE_BYTES = 12
KEY_BYTES = 32

# scrypt cost: about 0.1 s and 32 MiB on a laptop; stored with the salt so it can be raised later.
SCRYPT_N = 2**15
SCRYPT_R = 8
SCRYPT_P = 1


class CryptoError(Exception):
    """A value or key that does not open; the message says which."""


class WrongKeyError(CryptoError):
    """The key file or passphrase does not open this database."""


def associated_data(table: str, column: str, row_id: str, key_version: int) -> bytes:
    return f"privchat/v1|{table}|{column}|{row_id}|k{key_version}".encode()


@dataclass(frozen=True)
class Cipher:
    """Seals and opens values for one database. ``data_key=None`` means encryption is off."""

    data_key: bytes | None
    key_version: int = 1

    @property
    def enabled(self) -> bool:
        return self.data_key is not None

    def seal(self, plaintext: str, *, table: str, column: str, row_id: str) -> bytes:
        raw = plaintext.encode("utf-8")
        if self.data_key is None:
            return bytes([ENVELOPE_PLAINTEXT]) + raw
        nonce = os.urandom(NONCE_BYTES)
        aad = associated_data(table, column, row_id, self.key_version)
        body = AESGCM(self.data_key).encrypt(nonce, raw, aad)
        return bytes([ENVELOPE_AES_GCM]) + self.key_version.to_bytes(4, "big") + nonce + body

    def open(self, envelope: bytes, *, table: str, column: str, row_id: str) -> str:
        if not envelope:
            raise CryptoError(f"{table}.{column} of row {row_id} is empty, not an envelope")
        kind = envelope[0]
        if kind == ENVELOPE_PLAINTEXT:
            if self.data_key is not None:
                raise CryptoError(f"{table}.{column} of row {row_id} is stored unencrypted while encryption is on")
            return envelope[1:].decode("utf-8")
        if kind != ENVELOPE_AES_GCM:
            raise CryptoError(f"{table}.{column} of row {row_id} has an unknown envelope type {kind}")
        if self.data_key is None:
            raise CryptoError(f"{table}.{column} of row {row_id} is encrypted but encryption is off")
        if len(envelope) < 1 + 4 + NONCE_BYTES + 16:
            raise CryptoError(f"{table}.{column} of row {row_id} is too short to be an AES-GCM envelope")
        key_version = int.from_bytes(envelope[1:5], "big")
        nonce = envelope[5 : 5 + NONCE_BYTES]
        aad = associated_data(table, column, row_id, key_version)
        try:
            raw = AESGCM(self.data_key).decrypt(nonce, envelope[5 + NONCE_BYTES :], aad)
        except InvalidTag as exc:
            raise CryptoError(
                f"{table}.{column} of row {row_id} does not decrypt: altered, moved from another row, or another key"
            ) from exc
        return raw.decode("utf-8")


# --------------------------------------------------------------------------------------------
# Key-encryption keys
# --------------------------------------------------------------------------------------------

def wrap_data_key(kek: bytes, data_key: bytes, key_version: int) -> bytes:
    nonce = os.urandom(NONCE_BYTES)
    return nonce + AESGCM(kek).encrypt(nonce, data_key, f"privchat/data-key|k{key_version}".encode())


def unwrap_data_key(kek: bytes, wrapped: bytes, key_version: int) -> bytes:
    try:
        return AESGCM(kek).decrypt(wrapped[:NONCE_BYTES], wrapped[NONCE_BYTES:], f"privchat/data-key|k{key_version}".encode())
    except InvalidTag as exc:
        raise WrongKeyError("the key does not open this database's data key") from exc


def new_data_key() -> bytes:
    return secrets.token_bytes(KEY_BYTES)


def derive_kek_from_passphrase(passphrase: str, salt: bytes, n: int = SCRYPT_N, r: int = SCRYPT_R, p: int = SCRYPT_P) -> bytes:
    """Blocking (about 0.1 s by design): call it from a thread."""
    if not passphrase:
        raise CryptoError("the passphrase is empty")
    return Scrypt(salt=salt, length=KEY_BYTES, n=n, r=r, p=p).derive(passphrase.encode("utf-8"))


def read_key_file(path: Path) -> bytes:
    """Read a KEK file, refusing one that others can read: it is the key to the whole history."""
    mode = path.stat().st_mode
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise CryptoError(f"key file {path} is readable by other users (mode {oct(mode & 0o777)}); run: chmod 600 {path}")
    try:
        key = base64.b64decode(path.read_text(encoding="ascii").strip(), validate=True)
    except (ValueError, UnicodeDecodeError) as exc:
        raise CryptoError(f"key file {path} is not a privchat key (expected base64 of 32 bytes)") from exc
    if len(key) != KEY_BYTES:
        raise CryptoError(f"key file {path} holds {len(key)} bytes, expected {KEY_BYTES}")
    return key


def create_key_file(path: Path) -> bytes:
    """Create a new KEK file with mode 0600, never overwriting an existing one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    key = secrets.token_bytes(KEY_BYTES)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as handle:
        handle.write(base64.b64encode(key).decode("ascii") + "\n")
    return key
