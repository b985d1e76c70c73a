"""Conversations and messages, sealed per value with the database cipher.

Ids are random UUIDs chosen before the insert, so each value's associated data can name its row.
A message is also bound to its conversation, role and position (``bindings.py``), so it is sealed
inside the transaction that picks its position. Deletes end with a WAL checkpoint, so what was
deleted does not linger in the WAL file.
"""

from __future__ import annotations

import base64
import time
import uuid
from dataclasses import dataclass
from typing import Any, Iterable

from .bindings import message_binding
from .db import Database

TITLE_LENGTH = 60
MESSAGE_STATUSES = ("complete", "streaming", "cancelled", "interrupted", "error")
ROLES = ("system", "user", "assistant")


class NotFound(LookupError):
    """No conversation or message with that id."""


def new_id() -> str:
    return str(uuid.uuid4())


def title_from_message(text: str) -> str:
    """The first line of the first message, shortened: enough to find a conversation again."""
    first_line = next((line.strip() for line in text.splitlines() if line.strip()), "") or "New conversation"
    return first_line if len(first_line) <= TITLE_LENGTH else first_line[: TITLE_LENGTH - 1].rstrip() + "…"


@dataclass
class Message:
    id: str
    conversation_id: str
    seq: int
    role: str
    content: str
    status: str
    created_at: float
    completed_at: float | None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    finish_reason: str | None = None
    ttft_ms: float | None = None
    tokens_per_second: float | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id, "role": self.role, "content": self.content, "status": self.status,
            "created_at": self.created_at, "completed_at": self.completed_at,
            "prompt_tokens": self.prompt_tokens, "completion_tokens": self.completion_tokens,
            "finish_reason": self.finish_reason, "ttft_ms": self.ttft_ms, "tokens_per_second": self.tokens_per_second,
        }


def _column(row: Any, name: str) -> Any:
    """A column added by a later migration (None on a row read before it ran)."""
    return row[name] if name in row.keys() else None


