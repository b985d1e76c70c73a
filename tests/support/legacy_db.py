"""Databases as privchat wrote them before schema version 2: schema version 1, values sealed with the v1
associated data (table, column, row id and key version only), and in passphrase mode a data key
wrapped by scrypt (N = 2^15, r = 8, p = 1).

Written here with sqlite3 and ``cryptography`` directly, not with privchat's own code, so the
migration tests read a file in the old format rather than whatever today's code would write.
"""

from __future__ import annotations

import base64
import os
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from privchat.storage.db import MIGRATIONS

SCHEMA_V1 = MIGRATIONS[0]  # released migrations are never edited, so this is the v1 schema


@dataclass
class LegacyMessage:
    id: str
    role: str
    content: str


@dataclass
class LegacyConversation:
    id: str
    title: str
    messages: list[LegacyMessage] = field(default_factory=list)


def seal_v1(data_key: bytes, text: str, table: str, column: str, row_id: str) -> bytes:
    nonce = os.urandom(12)
    aad = f"privchat/v1|{table}|{column}|{row_id}|k1".encode()
    return b"\x01" + (1).to_bytes(4, "big") + nonce + AESGCM(data_key).encrypt(nonce, text.encode(), aad)


def _wrap(kek: bytes, data_key: bytes) -> str:
    nonce = os.urandom(12)
    return base64.b64encode(nonce + AESGCM(kek).encrypt(nonce, data_key, b"privchat/data-key|k1")).decode()


def scrypt_kek(passphrase: str, salt: bytes) -> bytes:
    return Scrypt(salt=salt, length=32, n=2**15, r=8, p=1).derive(passphrase.encode())


def build_v1_database(path: Path, conversations: list[LegacyConversation], *, key_file: Path | None = None,
                      passphrase: str | None = None, settings_json: str | None = None) -> bytes:
    """Write a version-1 database (key file or scrypt passphrase); returns its data key."""
    assert (key_file is None) != (passphrase is None)
    path.parent.mkdir(parents=True, exist_ok=True)
    data_key = os.urandom(32)
    meta = {"key_version": "1"}
    if key_file is not None:
        kek = os.urandom(32)
        key_file.parent.mkdir(parents=True, exist_ok=True)
        key_file.write_text(base64.b64encode(kek).decode() + "\n")
        key_file.chmod(0o600)
        meta.update(encryption="keyfile", wrapped_data_key=_wrap(kek, data_key))
    else:
        salt = os.urandom(16)
        meta.update(encryption="passphrase", wrapped_data_key=_wrap(scrypt_kek(passphrase, salt), data_key),
                    kdf="scrypt", kdf_salt=base64.b64encode(salt).decode(), kdf_params="32768,8,1")
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("BEGIN")
        for statement in (part.strip() for part in SCHEMA_V1.split(";")):
            if statement:
                conn.execute(statement)
        conn.executemany("INSERT INTO meta (key, value) VALUES (?, ?)", meta.items())
        now = 1_700_000_000.0
        for c, conversation in enumerate(conversations):
            conn.execute("INSERT INTO conversations (id, title, created_at, updated_at) VALUES (?, ?, ?, ?)",
                         (conversation.id, seal_v1(data_key, conversation.title, "conversations", "title", conversation.id),
                          now + c, now + c))
            conn.executemany(
                "INSERT INTO messages (id, conversation_id, seq, role, content, status, created_at, completed_at) "
                "VALUES (?, ?, ?, ?, ?, 'complete', ?, ?)",
                [(m.id, conversation.id, seq, m.role, seal_v1(data_key, m.content, "messages", "content", m.id), now + c, now + c)
                 for seq, m in enumerate(conversation.messages, start=1)])
        if settings_json is not None:
            conn.execute("INSERT INTO settings (key, value, updated_at) VALUES ('preferences', ?, ?)",
                         (seal_v1(data_key, settings_json, "settings", "value", "preferences"), now))
        conn.execute("PRAGMA user_version = 1")
        conn.execute("COMMIT")
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        conn.close()
    path.chmod(0o600)
    return data_key
