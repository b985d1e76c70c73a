"""Encryption at rest: the database file holds no plaintext, rows are bound, wrong keys refuse."""

from __future__ import annotations

import os
import shutil
import sqlite3
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from privchat.config import config_from_dict
from privchat.storage.crypto import Cipher, CryptoError, new_data_key
from privchat.storage.db import Database, DatabaseError
from privchat.storage.history import HistoryStore
from tests.support.server import write_config

SECRET_MESSAGE = "my bank PIN is 4711 and the cat is called Ziggystardust"
SECRET_PROMPT = "You are Captain Obviousness, answer in pirate speak"


def _db_bytes(folder: Path) -> bytes:
    data = folder / "data"
    return b"".join(p.read_bytes() for p in data.iterdir() if p.name.startswith("privchat.sqlite3"))


def test_the_database_file_holds_no_plaintext(server_factory) -> None:
    server = server_factory(name="enc")
    client = server.pair()
    events = client.chat(SECRET_MESSAGE, max_tokens=8)
    assert events[-1][0] == "done"
    assert client.put("/api/settings", {"system_prompt": SECRET_PROMPT}).status_code == 200
    server.stop()
    raw = _db_bytes(server.folder)
    assert raw, "no database written"
    for needle in (SECRET_MESSAGE, SECRET_PROMPT, SECRET_MESSAGE[:20], "Ziggystardust", "pirate speak"):
        assert needle.encode() not in raw, f"plaintext {needle!r} found in the database"
    key = (server.folder / "keys" / "privchat.key")
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert key.read_text().strip().encode() not in raw


def test_a_ciphertext_moved_to_another_row_does_not_decrypt(tmp_path: Path) -> None:
    import asyncio

    async def scenario() -> None:
        config = config_from_dict({"storage": {"data_dir": str(tmp_path / "d"), "key_file": str(tmp_path / "k")}})
        database = await Database.open(config)
        history = HistoryStore(database)
        first = await history.create_conversation("first")
        second = await history.create_conversation("second")
        a = await history.add_message(first, "user", "message A")
        b = await history.add_message(second, "user", "message B")
        await database.conn.execute("UPDATE messages SET content = (SELECT content FROM messages WHERE id = ?) WHERE id = ?", (a.id, b.id))
        with pytest.raises(CryptoError, match="moved from another row"):
            await history.get_message(b.id)
        assert (await history.get_message(a.id)).content == "message A"
        # The title column of a conversation cannot stand in for another either.
        await database.conn.execute("UPDATE conversations SET title = (SELECT title FROM conversations WHERE id = ?) WHERE id = ?", (first, second))
        with pytest.raises(CryptoError):
            await history.get_conversation(second)
        await database.close()

    asyncio.run(scenario())


def test_envelope_is_fresh_per_write_and_bound_to_its_column() -> None:
    cipher = Cipher(new_data_key())
    one = cipher.seal("same text", table="messages", column="content", row_id="r1")
    two = cipher.seal("same text", table="messages", column="content", row_id="r1")
    assert one != two  # a fresh nonce each time
    assert cipher.open(one, table="messages", column="content", row_id="r1") == "same text"
    with pytest.raises(CryptoError):
        cipher.open(one, table="conversations", column="title", row_id="r1")
    tampered = bytearray(one)
    tampered[-1] ^= 1
    with pytest.raises(CryptoError):
        cipher.open(bytes(tampered), table="messages", column="content", row_id="r1")
    with pytest.raises(CryptoError):
        Cipher(new_data_key()).open(one, table="messages", column="content", row_id="r1")


def _serve(config_path: Path, env: dict | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "privchat", "--config", str(config_path), "serve"],
                          capture_output=True, text=True, timeout=60, env={**os.environ, **(env or {})})


def test_a_wrong_key_file_refuses_to_start_and_changes_nothing(server_factory) -> None:
    server = server_factory(name="wrongkey")
    server.pair().chat("remember this", max_tokens=4)
    server.stop()
    key = server.folder / "keys" / "privchat.key"
    database = server.folder / "data" / "privchat.sqlite3"
    before_db = database.read_bytes()
    key.write_text("A" * 43 + "=\n")  # 32 bytes of a different key
    os.chmod(key, 0o600)
    wrong_key = key.read_bytes()
    result = _serve(server.config_path)
    assert result.returncode != 0
    assert "does not open this database" in result.stderr and "nothing was changed" in result.stderr
    assert database.read_bytes() == before_db
    assert key.read_bytes() == wrong_key


