"""Encryption at rest: AES-256-GCM envelopes bound to their row, and the key hierarchy.

A random 256-bit *data key* encrypts values. It is stored in the database only wrapped (AES-GCM)
by a *key-encryption key* (KEK) that comes from a 0600 key file kept apart from the database, or
from a passphrase through Argon2id (``kdf.py``). Rotating the passphrase or moving the key file
therefore never rewrites the messages, and a stolen database alone reads as noise.

Each value is sealed with a fresh 96-bit nonce, and the associated data names the table, column,
row id and key version, plus every other field that gives the value its meaning (``bound``: for a
message its conversation, role and position; for settings their version; see ``bindings.py``). So
someone who can write the database file but has no key cannot copy a ciphertext into another row,
move a message to another conversation, turn the owner's words into the assistant's, reorder a
conversation or put back an older settings value: the value then fails to open instead of
silently showing the wrong thing.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from ..errors import PrivchatError

ENVELOPE_PLAINTEXT = 0x00
ENVELOPE_AES_GCM = 0x01
NONCE_BYTES = 12
KEY_BYTES = 32

AAD_LABEL = "privchat/v2"

# What a value is bound to beyond its table, column and row: field name -> value.
Binding = Mapping[str, "str | int"]


class CryptoError(PrivchatError):
    """A value or key that does not open; the message says which (for the log: it names the row).

    Clients are told ``errors.INTEGRITY_FAILED`` instead, a sentence that names nothing stored."""


class WrongKeyError(CryptoError):
    """The key file or passphrase does not open this database."""


def associated_data(table: str, column: str, row_id: str, key_version: int, bound: Binding | None = None) -> bytes:
    """Canonical JSON, so no field value can be made to read as another field (no separator tricks)."""
    fields = sorted((str(name), str(value)) for name, value in (bound or {}).items())
    return json.dumps([AAD_LABEL, table, column, row_id, key_version, fields], separators=(",", ":")).encode("ascii")


def legacy_associated_data(table: str, column: str, row_id: str, key_version: int) -> bytes:
    """Schema version 1's associated data: read once by migration 2 (``reseal.py``), never written."""
    return f"privchat/v1|{table}|{column}|{row_id}|k{key_version}".encode()


@dataclass(frozen=True)
class Cipher:
    """Seals and opens values for one database. ``data_key=None`` means encryption is off."""

    data_key: bytes | None
    key_version: int = 1

    @property
    def enabled(self) -> bool:
        return self.data_key is not None

    def seal(self, plaintext: str, *, table: str, column: str, row_id: str, bound: Binding | None = None) -> bytes:
        return self.seal_bytes(plaintext.encode("utf-8"), table=table, column=column, row_id=row_id, bound=bound)

    def seal_bytes(self, raw: bytes, *, table: str, column: str, row_id: str, bound: Binding | None = None) -> bytes:
        """``seal`` for bytes (an attachment's file): the same envelope, the same associated data."""
        if self.data_key is None:
            return bytes([ENVELOPE_PLAINTEXT]) + raw
        nonce = os.urandom(NONCE_BYTES)
        aad = associated_data(table, column, row_id, self.key_version, bound)
        body = AESGCM(self.data_key).encrypt(nonce, raw, aad)
        return bytes([ENVELOPE_AES_GCM]) + self.key_version.to_bytes(4, "big") + nonce + body

    def open(self, envelope: bytes, *, table: str, column: str, row_id: str, bound: Binding | None = None,
             legacy: bool = False) -> str:
        """The plaintext, or CryptoError naming the row (never its content). ``legacy`` reads the
        schema-1 associated data, for migration 2 only."""
        return self.open_bytes(envelope, table=table, column=column, row_id=row_id, bound=bound,
                               legacy=legacy).decode("utf-8")

    def open_bytes(self, envelope: bytes, *, table: str, column: str, row_id: str, bound: Binding | None = None,
                   legacy: bool = False) -> bytes:
        """``open`` for bytes: the raw plaintext."""
        if not envelope:
            raise CryptoError(f"{table}.{column} of row {row_id} is empty, not an envelope")
        kind = envelope[0]
        if kind == ENVELOPE_PLAINTEXT:
            if self.data_key is not None:
                raise CryptoError(f"{table}.{column} of row {row_id} is stored unencrypted while encryption is on")
            return bytes(envelope[1:])
        if kind != ENVELOPE_AES_GCM:
            raise CryptoError(f"{table}.{column} of row {row_id} has an unknown envelope type {kind}")
        if self.data_key is None:
            raise CryptoError(f"{table}.{column} of row {row_id} is encrypted but encryption is off")
        if len(envelope) < 1 + 4 + NONCE_BYTES + 16:
            raise CryptoError(f"{table}.{column} of row {row_id} is too short to be an AES-GCM envelope")
        key_version = int.from_bytes(envelope[1:5], "big")
        nonce = envelope[5 : 5 + NONCE_BYTES]
        aad = (legacy_associated_data(table, column, row_id, key_version) if legacy
               else associated_data(table, column, row_id, key_version, bound))
        try:
            raw = AESGCM(self.data_key).decrypt(nonce, envelope[5 + NONCE_BYTES :], aad)
        except InvalidTag as exc:
            raise CryptoError(
                f"{table}.{column} of row {row_id} does not decrypt: altered, moved from another row, conversation, "
                "role or position, put back from an older copy, or sealed with another key"
            ) from exc
        return raw


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
