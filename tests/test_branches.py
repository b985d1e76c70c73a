"""Conversations as trees, at the storage level: branches, the current branch, the path a
reply sees, renames, export/import of the whole tree, the migration that makes old conversations one
branch, and tampering: a row moved to another branch or conversation does not decrypt."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path


import pytest

from privchat.config import config_from_dict
from privchat.storage.crypto import CryptoError
from privchat.storage.db import Database
from privchat.storage.export import ImportInvalid, export_to_markdown, history_export, import_conversations
from privchat.storage.history import HistoryStore, NotInConversation
from tests.support.legacy_db import LegacyConversation, LegacyMessage, build_v1_database
from tests.support.stores import with_history

TAMPERED = "does not decrypt"


async def _tree(history: HistoryStore) -> tuple[str, dict[str, str]]:
    """q1 → a1, a1' (regenerated); q1 → a1 → q2 → a2; an edit of q1: q1' → a3. Returns the ids by name."""
    conversation = await history.create_conversation("q1")
    ids: dict[str, str] = {}
    ids["q1"] = (await history.add_message(conversation, "user", "q1")).id
    ids["a1"] = (await history.add_message(conversation, "assistant", "a1")).id
    ids["q2"] = (await history.add_message(conversation, "user", "q2")).id
    ids["a2"] = (await history.add_message(conversation, "assistant", "a2")).id
    ids["a1b"] = (await history.add_message(conversation, "assistant", "a1 again", parent_id=ids["q1"])).id
    ids["q1b"] = (await history.add_message(conversation, "user", "q1 edited", parent_id=None)).id
    ids["a3"] = (await history.add_message(conversation, "assistant", "a3")).id
    return conversation, ids


def test_branches_paths_and_the_current_branch(tmp_path: Path) -> None:
    async def scenario(database: Database, history: HistoryStore) -> None:
        conversation, ids = await _tree(history)
        got = await history.get_conversation(conversation)
        parents = {m["id"]: m["parent_id"] for m in got["messages"]}
        assert parents == {ids["q1"]: None, ids["a1"]: ids["q1"], ids["q2"]: ids["a1"], ids["a2"]: ids["q2"],
                           ids["a1b"]: ids["q1"], ids["q1b"]: None, ids["a3"]: ids["q1b"]}
        assert got["current_leaf"] == ids["a3"]  # the branch written last
        assert [m.content for m in await history.path(conversation, ids["a2"])] == ["q1", "a1", "q2", "a2"]
        assert [m.content for m in await history.path(conversation, ids["a1b"])] == ["q1", "a1 again"]
        assert [m.content for m in await history.path(conversation, ids["q2"], last=2)] == ["a1", "q2"]
        # Switching to a message's branch keeps its newest end; a message added without a parent goes there.
        assert await history.set_current_leaf(conversation, ids["q1"]) == ids["a1b"]
        assert await history.set_current_leaf(conversation, ids["a1"]) == ids["a2"]
        added = await history.add_message(conversation, "user", "q3")
        assert added.parent_id == ids["a2"]
        with pytest.raises(NotInConversation):
            await history.add_message(conversation, "user", "x", parent_id="no-such-message")
        other = await history.create_conversation("other")
        with pytest.raises(NotInConversation):
            await history.add_message(other, "user", "x", parent_id=ids["q1"])
        with pytest.raises(NotInConversation):
            await history.set_current_leaf(other, ids["q1"])

    with_history(tmp_path, scenario)


def test_a_rename_is_never_overwritten_by_the_model(tmp_path: Path) -> None:
    async def scenario(database: Database, history: HistoryStore) -> None:
        first = await history.create_conversation("What is the capital of France?")
        assert await history.rename(first, "Capital of France", source="model")
        assert not await history.rename(first, "Another model title", source="model")
        second = await history.create_conversation("hello")
        assert await history.rename(second, "Mine", source="owner")
        assert not await history.rename(second, "The model's", source="model")
        got = await history.get_conversation(second)
        assert (got["title"], got["title_source"]) == ("Mine", "owner")
        assert (await history.get_conversation(first))["title"] == "Capital of France"

    with_history(tmp_path, scenario)


def test_deleting_a_conversation_removes_every_branch(tmp_path: Path) -> None:
    async def scenario(database: Database, history: HistoryStore) -> None:
        conversation, ids = await _tree(history)
        kept = await history.create_conversation("kept")
        await history.add_message(kept, "user", "kept")
        await history.delete_conversation(conversation)
        async with database.conn.execute("SELECT id FROM messages") as cursor:
            left = {row[0] for row in await cursor.fetchall()}
        assert not left & set(ids.values()) and len(left) == 1

    with_history(tmp_path, scenario)


def test_a_message_moved_to_another_branch_does_not_decrypt(tmp_path: Path) -> None:
    async def scenario(database: Database, history: HistoryStore) -> None:
        conversation, ids = await _tree(history)
        # q2 answered a1; pretend it answered the regenerated a1' instead.
        await database.conn.execute("UPDATE messages SET parent_id = ? WHERE id = ?", (ids["a1b"], ids["q2"]))
        with pytest.raises(CryptoError, match=TAMPERED):
            await history.get_message(ids["q2"])
        with pytest.raises(CryptoError, match=TAMPERED):
            await history.get_conversation(conversation)
        # Made a first message of its own: also refused.
        await database.conn.execute("UPDATE messages SET parent_id = NULL WHERE id = ?", (ids["q2"],))
        with pytest.raises(CryptoError, match=TAMPERED):
            await history.get_message(ids["q2"])
        assert [m.content for m in await history.path(conversation, ids["a1b"])] == ["q1", "a1 again"]

    with_history(tmp_path, scenario)


def test_a_branch_moved_to_another_conversation_does_not_decrypt(tmp_path: Path) -> None:
    async def scenario(database: Database, history: HistoryStore) -> None:
        conversation, ids = await _tree(history)
        other = await history.create_conversation("other")
        await history.add_message(other, "user", "other words")
        # The edited branch (q1', a3) moved whole, parents kept, seqs renumbered to fit.
        await database.conn.execute("UPDATE messages SET conversation_id = ?, seq = seq + 100 WHERE id IN (?, ?)",
                                    (other, ids["q1b"], ids["a3"]))
        with pytest.raises(CryptoError, match=TAMPERED):
            await history.get_message(ids["q1b"])
        with pytest.raises(CryptoError, match=TAMPERED):
            await history.get_message(ids["a3"])

    with_history(tmp_path, scenario)


def test_export_and_import_carry_the_whole_tree(tmp_path: Path) -> None:
    async def scenario(database: Database, history: HistoryStore) -> None:
        conversation, ids = await _tree(history)
        await history.set_current_leaf(conversation, ids["a2"])
        await history.rename(conversation, "Renamed", source="owner")
        before = await history.get_conversation(conversation)
        export = await history_export(history)
        assert export["version"] == 3  # 3 since attachments; version 2 files still import (test_attachments.py)
        markdown = export_to_markdown(export)
        assert "q2" in markdown and "a2" in markdown and "a1 again" not in markdown and "q1 edited" not in markdown
        await history.clear()
        result = await import_conversations(history, export["conversations"])
        assert result == {"imported_conversations": 1, "imported_messages": 7, "skipped": 0}
        assert await history.get_conversation(conversation) == before
        again = await import_conversations(history, export["conversations"])
        assert again["imported_messages"] == 0

        # A parent that is not an earlier message of the conversation: refused, and nothing imported.
        broken = dict(export["conversations"][0], id="broken")
        broken["messages"] = [dict(m, id=m["id"] + "x") for m in broken["messages"]]
        with pytest.raises(ImportInvalid):
            await import_conversations(history, [broken])
        assert await history.conversation_exists("broken") is False

    with_history(tmp_path, scenario)


def test_an_old_flat_export_imports_as_one_branch(tmp_path: Path) -> None:
    async def scenario(database: Database, history: HistoryStore) -> None:
        now = 1_700_000_000.0
        flat = {"id": "flat", "title": "flat", "created_at": now, "updated_at": now, "messages": [
            {"id": f"m{i}", "role": "user" if i % 2 == 0 else "assistant", "content": f"text {i}", "status": "complete",
             "created_at": now + i} for i in range(4)]}
        await import_conversations(history, [flat])
        got = await history.get_conversation("flat")
        assert [m["parent_id"] for m in got["messages"]] == [None, "m0", "m1", "m2"]
        assert got["current_leaf"] == "m3"

    with_history(tmp_path, scenario)


def test_the_migration_keeps_each_old_conversation_as_one_branch(tmp_path: Path) -> None:
    db_path = tmp_path / "d" / "privchat.sqlite3"
    key_file = tmp_path / "k"
    build_v1_database(db_path, [
        LegacyConversation("c1", "old one", [LegacyMessage(f"c1m{i}", "user" if i % 2 == 0 else "assistant", f"old {i}")
                                             for i in range(5)]),
        LegacyConversation("c2", "empty", []),
    ], key_file=key_file)

    async def main() -> None:
        config = config_from_dict({"storage": {"data_dir": str(tmp_path / "d"), "key_file": str(key_file)}})
        database = await Database.open(config)
        try:
            history = HistoryStore(database)
            got = await history.get_conversation("c1")
            assert [m["content"] for m in got["messages"]] == [f"old {i}" for i in range(5)]
            assert [m["parent_id"] for m in got["messages"]] == [None, "c1m0", "c1m1", "c1m2", "c1m3"]
            assert got["current_leaf"] == "c1m4" and got["title_source"] == "first_message"
            assert [m.content for m in await history.path("c1", "c1m4")] == [f"old {i}" for i in range(5)]
            assert (await history.get_conversation("c2"))["current_leaf"] is None
        finally:
            await database.close()
        # Re-sealed bound to the parent: moving an old row to another branch fails too.
        with sqlite3.connect(db_path) as conn:
            conn.execute("UPDATE messages SET parent_id = 'c1m0' WHERE id = 'c1m3'")
        database = await Database.open(config)
        try:
            with pytest.raises(CryptoError, match=TAMPERED):
                await HistoryStore(database).get_message("c1m3")
        finally:
            await database.close()

    asyncio.run(main())