def test_a_missing_key_file_refuses_to_start(server_factory) -> None:
    server = server_factory(name="missingkey")
    server.stop()
    (server.folder / "keys" / "privchat.key").unlink()
    result = _serve(server.config_path)
    assert result.returncode != 0 and "is missing" in result.stderr
    assert not (server.folder / "keys" / "privchat.key").exists()


def test_a_key_file_readable_by_others_is_refused(server_factory) -> None:
    server = server_factory(name="loosekey")
    server.stop()
    os.chmod(server.folder / "keys" / "privchat.key", 0o644)
    result = _serve(server.config_path)
    assert result.returncode != 0 and "chmod 600" in result.stderr


def test_passphrase_mode_opens_with_the_right_passphrase_only(server_factory, monkeypatch) -> None:
    env = {"PRIVCHAT_PASSPHRASE": "correct horse battery staple"}
    monkeypatch.setenv("PRIVCHAT_PASSPHRASE", env["PRIVCHAT_PASSPHRASE"])  # the CLI (pair) needs it too
    server = server_factory({"storage": {"encryption": "passphrase"}}, name="pass", start=False)
    server.start(env=env)
    client = server.pair()
    client.chat(SECRET_MESSAGE, max_tokens=4)
    server.stop()
    assert SECRET_MESSAGE.encode() not in _db_bytes(server.folder)
    result = _serve(server.config_path, {"PRIVCHAT_PASSPHRASE": "wrong passphrase"})
    assert result.returncode != 0 and "passphrase does not open this database" in result.stderr
    server.start(env=env)
    assert client.get("/api/history").json()["conversations"][0]["title"].startswith("my bank PIN")


def test_encryption_off_is_stated_and_cannot_silently_switch(server_factory) -> None:
    server = server_factory({"storage": {"encryption": "off"}}, name="off")
    server.pair().chat("plain words here", max_tokens=4)
    server.stop()
    assert b"plain words here" in _db_bytes(server.folder)
    doctor = server.cli("doctor", check=False)
    assert "plain text" in doctor.stdout
    config = server.config
    config["storage"]["encryption"] = "keyfile"
    import yaml
    server.config_path.write_text(yaml.safe_dump(config))
    result = _serve(server.config_path)
    assert result.returncode != 0 and "created with 'off'" in result.stderr


def test_a_new_passphrase_database_records_argon2id_parameters(tmp_path: Path) -> None:
    """RFC 9106's second recommended option, recorded beside the wrapped key so it
    can be raised later. Negative control: before the change this read kdf 'scrypt', '32768,8,1'."""
    import asyncio
    import base64

    from argon2.low_level import Type, hash_secret_raw

    from privchat.storage.crypto import unwrap_data_key

    config = config_from_dict({"storage": {"data_dir": str(tmp_path / "d"), "encryption": "passphrase",
                                           "key_file": str(tmp_path / "unused")}})

    async def scenario() -> tuple[dict[str, str], bytes]:
        database = await Database.open(config, lambda: "a long and private passphrase")
        try:
            async with database.conn.execute("SELECT key, value FROM meta") as cursor:
                return {row[0]: row[1] for row in await cursor.fetchall()}, database.cipher.data_key
        finally:
            await database.close()

    meta, data_key = asyncio.run(scenario())
    assert (meta["kdf"], meta["kdf_params"]) == ("argon2id", "v=19,m=65536,t=3,p=4"), meta
    salt = base64.b64decode(meta["kdf_salt"])
    assert len(salt) == 16
    kek = hash_secret_raw(b"a long and private passphrase", salt, time_cost=3, memory_cost=65536, parallelism=4,
                          hash_len=32, type=Type.ID)
    assert unwrap_data_key(kek, base64.b64decode(meta["wrapped_data_key"]), 1) == data_key
    assert not (tmp_path / "unused").exists()
