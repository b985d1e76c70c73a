"""Conversations and messages, sealed per value with the database cipher.

Ids are random UUIDs chosen before the insert, so each value's associated data can name its row.
A message is also bound to its conversation, role, position and parent (``bindings.py``), so it is
sealed inside the transaction that picks its position.

Messages form a tree: regenerating a reply or editing a message adds a sibling, and the branches
stay. The conversation remembers ``current_leaf``, the branch shown by default (the one written last,
or the one the owner switched to); a message added without a parent goes at the end of that branch
(``branch_end``), and the prompt for a reply is exactly the path from the root to its user message
(``path``). Who set the title is kept too: a title the owner chose is never replaced by the model's.
Writes are told to the observers (the in-memory search index) once committed. Deletes end with a
WAL checkpoint, so what was
deleted does not linger in the WAL file. The export file, and what an import of one must hold, are
``export.py``'s; the store gives it the conversations to list and one transaction to import in
(``importing``), and gives the search index its bulk readers.
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
import uuid
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, AsyncIterator, Callable, Container, Protocol, TypeVar

from ..errors import PARENT_INVALID, VALIDATION_ERROR, CodedError, NotFound
from .attachments import AttachmentStore
from .bindings import message_binding
from .crypto import CryptoError
from .db import Database

T = TypeVar("T")

TITLE_LENGTH = 60
# Who set a conversation's title; the owner's rename wins over everything, the model only replaces the first message.
TITLE_SOURCES = ("first_message", "model", "owner")
# add_message's parent when none is named: the end of the conversation's current branch.
END_OF_BRANCH = "end-of-branch"
MESSAGE_STATUSES = ("complete", "streaming", "cancelled", "interrupted", "error")
ROLES = ("system", "user", "assistant")


class NotInConversation(CodedError, LookupError):
    """A parent, leaf or reply named that is not a message of that conversation; ``field`` is the
    request's name for it (parent_id, current_leaf)."""

    def __init__(self, field: str) -> None:
        super().__init__(PARENT_INVALID, field=field)


class HistoryObserver(Protocol):
    """Told about every write as it commits (the search index); called on the event loop, must not block."""

    def message_written(self, conversation_id: str, message_id: str, content: str, updated_at: float | None) -> None: ...

    def title_written(self, conversation_id: str, title: str, updated_at: float | None) -> None: ...

    def conversation_deleted(self, conversation_id: str) -> None: ...

    def attachment_written(self, conversation_id: str, message_id: str, attachment_id: str, text: str,
                           updated_at: float | None) -> None: ...

    def cleared(self) -> None: ...


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
    parent_id: str | None = None
    model: str | None = None  # the model that wrote a reply (migration 6)
    attachments: list[dict[str, Any]] | None = None  # files attached to it (migration 7), filled by get_conversation
    attachments_seen: list[dict[str, Any]] | None = None  # a reply: how much of each document the model saw

    def to_json(self) -> dict[str, Any]:
        return {"attachments": self.attachments or [], "attachments_seen": self.attachments_seen, **{
            "id": self.id, "parent_id": self.parent_id, "role": self.role, "content": self.content, "status": self.status,
            "created_at": self.created_at, "completed_at": self.completed_at,
            "prompt_tokens": self.prompt_tokens, "completion_tokens": self.completion_tokens,
            "finish_reason": self.finish_reason, "ttft_ms": self.ttft_ms, "tokens_per_second": self.tokens_per_second,
            "model": self.model,
        }}


async def _branch_end(conn: Any, conversation_id: str) -> str | None:
    """The current leaf, followed down to the newest message below it (there is none when it is a leaf)."""
    async with conn.execute(
            "SELECT c.current_leaf FROM conversations c JOIN messages m ON m.id = c.current_leaf AND m.conversation_id = c.id "
            "WHERE c.id = ?", (conversation_id,)) as cursor:
        row = await cursor.fetchone()
    if row is None:  # never set (or it names a message that is gone): the newest message
        async with conn.execute("SELECT id FROM messages WHERE conversation_id = ? ORDER BY seq DESC LIMIT 1",
                                (conversation_id,)) as cursor:
            row = await cursor.fetchone()
        if row is None:
            return None
    return await _newest_descendant(conn, row[0], conversation_id)


