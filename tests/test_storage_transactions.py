"""A transaction cancelled half-way leaves the shared connection as it found it.

aiosqlite runs every statement on the connection's own thread, in the order they were sent, and
cancelling an ``await conn.execute(...)`` does not stop the statement: it still runs, later. The
server's periodic flush of a streaming reply is cancelled when the reply ends, and could be waiting
on its ``BEGIN IMMEDIATE`` just then. Before the fix, the write lock was released at once, the
BEGIN ran afterwards, and the connection stayed inside a transaction nobody owned: every later
transaction failed ("cannot start a transaction within a transaction", a 500 on the next import)
and every later single write went into it uncommitted, lost at exit.

Each test holds aiosqlite's thread with a slow query, so the statement the cancel lands on is
certainly still queued (asserted, so the test cannot pass by missing its window), then checks what
another connection sees.
"""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest

from privchat.storage.db import Database
from privchat.storage.history import HistoryStore
from tests.support.stores import with_history

# About a quarter of a second of work for SQLite's thread: long enough to queue statements behind.
SLOW_QUERY = ("WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n WHERE x < 2000000) "
              "SELECT count(*) FROM n")


async def _hold_the_thread(database: Database) -> asyncio.Task:
    async def slow() -> None:
        async with database.conn.execute(SLOW_QUERY) as cursor:
            await cursor.fetchone()
    task = asyncio.create_task(slow())
    await asyncio.sleep(0.02)  # it is on SQLite's thread now
    assert not task.done(), "the slow query ended too soon to queue anything behind it"
    return task


def _seen_by_another_connection(database: Database) -> list[str]:
    with sqlite3.connect(database.path, timeout=5) as other:
        return [row[0] for row in other.execute("SELECT key FROM settings ORDER BY key")]


async def _write_setting(database: Database, key: str) -> None:
    async with database.transaction() as conn:
        await conn.execute("INSERT INTO settings (key, value, updated_at) VALUES (?, '1', 0)", (key,))


@pytest.mark.slow  # seconds of subprocesses or real waits: not in the --fast loop
def test_a_cancel_while_begin_waits_leaves_no_transaction_open(tmp_path: Path) -> None:
    async def scenario(database: Database, _history: HistoryStore) -> None:
        slow = await _hold_the_thread(database)
        writer = asyncio.create_task(_write_setting(database, "cancelled-writer"))
        await asyncio.sleep(0.02)  # it holds the write lock and its BEGIN waits behind the slow query
        assert database._write_lock.locked() and not database.conn.in_transaction
        writer.cancel()
        with pytest.raises(asyncio.CancelledError):
            await writer
        await slow
        assert not database.conn.in_transaction, "the cancelled BEGIN left a transaction open"
        await _write_setting(database, "next-writer")  # before the fix: cannot start a transaction within a transaction
        assert "next-writer" in _seen_by_another_connection(database)
        assert "cancelled-writer" not in _seen_by_another_connection(database)
        await database.write("INSERT INTO settings (key, value, updated_at) VALUES ('single-write', '1', 0)")
        assert "single-write" in _seen_by_another_connection(database), "a single write went into an orphan transaction"

    with_history(tmp_path, scenario)


def test_a_cancel_while_commit_waits_lets_the_commit_finish_and_then_cancels(tmp_path: Path) -> None:
    async def scenario(database: Database, _history: HistoryStore) -> None:
        inserted = asyncio.Event()
        release = asyncio.Event()

        async def writer() -> None:
            async with database.transaction() as conn:
                await conn.execute("INSERT INTO settings (key, value, updated_at) VALUES ('committing', '1', 0)")
                inserted.set()
                await release.wait()

        task = asyncio.create_task(writer())
        await inserted.wait()
        slow = await _hold_the_thread(database)
        release.set()
        await asyncio.sleep(0.02)  # its COMMIT waits behind the slow query
        assert database.conn.in_transaction
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await slow
        assert not database.conn.in_transaction
        assert "committing" in _seen_by_another_connection(database)
        assert not database._write_lock.locked()
        await _write_setting(database, "after")
        assert "after" in _seen_by_another_connection(database)

    with_history(tmp_path, scenario)


@pytest.mark.slow  # seconds of subprocesses or real waits: not in the --fast loop
def test_a_cancel_inside_the_body_rolls_back_what_was_sent(tmp_path: Path) -> None:
    async def scenario(database: Database, _history: HistoryStore) -> None:
        began = asyncio.Event()

        async def writer() -> None:
            async with database.transaction() as conn:
                began.set()
                await conn.execute(SLOW_QUERY)  # the cancel lands here; the INSERT below was never sent
                await conn.execute("INSERT INTO settings (key, value, updated_at) VALUES ('never', '1', 0)")

        async def writer_with_a_queued_insert() -> None:
            async with database.transaction() as conn:
                slow = asyncio.ensure_future(conn.execute(SLOW_QUERY))
                await asyncio.sleep(0.02)
                began.set()
                # queued behind the slow query, so it runs after the cancel: the ROLLBACK must follow it
                await conn.execute("INSERT INTO settings (key, value, updated_at) VALUES ('queued', '1', 0)")
                await slow

        for body in (writer, writer_with_a_queued_insert):
            began.clear()
            task = asyncio.create_task(body())
            await began.wait()
            await asyncio.sleep(0.02)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            assert not database.conn.in_transaction, body.__name__
            assert not {"never", "queued"} & set(_seen_by_another_connection(database)), body.__name__
        await _write_setting(database, "after")
        assert "after" in _seen_by_another_connection(database)

    with_history(tmp_path, scenario)
