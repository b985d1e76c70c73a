"""Migration 2: every stored value re-sealed with the associated data of ``bindings.py``.

Schema version 1 bound a value to its table, column, row id and key version only. This step opens
each value with that old associated data and seals it again bound to its conversation, role and
position (messages) or to a version (settings, which gain a ``version`` column). It needs the data
key, so ``db.migrate`` runs it after unlocking.

It runs inside the migration's single transaction (``BEGIN IMMEDIATE`` … ``COMMIT`` in
``db.migrate``): a crash or kill -9 part-way leaves every row as it was, with the schema still at
version 1, and the next start does it all again. Rows are read and written in batches by rowid, so
a large history never sits in memory whole; each batch's AES work runs in a thread.

A value that does not open with the old associated data (damaged or tampered before the upgrade;
the key itself was checked by unlocking) is left as it is and named in the log: it then fails its
integrity check when read, like any other tampered value, instead of keeping the whole database
from opening.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Callable, Sequence

import aiosqlite

from .bindings import flat_message_binding, settings_binding
from .crypto import Cipher, CryptoError

log = logging.getLogger(__name__)

BATCH_ROWS = 2000

# A batch of rows in, (new sealed value, rowid) for each value that opened out; names the rest.
Resealer = Callable[[Sequence[Any], list[str]], list[tuple[bytes, int]]]


async def reseal_schema_1_values(conn: aiosqlite.Connection, cipher: Cipher) -> None:
    await conn.execute("ALTER TABLE settings ADD COLUMN version INTEGER NOT NULL DEFAULT 0")
    await _in_batches(conn, "SELECT rowid, id, conversation_id, role, seq, content FROM messages",
                      "UPDATE messages SET content = ? WHERE rowid = ?", lambda rows, bad: _messages(cipher, rows, bad))
    await _in_batches(conn, "SELECT rowid, id, title FROM conversations",
                      "UPDATE conversations SET title = ? WHERE rowid = ?", lambda rows, bad: _titles(cipher, rows, bad))
    await _in_batches(conn, "SELECT rowid, key, value FROM settings",
                      "UPDATE settings SET value = ?, version = 1 WHERE rowid = ?", lambda rows, bad: _settings(cipher, rows, bad))


async def _in_batches(conn: aiosqlite.Connection, select: str, update: str, reseal: Resealer) -> None:
    last = -1
    unopened: list[str] = []
    while True:
        async with conn.execute(f"{select} WHERE rowid > ? ORDER BY rowid LIMIT ?", (last, BATCH_ROWS)) as cursor:
            rows = list(await cursor.fetchall())
        if not rows:
            break
        await conn.executemany(update, await asyncio.to_thread(reseal, rows, unopened))
        last = rows[-1][0]
    for problem in unopened[:20]:
        log.warning("left as it was, it will fail its integrity check: %s", problem)
    if len(unopened) > 20:
        log.warning("and %d more values that did not open", len(unopened) - 20)


def _reseal(cipher: Cipher, envelope: bytes, unopened: list[str], *, table: str, column: str, row_id: str,
            bound: dict[str, Any] | None = None) -> bytes | None:
    try:
        text = cipher.open(envelope, table=table, column=column, row_id=row_id, legacy=True)
    except CryptoError as exc:
        unopened.append(str(exc))
        return None
    return cipher.seal(text, table=table, column=column, row_id=row_id, bound=bound)


def _messages(cipher: Cipher, rows: Sequence[Any], unopened: list[str]) -> list[tuple[bytes, int]]:
    out = []
    for rowid, message_id, conversation_id, role, seq, content in rows:
        sealed = _reseal(cipher, content, unopened, table="messages", column="content", row_id=message_id,
                         bound=dict(flat_message_binding(conversation_id, role, seq)))
        if sealed is not None:
            out.append((sealed, rowid))
    return out


def _titles(cipher: Cipher, rows: Sequence[Any], unopened: list[str]) -> list[tuple[bytes, int]]:
    out = []
    for rowid, conversation_id, title in rows:
        sealed = _reseal(cipher, title, unopened, table="conversations", column="title", row_id=conversation_id)
        if sealed is not None:
            out.append((sealed, rowid))
    return out


def _settings(cipher: Cipher, rows: Sequence[Any], unopened: list[str]) -> list[tuple[bytes, int]]:
    out = []
    for rowid, key, value in rows:
        sealed = _reseal(cipher, value, unopened, table="settings", column="value", row_id=key,
                         bound=dict(settings_binding(1)))
        if sealed is not None:
            out.append((sealed, rowid))
    return out