async def _newest_descendant(conn: Any, message_id: str, conversation_id: str | None = None) -> str:
    """From ``message_id`` down, always to the newest answer, to a message nobody answered yet."""
    if conversation_id is None:
        async with conn.execute("SELECT conversation_id FROM messages WHERE id = ?", (message_id,)) as cursor:
            conversation_id = (await cursor.fetchone())[0]
    seen = {message_id}
    while True:
        async with conn.execute("SELECT id FROM messages WHERE conversation_id = ? AND parent_id = ? ORDER BY seq DESC LIMIT 1",
                                (conversation_id, message_id)) as cursor:
            row = await cursor.fetchone()
        if row is None or row[0] in seen:
            return message_id
        message_id = row[0]
        seen.add(message_id)


def _column(row: Any, name: str) -> Any:
    """A column added by a later migration (None on a row read before it ran)."""
    return row[name] if name in row.keys() else None


class HistoryStore:
    def __init__(self, database: Database) -> None:
        self.database = database
        self.cipher = database.cipher
        self.observers: list[HistoryObserver] = []
        self.attachments = AttachmentStore(database)

    def _tell(self, event: str, *args: Any) -> None:
        for observer in self.observers:
            getattr(observer, event)(*args)

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
        self._tell("title_written", conversation_id, title_from_message(first_message), now)
        return conversation_id

    async def add_message(self, conversation_id: str, role: str, content: str, status: str = "complete",
                          *, now: float | None = None, parent_id: str | None = END_OF_BRANCH,
                          model: str | None = None, attachments: list[str] | None = None) -> Message:
        """Add a message answering ``parent_id`` (None: a new first message; by default the end of
        the current branch) and make its branch the current one. NotInConversation if the parent is
        not a message of this conversation. ``attachments``: pending attachment ids that become the
        message's in the same transaction (AttachmentMissing/AttachmentTaken roll it back)."""
        message_id = new_id()
        now = time.time() if now is None else now
        async with self.database.transaction() as conn:
            if parent_id == END_OF_BRANCH:
                parent_id = await _branch_end(conn, conversation_id)
            elif parent_id is not None:
                async with conn.execute("SELECT 1 FROM messages WHERE id = ? AND conversation_id = ?",
                                        (parent_id, conversation_id)) as cursor:
                    if await cursor.fetchone() is None:
                        raise NotInConversation("parent_id")
            async with conn.execute("SELECT COALESCE(MAX(seq), 0) + 1 FROM messages WHERE conversation_id = ?",
                                    (conversation_id,)) as cursor:
                seq = int((await cursor.fetchone())[0])
            sealed = self.cipher.seal(content, table="messages", column="content", row_id=message_id,
                                      bound=message_binding(conversation_id, role, seq, parent_id))
            await conn.execute(
                "INSERT INTO messages (id, conversation_id, seq, role, content, status, created_at, completed_at, parent_id, model) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (message_id, conversation_id, seq, role, sealed, status, now, now if status == "complete" else None, parent_id,
                 model),
            )
            await conn.execute("UPDATE conversations SET updated_at = ?, current_leaf = ? WHERE id = ?",
                               (now, message_id, conversation_id))
            if attachments:
                await self.attachments.link(conn, attachments, conversation_id, message_id)
        if content:
            self._tell("message_written", conversation_id, message_id, content, now)
        if attachments:
            await self._tell_attachments(conversation_id, now, message_id)
        return Message(message_id, conversation_id, seq, role, content, status, now, now if status == "complete" else None,
                       parent_id=parent_id, model=model)

    async def update_message(self, message_id: str, content: str, status: str, *,
                             prompt_tokens: int | None = None, completion_tokens: int | None = None,
                             finish_reason: str | None = None, ttft_ms: float | None = None,
                             tokens_per_second: float | None = None, attachments_seen: list[dict[str, Any]] | None = None) -> None:
        done_at = None if status == "streaming" else time.time()
        async with self.database.transaction() as conn:
            async with conn.execute("SELECT conversation_id, role, seq, parent_id FROM messages WHERE id = ?",
                                    (message_id,)) as cursor:
                row = await cursor.fetchone()
            if row is None:  # deleted with its conversation while the reply was written: nothing to keep
                return
            sealed = self.cipher.seal(content, table="messages", column="content", row_id=message_id,
                                      bound=message_binding(row["conversation_id"], row["role"], row["seq"], row["parent_id"]))
            await conn.execute(
                "UPDATE messages SET content = ?, status = ?, completed_at = ?, "
                "prompt_tokens = COALESCE(?, prompt_tokens), completion_tokens = COALESCE(?, completion_tokens), "
                "finish_reason = COALESCE(?, finish_reason), ttft_ms = COALESCE(?, ttft_ms), "
                "tokens_per_second = COALESCE(?, tokens_per_second), attachments_seen = COALESCE(?, attachments_seen) WHERE id = ?",
                (sealed, status, done_at, prompt_tokens, completion_tokens, finish_reason, ttft_ms, tokens_per_second,
                 _seen_json(attachments_seen), message_id),
            )
        self._tell("message_written", row["conversation_id"], message_id, content, None)

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
                raise NotFound("conversation")
        self._tell("conversation_deleted", conversation_id)
        await self.database.checkpoint()

    async def clear(self) -> int:
        async with self.database.transaction() as conn:
            cursor = await conn.execute("DELETE FROM conversations")
            deleted = cursor.rowcount
            await conn.execute("DELETE FROM attachments")  # those uploaded and never sent too
        self._tell("cleared")
        await self.database.checkpoint()
        return deleted

    async def rename(self, conversation_id: str, title: str, *, source: str = "owner") -> bool:
        """Set the title. The model's title only replaces the first message's; the owner's always
        wins and is never replaced. Returns whether the title changed; NotFound if no conversation."""
        title = title.strip()[:TITLE_LENGTH * 4] or "New conversation"
        sealed = self.cipher.seal(title, table="conversations", column="title", row_id=conversation_id)
        only_if = "" if source == "owner" else " AND title_source = 'first_message'"
        async with self.database.transaction() as conn:
            cursor = await conn.execute(f"UPDATE conversations SET title = ?, title_source = ? WHERE id = ?{only_if}",
                                        (sealed, source, conversation_id))
            changed = cursor.rowcount > 0
            if not changed:
                async with conn.execute("SELECT 1 FROM conversations WHERE id = ?", (conversation_id,)) as found:
                    if await found.fetchone() is None:
                        raise NotFound("conversation")
        if changed:
            self._tell("title_written", conversation_id, title, None)
        return changed

    async def title_source(self, conversation_id: str) -> str | None:
        async with self.database.conn.execute("SELECT title_source FROM conversations WHERE id = ?",
                                              (conversation_id,)) as cursor:
            row = await cursor.fetchone()
        return None if row is None else str(row[0])

    async def set_current_leaf(self, conversation_id: str, message_id: str) -> str:
        """Show the branch through ``message_id`` by default (on every device); returns its end."""
        async with self.database.transaction() as conn:
            async with conn.execute("SELECT 1 FROM conversations WHERE id = ?", (conversation_id,)) as cursor:
                if await cursor.fetchone() is None:
                    raise NotFound("conversation")
            async with conn.execute("SELECT 1 FROM messages WHERE id = ? AND conversation_id = ?",
                                    (message_id, conversation_id)) as cursor:
                if await cursor.fetchone() is None:
                    raise NotInConversation("current_leaf")
            leaf = await _newest_descendant(conn, message_id)
            await conn.execute("UPDATE conversations SET current_leaf = ? WHERE id = ?", (leaf, conversation_id))
        return leaf

    # Reading ----------------------------------------------------------------------------------
    def _title(self, row: Any) -> str:
        return self.cipher.open(row["title"], table="conversations", column="title", row_id=row["id"])

    def _message(self, row: Any) -> Message:
        return Message(
            id=row["id"], conversation_id=row["conversation_id"], seq=row["seq"], role=row["role"],
            content=self.cipher.open(row["content"], table="messages", column="content", row_id=row["id"],
                                     bound=message_binding(row["conversation_id"], row["role"], row["seq"], row["parent_id"])),
            status=row["status"], created_at=row["created_at"], completed_at=row["completed_at"],
            prompt_tokens=row["prompt_tokens"], completion_tokens=row["completion_tokens"],
            finish_reason=_column(row, "finish_reason"), ttft_ms=_column(row, "ttft_ms"),
            tokens_per_second=_column(row, "tokens_per_second"), parent_id=row["parent_id"],
            model=_column(row, "model"), attachments_seen=_seen(_column(row, "attachments_seen")),
        )

    async def _tell_attachments(self, conversation_id: str, now: float | None, message_id: str | None = None) -> None:
        if not self.observers:
            return
        for message_id, attachment_id, text in await self.attachments.texts_of_conversation(conversation_id, message_id):
            self._tell("attachment_written", conversation_id, message_id, attachment_id, text, now)

    async def _with_attachments(self, messages: list[Message]) -> list[Message]:
        found = await self.attachments.of_messages([m.id for m in messages if m.role == "user"])
        for message in messages:
            message.attachments = [a.to_json() for a in found.get(message.id, [])]
        return messages

    async def list_conversations(self, limit: int = 50, before: str | None = None) -> tuple[list[dict[str, Any]], str | None]:
        """Newest first; ``before`` is the opaque cursor a previous page returned."""
        params: list[Any] = []
        where = ""
        if before:
            try:
                stamp, last_id = base64.urlsafe_b64decode(before + "=" * (-len(before) % 4)).decode().split("|", 1)
                params = [float(stamp), float(stamp), last_id]
            except (ValueError, UnicodeDecodeError) as exc:
                raise CodedError(VALIDATION_ERROR, "The query is not valid: before is not a cursor returned by this API.") from exc
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
        """Every message of every branch (in the order written), and the end of the current branch."""
        async with self.database.conn.execute(
                "SELECT id, title, title_source, created_at, updated_at FROM conversations WHERE id = ?",
                (conversation_id,)) as cursor:
            row = await cursor.fetchone()
        if row is None:
            raise NotFound("conversation")
        messages = await self._with_attachments(await self.messages(conversation_id))
        return {"id": row["id"], "title": self._title(row), "title_source": row["title_source"],
                "created_at": row["created_at"], "updated_at": row["updated_at"],
                "current_leaf": await self.branch_end(conversation_id), "messages": [m.to_json() for m in messages]}

    async def branch_end(self, conversation_id: str) -> str | None:
        """The last message of the current branch (None for an empty conversation)."""
        return await _branch_end(self.database.conn, conversation_id)

    async def path(self, conversation_id: str, message_id: str, *, last: int | None = None) -> list[Message]:
        """The messages from the root to ``message_id``, in order (only the ``last`` N if given): the
        branch a reply to ``message_id`` sees. Only those rows are opened."""
        async with self.database.conn.execute("SELECT id, parent_id FROM messages WHERE conversation_id = ?",
                                              (conversation_id,)) as cursor:
            parents = {row[0]: row[1] for row in await cursor.fetchall()}
        if message_id not in parents:
            raise NotInConversation("message_id")
        ids: list[str] = []
        current: str | None = message_id
        while current is not None and current in parents and len(ids) <= len(parents):
            ids.append(current)
            current = parents[current]
        ids.reverse()
        if last is not None:
            ids = ids[-last:]
        rows = await self.database.rows_by_id("messages", ids)
        return [self._message(rows[i]) for i in ids]

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
            raise NotFound("message")
        return self._message(row)

    async def all_conversations(self) -> list[dict[str, Any]]:
        """Every conversation's id, title, title source and times, oldest first (what an export lists)."""
        async with self.database.conn.execute(
                "SELECT id, title, title_source, created_at, updated_at FROM conversations ORDER BY created_at, id") as cursor:
            rows = list(await cursor.fetchall())
        return [{"id": r["id"], "title": self._title(r), "title_source": r["title_source"],
                 "created_at": r["created_at"], "updated_at": r["updated_at"]} for r in rows]

    # Reading in bulk, for the search index ----------------------------------------------------------
    # Batches are opened in a worker thread, so indexing a large history leaves the event loop free. A
    # value that does not open is left out (a title reads ""): it fails its integrity check where it is read.
    async def title_batches(self, size: int) -> AsyncIterator[list[tuple[str, str, float]]]:
        """Every conversation's (id, title, updated_at), ``size`` at a time, in the order they were written."""
        last = -1
        while True:
            async with self.database.conn.execute("SELECT rowid, id, title, updated_at FROM conversations WHERE rowid > ? "
                                                  "ORDER BY rowid LIMIT ?", (last, size)) as cursor:
                rows = [tuple(r) for r in await cursor.fetchall()]
            if not rows:
                return
            last = rows[-1][0]
            yield await asyncio.to_thread(_open_titles, self.cipher, rows)

    async def titles_not_in(self, known: Container[str]) -> list[tuple[str, str, float]]:
        """(id, title, updated_at) of the conversations whose id is not in ``known``."""
        async with self.database.conn.execute("SELECT rowid, id, title, updated_at FROM conversations") as cursor:
            rows = [tuple(r) for r in await cursor.fetchall() if r[1] not in known]
        return await asyncio.to_thread(_open_titles, self.cipher, rows)

    async def message_batches(self, size: int, digest: Callable[[str], T]) -> AsyncIterator[list[tuple[str, str, T]]]:
        """Every non-empty message's (id, conversation id, ``digest(text)``), ``size`` at a time, in the
        order they were written. ``digest`` runs in the worker thread too: the index keeps words, not text."""
        last = -1
        while True:
            async with self.database.conn.execute(
                    "SELECT rowid, id, conversation_id, role, seq, parent_id, content FROM messages WHERE rowid > ? "
                    "ORDER BY rowid LIMIT ?", (last, size)) as cursor:
                rows = [tuple(r) for r in await cursor.fetchall()]
            if not rows:
                return
            last = rows[-1][0]
            yield await asyncio.to_thread(_digest_messages, self.cipher, rows, digest)

    async def messages_not_in(self, known: Container[str], digest: Callable[[str], T],
                              size: int = 500) -> AsyncIterator[list[tuple[str, str, T]]]:
        """``message_batches`` for the messages whose id is not in ``known`` (only those are read and opened)."""
        async with self.database.conn.execute("SELECT id FROM messages") as cursor:
            unknown = [r[0] for r in await cursor.fetchall() if r[0] not in known]
        for start in range(0, len(unknown), size):
            batch = unknown[start:start + size]
            async with self.database.conn.execute(
                    "SELECT rowid, id, conversation_id, role, seq, parent_id, content FROM messages "
                    f"WHERE id IN ({','.join('?' * len(batch))})", batch) as cursor:
                rows = [tuple(r) for r in await cursor.fetchall()]
            yield await asyncio.to_thread(_digest_messages, self.cipher, rows, digest)

    async def message_texts(self, message_ids: list[str]) -> dict[str, str]:
        """The text of each of these messages that is still there ("" for one that does not open)."""
        texts = {}
        for message_id, row in (await self.database.rows_by_id("messages", message_ids)).items():
            try:
                texts[message_id] = self._message(row).content
            except CryptoError:
                texts[message_id] = ""
        return texts

    async def conversation_stamps(self, conversation_ids: list[str]) -> dict[str, float]:
        """When each of these conversations that is still there was last written (``updated_at``)."""
        async with self.database.conn.execute(
                f"SELECT id, updated_at FROM conversations WHERE id IN ({','.join('?' * len(conversation_ids))})",
                conversation_ids) as cursor:
            return {row[0]: row[1] for row in await cursor.fetchall()}

    # Importing ----------------------------------------------------------------------------------------
    @asynccontextmanager
    async def importing(self) -> AsyncIterator["ImportBatch"]:
        """``async with history.importing() as batch:`` the writes of one import (``export.py``), in one
        transaction; the observers hear of them once it committed, not before (a failed import told nothing)."""
        async with self.database.transaction() as conn:
            batch = ImportBatch(self, conn)
            yield batch
        for event in batch._told:
            self._tell(*event)
        for conversation_id in batch._with_attachments:
            await self._tell_attachments(conversation_id, None)


