"""Cleared history does not stay on disk.

SQLite leaves deleted rows in free pages unless ``secure_delete`` is on, and keeps every page it
wrote in the WAL file until a checkpoint. Debian's SQLite happens to default ``secure_delete`` to
on; macOS's system SQLite and most other builds do not. These tests therefore start every
connection from a simulated build whose default is off (the wrapper below), so they show what
privchat itself does, whatever the SQLite it runs on.

Negative control: before the change (no explicit pragma, no checkpoint after a delete),
``test_secure_delete_is_on_for_every_connection`` failed (``0 == 1``) and both scans found the
deleted message's ciphertext, in the WAL file, after the delete.
"""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any, Awaitable, Callable

import aiosqlite
import pytest

from privchat.config import config_from_dict
from privchat.storage import db as db_module
from privchat.storage.db import Database
from privchat.storage.history import HistoryStore

BACKEND = Path(__file__).resolve().parents[1] / "backend" / "privchat"


@pytest.fixture
def sqlite_default_off(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every new connection starts with secure_delete off, as on a build compiled without it."""
    original = aiosqlite.connect

    async def connect_off(*args: Any, **kwargs: Any) -> aiosqlite.Connection:
        conn = await original(*args, **kwargs)
        await conn.execute("PRAGMA secure_delete = OFF")
        return conn

    monkeypatch.setattr(db_module.aiosqlite, "connect", connect_off)


def _run(tmp_path: Path, scenario: Callable[[Database, Path], Awaitable[None]]) -> None:
    async def main() -> None:
        config = config_from_dict({"storage": {"data_dir": str(tmp_path / "d"), "key_file": str(tmp_path / "k")}})
        database = await Database.open(config)
        try:
            await scenario(database, config.database_path)
        finally:
            await database.close()

    asyncio.run(main())


def _on_disk(database_path: Path) -> bytes:
    """The database file and its WAL, as someone who later copies the folder would get them."""
    return b"".join(p.read_bytes() for p in (database_path, database_path.with_name(database_path.name + "-wal"))
                    if p.exists())


def test_secure_delete_is_on_for_every_connection(tmp_path: Path, sqlite_default_off: None) -> None:
    async def scenario(database: Database, path: Path) -> None:
        async with database.conn.execute("PRAGMA secure_delete") as cursor:
            assert (await cursor.fetchone())[0] == 1
        second = await db_module.connect(path)  # the CLI's connection beside the server's
        try:
            async with second.execute("PRAGMA secure_delete") as cursor:
                assert (await cursor.fetchone())[0] == 1
        finally:
            await second.close()

    _run(tmp_path, scenario)


def test_every_connection_is_opened_by_storage_db_connect() -> None:
    """So the pragma above holds for every connection: no other module opens SQLite itself."""
    opened = {}
    for source in BACKEND.rglob("*.py"):
        hits = re.findall(r"\b(?:aiosqlite|sqlite3)\.connect\(", source.read_text(encoding="utf-8"))
        if hits:
            opened[str(source.relative_to(BACKEND))] = len(hits)
    assert opened == {"storage/db.py": 1}, opened


async def _sealed_content(database: Database, message_id: str) -> bytes:
    async with database.conn.execute("SELECT content FROM messages WHERE id = ?", (message_id,)) as cursor:
        return bytes((await cursor.fetchone())[0])


@pytest.mark.parametrize("how", ["delete one conversation", "clear every conversation"])
def test_a_deleted_message_leaves_no_ciphertext_in_the_database_or_wal(tmp_path: Path, sqlite_default_off: None,
                                                                       how: str) -> None:
    async def scenario(database: Database, path: Path) -> None:
        history = HistoryStore(database)
        kept = await history.create_conversation("kept")
        await history.add_message(kept, "user", "this one stays " * 20)
        gone = await history.create_conversation("gone")
        message = await history.add_message(gone, "user", "this one is deleted " * 20)
        sealed = await _sealed_content(database, message.id)
        assert sealed in _on_disk(path), "control: the scan must find the ciphertext before the delete"
        if how == "delete one conversation":
            await history.delete_conversation(gone)
        else:
            await history.clear()
        on_disk = _on_disk(path)
        for part, what in ((sealed, "ciphertext"), (sealed[-16:], "GCM tag")):
            assert part not in on_disk, f"the deleted message's {what} is still in the database or WAL file"
        if how == "delete one conversation":
            assert [m.content for m in await history.messages(kept)] == ["this one stays " * 20]

    _run(tmp_path, scenario)