class HistoryStore:
    def __init__(self, database: Database) -> None:
        self.database = database
        self.cipher = database.cipher

    # Writing ----------------------------------------------------------------------------------
    async def create_conversation(self, first_message: str, *, conversation_id: str | None = None,
                                  now: float | None = None) -> str:
        conversation_id = conversation_id or new_id()
        now = time.time() if now is None else now
        title = self.cipher.seal(title_from_message(first_message), table="conversations", column="title", row_id=conversation_id)
        async with self.database.transaction() as conn:
            await conn.execute(
                "INSERT INTO conversations (id, title, created_at, updated_at) VALUES (?, ?, ?, ?)",
                (conversation_id, title, now, now),
            )
        return conversation_id

    async def add_message(self, conversation_id: str, role: str, content: str, status: str = "complete",
                          *, now: float | None = None) -> Message:
        message_id = new_id()
        now = time.time() if now is None else now
        async with self.database.transaction() as conn:
            async with conn.execute("SELECT COALESCE(MAX(seq), 0) + 1 FROM messages WHERE conversation_id = ?",
                                    (conversation_id,)) as cursor:
                seq = int((await cursor.fetchone())[0])
            sealed = self.cipher.seal(content, table="messages", column="content", row_id=message_id,
                                      bound=message_binding(conversation_id, role, seq))
            await conn.execute(
                "INSERT INTO messages (id, conversation_id, seq, role, content, status, created_at, completed_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (message_id, conversation_id, seq, role, sealed, status, now, now if status == "complete" else None),
            )
            await conn.execute("UPDATE conversations SET updated_at = ? WHERE id = ?", (now, conversation_id))
        return Message(message_id, conversation_id, seq, role, content, status, now, now if status == "complete" else None)

    async def update_message(self, message_id: str, content: str, status: str, *,
                             prompt_tokens: int | None = None, completion_tokens: int | None = None,
                             finish_reason: str | None = None, ttft_ms: float | None = None,
                             tokens_per_second: float | None = None) -> None:
        done_at = None if status == "streaming" else time.time()
        async with self.database.transaction() as conn:
            async with conn.execute("SELECT conversation_id, role, seq FROM messages WHERE id = ?", (message_id,)) as cursor:
                row = await cursor.fetchone()
            if row is None:  # deleted with its conversation while the reply was written: nothing to keep
                return
            sealed = self.cipher.seal(content, table="messages", column="content", row_id=message_id,
                                      bound=message_binding(row["conversation_id"], row["role"], row["seq"]))
            await conn.execute(
                "UPDATE messages SET content = ?, status = ?, completed_at = ?, "
                "prompt_tokens = COALESCE(?, prompt_tokens), completion_tokens = COALESCE(?, completion_tokens), "
                "finish_reason = COALESCE(?, finish_reason), ttft_ms = COALESCE(?, ttft_ms), "
                "tokens_per_second = COALESCE(?, tokens_per_second) WHERE id = ?",
                (sealed, status, done_at, prompt_tokens, completion_tokens, finish_reason, ttft_ms, tokens_per_second, message_id),
            )

    async def mark_unfinished_interrupted(self) -> int:
        """Replies left 'streaming' by a crash or kill -9 are not coming back: say so."""
        async with self.database.transaction() as conn:
            cursor = await conn.execute(
                "UPDATE messages SET status = 'interrupted', completed_at = ? WHERE status = 'streaming'", (time.time(),))
            return cursor.rowcount

    async def delete_conversation(self, conversation_id: str) -> None:
        async with self.database.transaction() as conn:
            cursor = await conn.execute("DELETE FROM conversations WHERE id = ?", (conversation_id,))
            if cursor.rowcount == 0:
                raise NotFound(conversation_id)
        await self.database.checkpoint()

    async def clear(self) -> int:
        async with self.database.transaction() as conn:
            cursor = await conn.execute("DELETE FROM conversations")
            deleted = cursor.rowcount
        await self.database.checkpoint()
        return deleted

    # Reading ----------------------------------------------------------------------------------
    def _title(self, row: Any) -> str:
        return self.cipher.open(row["title"], table="conversations", column="title", row_id=row["id"])

    def _message(self, row: Any) -> Message:
        return Message(
            id=row["id"], conversation_id=row["conversation_id"], seq=row["seq"], role=row["role"],
            content=self.cipher.open(row["content"], table="messages", column="content", row_id=row["id"],
                                     bound=message_binding(row["conversation_id"], row["role"], row["seq"])),
            status=row["status"], created_at=row["created_at"], completed_at=row["completed_at"],
            prompt_tokens=row["prompt_tokens"], completion_tokens=row["completion_tokens"],
            finish_reason=_column(row, "finish_reason"), ttft_ms=_column(row, "ttft_ms"),
            tokens_per_second=_column(row, "tokens_per_second"),
        )

    async def list_conversations(self, limit: int = 50, before: str | None = None) -> tuple[list[dict[str, Any]], str | None]:
        """Newest first; ``before`` is the opaque cursor a previous page returned."""
        params: list[Any] = []
        where = ""
        if before:
            try:
                stamp, last_id = base64.urlsafe_b64decode(before + "=" * (-len(before) % 4)).decode().split("|", 1)
                params = [float(stamp), float(stamp), last_id]
            except (ValueError, UnicodeDecodeError) as exc:
                raise ValueError("before: not a cursor returned by this API") from exc
            where = "WHERE c.updated_at < ? OR (c.updated_at = ? AND c.id < ?)"
        sql = (
            "SELECT c.id, c.title, c.created_at, c.updated_at, "
            "(SELECT COUNT(*) FROM messages m WHERE m.conversation_id = c.id) AS message_count "
            f"FROM conversations c {where} ORDER BY c.updated_at DESC, c.id DESC LIMIT ?"
        )
        async with self.database.conn.execute(sql, (*params, limit + 1)) as cursor:
            rows = list(await cursor.fetchall())
        page = rows[:limit]
        items = [
            {"id": r["id"], "title": self._title(r), "created_at": r["created_at"], "updated_at": r["updated_at"],
             "message_count": r["message_count"]}
            for r in page
        ]
        next_cursor = None
        if len(rows) > limit:  # opaque and URL-safe, so clients can pass it back unencoded
            next_cursor = base64.urlsafe_b64encode(f"{page[-1]['updated_at']!r}|{page[-1]['id']}".encode()).decode().rstrip("=")
        return items, next_cursor

    async def conversation_exists(self, conversation_id: str) -> bool:
        async with self.database.conn.execute("SELECT 1 FROM conversations WHERE id = ?", (conversation_id,)) as cursor:
            return await cursor.fetchone() is not None

    async def get_conversation(self, conversation_id: str) -> dict[str, Any]:
        async with self.database.conn.execute(
                "SELECT id, title, created_at, updated_at FROM conversations WHERE id = ?", (conversation_id,)) as cursor:
            row = await cursor.fetchone()
        if row is None:
            raise NotFound(conversation_id)
        messages = await self.messages(conversation_id)
        return {"id": row["id"], "title": self._title(row), "created_at": row["created_at"],
                "updated_at": row["updated_at"], "messages": [m.to_json() for m in messages]}

    async def messages(self, conversation_id: str, *, last: int | None = None) -> list[Message]:
        """All messages in order, or only the ``last`` N (prompt building reads the recent end)."""
        if last is None:
            sql = "SELECT * FROM messages WHERE conversation_id = ? ORDER BY seq"
            params: tuple[Any, ...] = (conversation_id,)
        else:
            sql = "SELECT * FROM (SELECT * FROM messages WHERE conversation_id = ? ORDER BY seq DESC LIMIT ?) ORDER BY seq"
            params = (conversation_id, last)
        async with self.database.conn.execute(sql, params) as cursor:
            return [self._message(r) for r in await cursor.fetchall()]

    async def get_message(self, message_id: str) -> Message:
        async with self.database.conn.execute("SELECT * FROM messages WHERE id = ?", (message_id,)) as cursor:
            row = await cursor.fetchone()
        if row is None:
            raise NotFound(message_id)
        return self._message(row)

    # Export and import ------------------------------------------------------------------------
    async def export(self) -> dict[str, Any]:
        async with self.database.conn.execute(
                "SELECT id, title, created_at, updated_at FROM conversations ORDER BY created_at, id") as cursor:
            rows = list(await cursor.fetchall())
        conversations = []
        for row in rows:
            messages = await self.messages(row["id"])
            conversations.append({
                "id": row["id"], "title": self._title(row), "created_at": row["created_at"],
                "updated_at": row["updated_at"],
                "messages": [{k: v for k, v in m.to_json().items() if v is not None or k == "completed_at"} for m in messages],
            })
        return {"format": "privchat-export", "version": 1, "exported_at": time.time(), "conversations": conversations}

    async def import_conversations(self, conversations: Iterable[dict[str, Any]]) -> dict[str, int]:
        """Add what is not there yet, in one transaction: importing the same file twice adds nothing.

        The input is already validated (api/schemas.py); a failure part-way rolls everything back.
        """
        added_conversations = added_messages = skipped = 0
        async with self.database.transaction() as conn:
            for conv in conversations:
                async with conn.execute("SELECT 1 FROM conversations WHERE id = ?", (conv["id"],)) as cursor:
                    exists = await cursor.fetchone() is not None
                if not exists:
                    title = self.cipher.seal(conv["title"], table="conversations", column="title", row_id=conv["id"])
                    await conn.execute(
                        "INSERT INTO conversations (id, title, created_at, updated_at) VALUES (?, ?, ?, ?)",
                        (conv["id"], title, conv["created_at"], conv["updated_at"]),
                    )
                    added_conversations += 1
                async with conn.execute("SELECT id, seq FROM messages WHERE conversation_id = ?", (conv["id"],)) as cursor:
                    existing = {row[0]: row[1] for row in await cursor.fetchall()}
                next_seq = max(existing.values(), default=0) + 1
                for message in conv["messages"]:
                    if message["id"] in existing:
                        skipped += 1
                        continue
                    async with conn.execute("SELECT conversation_id FROM messages WHERE id = ?", (message["id"],)) as cursor:
                        elsewhere = await cursor.fetchone()
                    if elsewhere is not None:
                        skipped += 1
                        continue
                    sealed = self.cipher.seal(message["content"], table="messages", column="content", row_id=message["id"],
                                              bound=message_binding(conv["id"], message["role"], next_seq))
                    status = "interrupted" if message["status"] == "streaming" else message["status"]
                    await conn.execute(
                        "INSERT INTO messages (id, conversation_id, seq, role, content, status, created_at, completed_at, "
                        "prompt_tokens, completion_tokens, finish_reason, ttft_ms, tokens_per_second) "
                        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                        (message["id"], conv["id"], next_seq, message["role"], sealed, status, message["created_at"],
                         message.get("completed_at"), message.get("prompt_tokens"), message.get("completion_tokens"),
                         message.get("finish_reason"), message.get("ttft_ms"), message.get("tokens_per_second")),
                    )
                    next_seq += 1
                    added_messages += 1
        return {"imported_conversations": added_conversations, "imported_messages": added_messages, "skipped": skipped}


def export_to_markdown(export: dict[str, Any]) -> str:
    """A readable transcript; JSON stays the format to import back."""
    from datetime import datetime, timezone

    def stamp(value: float) -> str:
        return datetime.fromtimestamp(value, tz=timezone.utc).strftime("%Y-%m-%d %H:%M UTC")

    lines = ["# privchat history", "", f"Exported {stamp(export['exported_at'])}.", ""]
    for conv in export["conversations"]:
        lines += [f"## {conv['title']}", "", f"*Started {stamp(conv['created_at'])}*", ""]
        for message in conv["messages"]:
            who = {"user": "You", "assistant": "Assistant", "system": "System"}[message["role"]]
            note = "" if message["status"] == "complete" else f" ({message['status']})"
            lines += [f"**{who}**{note}:", "", message["content"], ""]
    return "\n".join(lines)