class ImportBatch:
    """The writes of one import, inside its transaction (BEGIN IMMEDIATE: what it reads stays true
    until it commits). It writes rows as given, sealed and bound to them; what a file means and
    whether it holds together is the export format's (``export.py``)."""

    def __init__(self, store: HistoryStore, conn: Any) -> None:
        self._store = store
        self._conn = conn
        self._told: list[tuple[Any, ...]] = []  # for the observers, once the whole import committed
        self._with_attachments: list[str] = []

    async def conversation_exists(self, conversation_id: str) -> bool:
        async with self._conn.execute("SELECT 1 FROM conversations WHERE id = ?", (conversation_id,)) as cursor:
            return await cursor.fetchone() is not None

    async def add_conversation(self, conversation_id: str, title: str, *, created_at: float, updated_at: float,
                               title_source: str) -> None:
        sealed = self._store.cipher.seal(title, table="conversations", column="title", row_id=conversation_id)
        await self._conn.execute(
            "INSERT INTO conversations (id, title, created_at, updated_at, title_source) VALUES (?, ?, ?, ?, ?)",
            (conversation_id, sealed, created_at, updated_at, title_source),
        )
        self._told.append(("title_written", conversation_id, title, updated_at))

    async def message_positions(self, conversation_id: str) -> dict[str, int]:
        """Each message stored in the conversation, and its position (``seq``)."""
        async with self._conn.execute("SELECT id, seq FROM messages WHERE conversation_id = ?", (conversation_id,)) as cursor:
            return {row[0]: row[1] for row in await cursor.fetchall()}

    async def branch_end(self, conversation_id: str) -> str | None:
        return await _branch_end(self._conn, conversation_id)

    async def message_exists(self, message_id: str) -> bool:
        """A message with this id is stored, in any conversation."""
        async with self._conn.execute("SELECT conversation_id FROM messages WHERE id = ?", (message_id,)) as cursor:
            return await cursor.fetchone() is not None

    async def add_message(self, message: Message, *, updated_at: float | None) -> None:
        """Store ``message`` as given (its id, position and parent too), sealed bound to them."""
        sealed = self._store.cipher.seal(message.content, table="messages", column="content", row_id=message.id,
                                         bound=message_binding(message.conversation_id, message.role, message.seq,
                                                               message.parent_id))
        await self._conn.execute(
            "INSERT INTO messages (id, conversation_id, seq, role, content, status, created_at, completed_at, "
            "prompt_tokens, completion_tokens, finish_reason, ttft_ms, tokens_per_second, parent_id, model, "
            "attachments_seen) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (message.id, message.conversation_id, message.seq, message.role, sealed, message.status, message.created_at,
             message.completed_at, message.prompt_tokens, message.completion_tokens, message.finish_reason,
             message.ttft_ms, message.tokens_per_second, message.parent_id, message.model,
             _seen_json(message.attachments_seen)),
        )
        self._told.append(("message_written", message.conversation_id, message.id, message.content, updated_at))

    async def add_attachments(self, conversation_id: str, attachments: list[dict[str, Any]], known_messages: set[str]) -> None:
        """The conversation's exported attachments not stored yet (``AttachmentStore.import_rows``)."""
        if await self._store.attachments.import_rows(self._conn, conversation_id, attachments, known_messages):
            self._with_attachments.append(conversation_id)

    async def set_current_leaf(self, conversation_id: str, leaf: str, *, replace: bool) -> None:
        """Make ``leaf`` the conversation's current leaf; unless ``replace``, only where none is set yet."""
        await self._conn.execute("UPDATE conversations SET current_leaf = ? WHERE id = ? AND "
                                 "(current_leaf IS NULL OR ? = 1)", (leaf, conversation_id, 1 if replace else 0))


