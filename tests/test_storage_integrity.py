"""Rows cannot be rearranged without the key.

Someone who can write the database file but has no key could, when only table, column, row id and
key version were bound, move a message into another conversation, turn the owner's words into the
assistant's, reorder a conversation, or put back an older sealed settings value, and every value
still decrypted. Each test here makes exactly one such change with plain SQL, as that person
would, and shows the value no longer opens and what the API then answers.

Negative control: run against the code before this change (associated data
``privchat/v1|table|column|row|kN``), each tampering test failed with "DID NOT RAISE": the moved,
re-labelled, reordered or rolled-back value decrypted as if nothing had happened.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from pathlib import Path
from typing import Any, Awaitable, Callable

import pytest

from privchat.config import config_from_dict
from privchat.storage.crypto import CryptoError
from privchat.storage.db import Database
from privchat.storage.history import HistoryStore
from privchat.storage.settings import SettingsStore

TAMPERED = "does not decrypt"


def _run(tmp_path: Path, scenario: Callable[[Database, HistoryStore, SettingsStore], Awaitable[None]]) -> None:
    async def main() -> None:
        config = config_from_dict({"storage": {"data_dir": str(tmp_path / "d"), "key_file": str(tmp_path / "k")}})
        database = await Database.open(config)
        try:
            await scenario(database, HistoryStore(database), SettingsStore(database, config))
        finally:
            await database.close()

    asyncio.run(main())


def test_a_message_moved_to_another_conversation_does_not_decrypt(tmp_path: Path) -> None:
    async def scenario(database: Database, history: HistoryStore, settings: SettingsStore) -> None:
        mine = await history.create_conversation("mine")
        other = await history.create_conversation("other")
        await history.add_message(mine, "user", "first words")
        moved = await history.add_message(mine, "user", "second words")  # seq 2, free in `other`
        await history.add_message(other, "user", "other words")
        await database.conn.execute("UPDATE messages SET conversation_id = ? WHERE id = ?", (other, moved.id))
        with pytest.raises(CryptoError, match=TAMPERED):
            await history.messages(other)
        with pytest.raises(CryptoError, match=TAMPERED):
            await history.get_message(moved.id)
        assert [m.content for m in await history.messages(mine)] == ["first words"]  # the rest still opens

    _run(tmp_path, scenario)


def test_a_message_whose_role_changed_does_not_decrypt(tmp_path: Path) -> None:
    async def scenario(database: Database, history: HistoryStore, settings: SettingsStore) -> None:
        conversation = await history.create_conversation("roles")
        said = await history.add_message(conversation, "user", "delete all my files")
        await history.add_message(conversation, "assistant", "I will not.")
        await database.conn.execute("UPDATE messages SET role = 'assistant' WHERE id = ?", (said.id,))
        with pytest.raises(CryptoError, match=TAMPERED):
            await history.get_message(said.id)
        await database.conn.execute("UPDATE messages SET role = 'user' WHERE id = ?", (said.id,))
        assert (await history.get_message(said.id)).content == "delete all my files"  # control: put right, it opens

    _run(tmp_path, scenario)


def test_reordered_messages_do_not_decrypt(tmp_path: Path) -> None:
    async def scenario(database: Database, history: HistoryStore, settings: SettingsStore) -> None:
        conversation = await history.create_conversation("order")
        first = await history.add_message(conversation, "user", "yes")
        second = await history.add_message(conversation, "user", "no")
        for statement, params in (("UPDATE messages SET seq = 100 WHERE id = ?", (first.id,)),
                                  ("UPDATE messages SET seq = 1 WHERE id = ?", (second.id,)),
                                  ("UPDATE messages SET seq = 2 WHERE id = ?", (first.id,))):
            await database.conn.execute(statement, params)
        with pytest.raises(CryptoError, match=TAMPERED):
            await history.messages(conversation)
        with pytest.raises(CryptoError, match=TAMPERED):
            await history.get_message(first.id)
        with pytest.raises(CryptoError, match=TAMPERED):
            await history.get_message(second.id)

    _run(tmp_path, scenario)


def test_an_old_settings_value_put_back_does_not_decrypt(tmp_path: Path) -> None:
    async def scenario(database: Database, history: HistoryStore, settings: SettingsStore) -> None:
        await settings.put({"system_prompt": "Answer in French."})
        async with database.conn.execute("SELECT value FROM settings") as cursor:
            old = (await cursor.fetchone())[0]
        await settings.put({"system_prompt": "Answer in English."})
        assert (await settings.get())["system_prompt"] == "Answer in English."
        await database.conn.execute("UPDATE settings SET value = ?", (old,))
        with pytest.raises(CryptoError, match=TAMPERED):
            await settings.get()

    _run(tmp_path, scenario)


# --- what the API answers ------------------------------------------------------------------------

def _import(client: Any, conversations: list[dict[str, Any]]) -> None:
    now = time.time()
    response = client.post("/api/history/import", {"format": "privchat-export", "version": 1, "exported_at": now,
                                                    "conversations": conversations})
    assert response.status_code == 200, response.text


def test_the_api_answers_tampering_with_a_code_and_a_sentence_never_plaintext(server_factory) -> None:
    server = server_factory({"model": {"enabled": False}}, name="tamper")
    client = server.pair()
    now = time.time()
    secret = "the safe behind the painting opens with 8-4-2-9"
    _import(client, [
        {"id": "victim", "title": "victim", "created_at": now, "updated_at": now, "messages": [
            {"id": "v1", "role": "user", "content": secret, "status": "complete", "created_at": now},
            {"id": "v2", "role": "assistant", "content": "noted", "status": "complete", "created_at": now + 1}]},
        {"id": "other", "title": "other", "created_at": now, "updated_at": now, "messages": [
            {"id": "o1", "role": "user", "content": "hello", "status": "complete", "created_at": now}]},
    ])
    assert client.put("/api/settings", {"system_prompt": "Be brief."}).status_code == 200
    database = Path(server.config["storage"]["data_dir"]) / "privchat.sqlite3"
    with sqlite3.connect(database, timeout=10) as conn:
        old_settings = conn.execute("SELECT value FROM settings").fetchone()[0]
    assert client.put("/api/settings", {"system_prompt": "Be thorough."}).status_code == 200
    with sqlite3.connect(database, timeout=10) as conn:
        conn.execute("UPDATE messages SET conversation_id = 'other', seq = 2 WHERE id = 'v2'")
        conn.execute("UPDATE settings SET value = ?", (old_settings,))

    for path in ("/api/history/other", "/api/settings", "/api/history/export"):
        response = client.get(path)
        assert response.status_code == 409, (path, response.status_code, response.text)
        error = response.json()["error"]
        assert error["code"] == "integrity_failed", error
        assert "changed outside privchat" in error["message"] and len(error["message"].split()) >= 12, error
        for needle in (secret, "noted", "Be brief", "Be thorough", "hello"):
            assert needle not in response.text, (path, needle)
    # What was not touched still opens: the list of titles and the conversation the reply left.
    assert client.get("/api/history").status_code == 200
    # Saving settings again replaces the value that failed, from the defaults: the owner is not stuck.
    saved = client.put("/api/settings", {"temperature": 0.2})
    assert saved.status_code == 200 and saved.json()["system_prompt"] != "Be thorough.", saved.text
    assert client.get("/api/settings").json()["temperature"] == 0.2
    victim = client.get("/api/history/victim")
    assert victim.status_code == 200 and [m["content"] for m in victim.json()["messages"]] == [secret]
    server.stop()
    log = server.log()
    assert "integrity" in log and "messages.content" in log  # the owner finds which row in the log
    assert secret not in log and "Be brief" not in log


def test_a_reply_in_a_tampered_conversation_ends_with_integrity_failed(server_factory) -> None:
    """The chat stream, which reads the conversation only once the reply starts, ends with the same
    code instead of "the model failed". Negative control: before the change the earlier message
    opened and the reply was written as if nothing had happened."""
    server = server_factory(name="tamper-chat")
    client = server.pair()
    first = client.chat("remember the word periwinkle", max_tokens=4)
    conversation = next(data for kind, data in first if kind == "start")["conversation_id"]
    database = Path(server.config["storage"]["data_dir"]) / "privchat.sqlite3"
    with sqlite3.connect(database, timeout=10) as conn:
        conn.execute("UPDATE messages SET role = 'assistant' WHERE conversation_id = ? AND seq = 1", (conversation,))
    events = client.chat("what was the word?", conversation, max_tokens=4)
    assert events[-1][0] == "error" and events[-1][1]["code"] == "integrity_failed", events
    server.stop()
    assert "periwinkle" not in server.log() and "messages.content" in server.log()
