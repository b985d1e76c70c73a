"""Migration 2: existing databases are re-sealed with the v2 associated
data, old passphrase databases move from scrypt to Argon2id, and a migration killed with SIGKILL
part-way leaves the database as it was.

The old databases are written by ``tests/support/legacy_db.py`` with sqlite3 and ``cryptography``
directly, in the format privchat used before.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import signal
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest
import yaml
from argon2.low_level import Type, hash_secret_raw
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from privchat.config import config_from_dict
from privchat.storage.crypto import CryptoError
from privchat.storage.db import MIGRATIONS, Database, DatabaseError
from privchat.storage.history import HistoryStore
from privchat.storage.settings import SettingsStore
from tests.support.legacy_db import LegacyConversation, LegacyMessage, build_v1_database
from tests.support.server import PRIVCHAT, REPO, write_config

PASSPHRASE = "correct horse battery staple"


def _conversations(count: int, per: int, words: int = 3) -> list[LegacyConversation]:
    return [LegacyConversation(f"c{c}", f"title {c}", [
        LegacyMessage(f"c{c}m{m}", "user" if m % 2 == 0 else "assistant", f"message {m} of {c}: " + "lorem ipsum " * words)
        for m in range(per)]) for c in range(count)]


def _user_version(path: Path) -> int:
    with sqlite3.connect(path, timeout=10) as conn:
        return int(conn.execute("PRAGMA user_version").fetchone()[0])


def _stored(path: Path, sql: str) -> dict[str, bytes]:
    conn = sqlite3.connect(path, timeout=10)
    try:
        return {row[0]: bytes(row[1]) for row in conn.execute(sql)}
    finally:
        conn.close()


def _messages(path: Path) -> dict[str, bytes]:
    return _stored(path, "SELECT id, content FROM messages")


def test_a_v1_database_is_resealed_and_its_old_ciphertexts_no_longer_open(tmp_path: Path) -> None:
    """Negative control: before the change the database stayed at version 1 and an old ciphertext
    put back into its row opened."""
    database_path, key_file = tmp_path / "data" / "privchat.sqlite3", tmp_path / "keys" / "privchat.key"
    conversations = _conversations(3, 4)
    build_v1_database(database_path, conversations, key_file=key_file,
                      settings_json=json.dumps({"system_prompt": "Speak like a sailor.", "temperature": 0.3}))
    before = _messages(database_path)
    old_settings = _stored(database_path, "SELECT key, value FROM settings")["preferences"]

    async def scenario() -> None:
        config = config_from_dict({"storage": {"data_dir": str(database_path.parent), "key_file": str(key_file)}})
        database = await Database.open(config)
        try:
            history, settings = HistoryStore(database), SettingsStore(database, config)
            for conversation in conversations:
                stored = await history.get_conversation(conversation.id)
                assert stored["title"] == conversation.title
                assert [(m["role"], m["content"]) for m in stored["messages"]] == [(m.role, m.content) for m in conversation.messages]
            assert (await settings.get())["system_prompt"] == "Speak like a sailor."
            after = _messages(database_path)
            assert after.keys() == before.keys() and all(after[k] != before[k] for k in before)  # every value re-sealed
            # An old ciphertext (a backup from before the migration) put back into its own row does not open.
            await database.conn.execute("UPDATE messages SET content = ? WHERE id = 'c1m2'", (before["c1m2"],))
            with pytest.raises(CryptoError, match="does not decrypt"):
                await history.get_message("c1m2")
            await database.conn.execute("UPDATE settings SET value = ?", (old_settings,))
            with pytest.raises(CryptoError, match="does not decrypt"):
                await settings.get()
        finally:
            await database.close()

    asyncio.run(scenario())
    assert _user_version(database_path) == len(MIGRATIONS) >= 2


def test_a_value_damaged_before_the_upgrade_does_not_keep_the_database_from_opening(tmp_path: Path, caplog) -> None:
    """A value that does not open even with the old associated data is left as it was (and named
    in the log); everything else is re-sealed, and only that value fails its integrity check."""
    database_path, key_file = tmp_path / "data" / "privchat.sqlite3", tmp_path / "keys" / "privchat.key"
    conversations = _conversations(2, 3)
    build_v1_database(database_path, conversations, key_file=key_file)
    with sqlite3.connect(database_path) as conn:
        damaged = bytearray(conn.execute("SELECT content FROM messages WHERE id = 'c0m1'").fetchone()[0])
        damaged[-1] ^= 1
        conn.execute("UPDATE messages SET content = ? WHERE id = 'c0m1'", (bytes(damaged),))

    async def scenario() -> None:
        config = config_from_dict({"storage": {"data_dir": str(database_path.parent), "key_file": str(key_file)}})
        database = await Database.open(config)
        try:
            history = HistoryStore(database)
            with pytest.raises(CryptoError, match="does not decrypt"):
                await history.get_message("c0m1")
            assert (await history.get_message("c0m2")).content == conversations[0].messages[2].content
            assert [m.content for m in await history.messages("c1")] == [m.content for m in conversations[1].messages]
        finally:
            await database.close()

    asyncio.run(scenario())
    assert _user_version(database_path) == len(MIGRATIONS)
    assert "messages.content of row c0m1" in caplog.text


def _meta(path: Path) -> dict[str, str]:
    conn = sqlite3.connect(path, timeout=10)
    try:
        return dict(conn.execute("SELECT key, value FROM meta"))
    finally:
        conn.close()


def test_an_old_scrypt_database_opens_and_is_rewrapped_with_argon2id(tmp_path: Path) -> None:
    """Negative control: before the change the database opened but kept its
    scrypt-wrapped key (kdf 'scrypt', N = 2^15)."""
    database_path = tmp_path / "data" / "privchat.sqlite3"
    conversations = _conversations(2, 2)
    data_key = build_v1_database(database_path, conversations, passphrase=PASSPHRASE)
    old_meta = _meta(database_path)
    config = config_from_dict({"storage": {"data_dir": str(database_path.parent), "encryption": "passphrase",
                                           "key_file": str(tmp_path / "unused.key")}})

    async def open_and_read(passphrase: str) -> str:
        database = await Database.open(config, lambda: passphrase)
        try:
            return (await HistoryStore(database).get_message("c1m1")).content
        finally:
            await database.close()

    assert asyncio.run(open_and_read(PASSPHRASE)) == conversations[1].messages[1].content
    meta = _meta(database_path)
    assert meta["kdf"] == "argon2id" and meta["kdf_params"] == "v=19,m=65536,t=3,p=4", meta
    assert meta["kdf_salt"] != old_meta["kdf_salt"] and meta["wrapped_data_key"] != old_meta["wrapped_data_key"]
    assert old_meta["wrapped_data_key"] not in database_path.read_bytes().decode("latin-1")
    # The wrapped key opens with exactly the recorded Argon2id parameters (RFC 9106's second option).
    kek = hash_secret_raw(PASSPHRASE.encode(), base64.b64decode(meta["kdf_salt"]), time_cost=3, memory_cost=65536,
                          parallelism=4, hash_len=32, type=Type.ID, version=19)
    wrapped = base64.b64decode(meta["wrapped_data_key"])
    assert AESGCM(kek).decrypt(wrapped[:12], wrapped[12:], b"privchat/data-key|k1") == data_key
    # It opens again (now through Argon2id), and a wrong passphrase still changes nothing.
    assert asyncio.run(open_and_read(PASSPHRASE)) == conversations[1].messages[1].content
    before = database_path.read_bytes()
    with pytest.raises(DatabaseError, match="passphrase does not open"):
        asyncio.run(open_and_read("wrong passphrase"))
    assert database_path.read_bytes() == before and _meta(database_path) == meta


def test_a_wrong_passphrase_on_an_old_scrypt_database_changes_nothing(tmp_path: Path) -> None:
    database_path = tmp_path / "data" / "privchat.sqlite3"
    build_v1_database(database_path, _conversations(1, 2), passphrase=PASSPHRASE)
    before, old_meta = _messages(database_path), _meta(database_path)
    config = config_from_dict({"storage": {"data_dir": str(database_path.parent), "encryption": "passphrase",
                                           "key_file": str(tmp_path / "unused.key")}})
    with pytest.raises(DatabaseError, match="passphrase does not open"):
        asyncio.run(Database.open(config, lambda: "not it"))
    assert _meta(database_path) == old_meta and _messages(database_path) == before
    assert _user_version(database_path) == 1  # nothing re-sealed without the key


# --- kill -9 in the middle of the migration --------------------------------------------------------

WAL_BYTES_BEFORE_KILL = 2 * 1024 * 1024


def _digest(path: Path) -> str:
    conn = sqlite3.connect(path, timeout=10)
    try:
        digest = hashlib.sha256()
        for sql in ("SELECT id, content FROM messages ORDER BY id", "SELECT id, title FROM conversations ORDER BY id",
                    "SELECT key, value FROM settings ORDER BY key"):
            for row_id, blob in conn.execute(sql):
                digest.update(row_id.encode() + b"\0" + bytes(blob))
        return digest.hexdigest()
    finally:
        conn.close()


@pytest.mark.slow
def test_a_migration_killed_part_way_leaves_the_database_untouched_then_finishes(tmp_path: Path) -> None:
    """A large version-1 database; `privchat history export` opens it, which runs migration 2 in one
    transaction; SIGKILL once the migration has written 2 MiB to the WAL.
    The database is then exactly as before (version 1, every sealed value byte for byte), and the
    next open finishes the migration with every message intact.

    Negative control: with a COMMIT after every batch of rows instead of one transaction (tried
    while writing this test), the killed database was left at version 1 with rows already
    re-sealed, and the byte-for-byte comparison below failed."""
    config_path = write_config(tmp_path)
    settings = yaml.safe_load(config_path.read_text())
    database_path = Path(settings["storage"]["data_dir"]) / "privchat.sqlite3"
    conversations = _conversations(500, 200, words=12)  # 100,000 messages, about 45 MB
    build_v1_database(database_path, conversations, key_file=Path(settings["storage"]["key_file"]),
                      settings_json=json.dumps({"system_prompt": "Be terse."}))
    before = _digest(database_path)
    wal = database_path.with_name(database_path.name + "-wal")

    process = subprocess.Popen([*PRIVCHAT, "--config", str(config_path), "history", "export", "-o", str(tmp_path / "x.json")],
                               cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    killed_at = 0
    while process.poll() is None and time.monotonic() < deadline:
        size = wal.stat().st_size if wal.exists() else 0
        if size >= WAL_BYTES_BEFORE_KILL:
            process.send_signal(signal.SIGKILL)
            killed_at = size
            break
        time.sleep(0.005)
    process.wait(30)
    assert killed_at, f"the migration ended before it was killed: exit {process.returncode}, {process.stderr.read().decode()}"
    assert process.returncode == -signal.SIGKILL

    assert _user_version(database_path) == 1
    assert _digest(database_path) == before  # untouched, byte for byte
    with sqlite3.connect(database_path, timeout=10) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"

    export_file = tmp_path / "export.json"
    finished = subprocess.run([*PRIVCHAT, "--config", str(config_path), "history", "export", "-o", str(export_file)],
                              cwd=REPO, capture_output=True, text=True, timeout=300)
    assert finished.returncode == 0, finished.stderr
    assert _user_version(database_path) == len(MIGRATIONS)
    exported = {c["id"]: c for c in json.loads(export_file.read_text())["conversations"]}
    assert len(exported) == 500 and sum(len(c["messages"]) for c in exported.values()) == 100_000
    for conversation in conversations[::97]:
        assert [m["content"] for m in exported[conversation.id]["messages"]] == [m.content for m in conversation.messages]