def _open_titles(cipher: Any, rows: list[tuple[Any, ...]]) -> list[tuple[str, str, float]]:
    """In a worker thread: (rowid, id, sealed title, updated_at) rows opened to (id, title, updated_at)."""
    out = []
    for _rowid, conversation_id, sealed, updated_at in rows:
        try:
            out.append((conversation_id, cipher.open(sealed, table="conversations", column="title", row_id=conversation_id),
                        updated_at))
        except CryptoError:
            out.append((conversation_id, "", updated_at))
    return out


def _digest_messages(cipher: Any, rows: list[tuple[Any, ...]], digest: Callable[[str], T]) -> list[tuple[str, str, T]]:
    """In a worker thread: message rows opened, and the non-empty ones' texts digested."""
    out = []
    for _rowid, message_id, conversation_id, role, seq, parent_id, sealed in rows:
        try:
            text = cipher.open(sealed, table="messages", column="content", row_id=message_id,
                               bound=message_binding(conversation_id, role, seq, parent_id))
        except CryptoError:
            continue
        if text:
            out.append((message_id, conversation_id, digest(text)))
    return out


def _seen_json(seen: list[dict[str, Any]] | None) -> str | None:
    """A reply's attachments_seen as stored: numbers and ids only (the names stay with the attachments)."""
    if not seen:
        return None
    keep = ("id", "kind", "pages", "pages_seen", "lines", "lines_seen", "whole")
    return json.dumps([{k: item[k] for k in keep if k in item} for item in seen])


def _seen(stored: str | None) -> list[dict[str, Any]] | None:
    try:
        return json.loads(stored) if stored else None
    except ValueError:
        return None
