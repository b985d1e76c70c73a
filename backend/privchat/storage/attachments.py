"""Attached files, sealed per value like every other row (migration 7).

An attachment is uploaded before its message is sent (``POST /api/attachments``): it is stored then,
*pending* (``message_id`` NULL; ``conversation_id`` when the page named one), so a failed upload
never touches the message being written and a failed send loses no file. ``POST /api/chat`` links
the pending ones to the new user message inside the transaction that stores the message
(``link``): each value is sealed again, bound now to its conversation and message, so from then on
it opens only there. Pending attachments that were never sent are deleted after
``attachments.pending_hours``.

The name, the extracted text (JSON: a PDF's pages, or a text file's text) and the file itself are
each sealed; kind, type, size and page count are plain columns, bound into every seal
(``bindings.attachment_binding``). Rows go with their conversation or message (ON DELETE CASCADE),
so ``secure_delete`` and the history's WAL checkpoint after a delete hold for them too.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from dataclasses import dataclass
from typing import Any, AsyncIterator, Container, Iterable

from ..errors import ATTACHMENT_NOT_FOUND, ATTACHMENT_SENT, ATTACHMENT_TAKEN, VALIDATION_ERROR, Code, CodedError, NotFound
from .bindings import attachment_binding
from .crypto import CryptoError
from .db import Database

SEALED = ("name", "content", "data")
# Every column but the file itself: what reading an attachment's name and text needs.
TEXT_COLUMNS = "id, conversation_id, message_id, kind, mime, size, pages, name, content, created_at"


class ImportInvalid(CodedError, ValueError):
    """An export that does not hold together (a message's parent, an attachment's message); nothing of
    it was imported. The one class for the whole file: storage/export.py raises it too."""

    def __init__(self, detail: str) -> None:
        super().__init__(VALIDATION_ERROR, f"The export is not valid: {detail}. Nothing was imported.")


class AttachmentMissing(CodedError, LookupError):
    """No attachment with that id (never, or deleted); ``sentence`` for one a message names."""

    def __init__(self, sentence: str | None = None) -> None:
        super().__init__(ATTACHMENT_NOT_FOUND, sentence)


class AttachmentTaken(CodedError, LookupError):
    """An attachment that is already part of a message, or of another conversation: attachment_taken
    for a message that names it, attachment_sent for taking it back."""

    def __init__(self, entry: Code = ATTACHMENT_TAKEN) -> None:
        super().__init__(entry)


# attachment_not_found, for an attachment a message being sent names.
GONE_FROM_MESSAGE = ("An attachment of this message is gone (it expired before it was sent, or was deleted); "
                     "attach the file again.")


@dataclass
class AttachmentInfo:
    id: str
    conversation_id: str | None
    message_id: str | None
    kind: str
    mime: str
    size: int
    pages: int | None
    name: str
    created_at: float

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "kind": self.kind, "mime": self.mime, "size": self.size,
                "pages": self.pages}


class AttachmentStore:
    def __init__(self, database: Database) -> None:
        self.database = database
        self.cipher = database.cipher

    # Sealing ----------------------------------------------------------------------------------------
    def _bound(self, row: Any, conversation_id: str | None = None, message_id: str | None = None, *,
               keep: bool = True) -> dict[str, Any]:
        return attachment_binding(row["conversation_id"] if keep else conversation_id,
                                  row["message_id"] if keep else message_id,
                                  row["kind"], row["mime"], row["size"], row["pages"])

    def _seal(self, attachment_id: str, column: str, value: bytes | None, bound: Any) -> bytes | None:
        if value is None:
            return None
        return self.cipher.seal_bytes(value, table="attachments", column=column, row_id=attachment_id, bound=bound)

    def _open(self, row: Any, column: str) -> bytes | None:
        if row[column] is None:
            return None
        return self.cipher.open_bytes(row[column], table="attachments", column=column, row_id=row["id"], bound=self._bound(row))

    def _info(self, row: Any) -> AttachmentInfo:
        return AttachmentInfo(id=row["id"], conversation_id=row["conversation_id"], message_id=row["message_id"],
                              kind=row["kind"], mime=row["mime"], size=row["size"], pages=row["pages"],
                              name=(self._open(row, "name") or b"").decode("utf-8"), created_at=row["created_at"])

    # Writing ----------------------------------------------------------------------------------------
    async def add(self, *, name: str, kind: str, mime: str, data: bytes, content: str | None, pages: int | None,
                  conversation_id: str | None = None, now: float | None = None) -> AttachmentInfo:
        """Store a checked file, pending; NotFound if ``conversation_id`` names no conversation."""
        attachment_id = str(uuid.uuid4())
        now = time.time() if now is None else now
        bound = attachment_binding(conversation_id, None, kind, mime, len(data), pages)
        sealed = [self._seal(attachment_id, column, value, bound) for column, value in
                  (("name", name.encode("utf-8")), ("content", None if content is None else content.encode("utf-8")),
                   ("data", data))]
        async with self.database.transaction() as conn:
            if conversation_id is not None:
                async with conn.execute("SELECT 1 FROM conversations WHERE id = ?", (conversation_id,)) as cursor:
                    if await cursor.fetchone() is None:
                        raise NotFound("conversation")
            await conn.execute(
                "INSERT INTO attachments (id, conversation_id, message_id, kind, mime, size, pages, name, content, data, created_at) "
                "VALUES (?, ?, NULL, ?, ?, ?, ?, ?, ?, ?, ?)",
                (attachment_id, conversation_id, kind, mime, len(data), pages, *sealed, now))
        return AttachmentInfo(attachment_id, conversation_id, None, kind, mime, len(data), pages, name, now)

    async def pending(self, ids: list[str], conversation_id: str | None) -> list[AttachmentInfo]:
        """The pending attachments ``ids``, in that order, checked before a message is stored:
        AttachmentMissing for an unknown id, AttachmentTaken for one already sent or of another conversation."""
        rows = await self._rows(ids)
        out = []
        for attachment_id in ids:
            row = rows.get(attachment_id)
            if row is None:
                raise AttachmentMissing(GONE_FROM_MESSAGE)
            if row["message_id"] is not None or (row["conversation_id"] not in (None, conversation_id)):
                raise AttachmentTaken()
            out.append(self._info(row))
        return out

    async def link(self, conn: Any, ids: list[str], conversation_id: str, message_id: str) -> None:
        """Inside the transaction that stores the message: make ``ids`` its attachments, re-sealed
        bound to it. Raises (and so rolls the message back) when one is gone or taken meanwhile."""
        for position, attachment_id in enumerate(ids):
            async with conn.execute("SELECT * FROM attachments WHERE id = ?", (attachment_id,)) as cursor:
                row = await cursor.fetchone()
            if row is None:
                raise AttachmentMissing(GONE_FROM_MESSAGE)
            if row["message_id"] is not None or row["conversation_id"] not in (None, conversation_id):
                raise AttachmentTaken()
            bound = self._bound(row, conversation_id, message_id, keep=False)
            values = [self._seal(attachment_id, column, self._open(row, column), bound) for column in SEALED]
            await conn.execute("UPDATE attachments SET conversation_id = ?, message_id = ?, position = ?, name = ?, "
                               "content = ?, data = ? WHERE id = ?",
                               (conversation_id, message_id, position, *values, attachment_id))

    async def delete_pending(self, attachment_id: str) -> None:
        """Take back an attachment not sent yet (the chip's ×); AttachmentTaken once it is part of a message."""
        async with self.database.transaction() as conn:
            async with conn.execute("SELECT message_id FROM attachments WHERE id = ?", (attachment_id,)) as cursor:
                row = await cursor.fetchone()
            if row is None:
                raise AttachmentMissing()
            if row[0] is not None:
                raise AttachmentTaken(ATTACHMENT_SENT)
            await conn.execute("DELETE FROM attachments WHERE id = ?", (attachment_id,))
        await self.database.checkpoint()

    async def expire_pending(self, older_than_seconds: float, now: float | None = None) -> int:
        """Delete pending attachments older than this (uploaded, never sent); how many."""
        cutoff = (time.time() if now is None else now) - older_than_seconds
        async with self.database.transaction() as conn:
            cursor = await conn.execute("DELETE FROM attachments WHERE message_id IS NULL AND created_at < ?", (cutoff,))
            deleted = cursor.rowcount
        if deleted:
            await self.database.checkpoint()
        return deleted

    # Reading ----------------------------------------------------------------------------------------
    async def _rows(self, ids: Iterable[str]) -> dict[str, Any]:
        return await self.database.rows_by_id("attachments", ids)

    async def get(self, attachment_id: str) -> tuple[AttachmentInfo, bytes]:
        async with self.database.conn.execute("SELECT * FROM attachments WHERE id = ?", (attachment_id,)) as cursor:
            row = await cursor.fetchone()
        if row is None:
            raise AttachmentMissing()
        return self._info(row), self._open(row, "data") or b""

    async def of_messages(self, message_ids: list[str]) -> dict[str, list[AttachmentInfo]]:
        """Each message's attachments (names opened; files not), in the order they were attached."""
        out: dict[str, list[AttachmentInfo]] = {}
        for start in range(0, len(message_ids), 500):
            chunk = message_ids[start:start + 500]
            async with self.database.conn.execute(
                    f"SELECT id, conversation_id, message_id, kind, mime, size, pages, name, created_at FROM attachments "
                    f"WHERE message_id IN ({','.join('?' * len(chunk))}) ORDER BY position", chunk) as cursor:
                for row in await cursor.fetchall():
                    out.setdefault(row["message_id"], []).append(self._info(row))
        return out

    async def contents(self, message_id: str, *, with_images: bool) -> list[tuple[AttachmentInfo, dict[str, Any] | None, bytes | None]]:
        """For the prompt: each attachment of the message, its text (``{"pages": [...]}`` or
        ``{"text": ...}``) and, for images when asked, the file."""
        columns = "*" if with_images else "id, conversation_id, message_id, kind, mime, size, pages, name, content, created_at"
        async with self.database.conn.execute(
                f"SELECT {columns} FROM attachments WHERE message_id = ? ORDER BY position", (message_id,)) as cursor:
            rows = list(await cursor.fetchall())
        out = []
        for row in rows:
            content = self._open(row, "content")
            data = self._open(row, "data") if with_images and row["kind"] == "image" else None
            out.append((self._info(row), json.loads(content) if content else None, data))
        return out

    async def texts_of_conversation(self, conversation_id: str, message_id: str | None = None) -> list[tuple[str, str, str]]:
        """(message id, attachment id, name and text) of every sent attachment of a conversation (of one
        message when given): what search indexes."""
        sql, params = "SELECT * FROM attachments WHERE conversation_id = ? AND message_id IS NOT NULL", [conversation_id]
        if message_id is not None:
            sql, params = sql + " AND message_id = ?", params + [message_id]
        async with self.database.conn.execute(sql, params) as cursor:
            rows = list(await cursor.fetchall())
        return [(row["message_id"], row["id"], searchable_text(self._info(row).name, self._open(row, "content"))) for row in rows]

    async def sent_text_batches(self, known: Container[str] = ()) -> AsyncIterator[list[tuple[str, str, str, str]]]:
        """(attachment id, conversation id, message id, name and text) of every sent attachment whose id
        is not in ``known``, 100 at a time, opened in a worker thread (one that does not open is left
        out): what the search index reads at start-up and when another connection wrote."""
        async with self.database.conn.execute("SELECT id FROM attachments WHERE message_id IS NOT NULL") as cursor:
            unknown = [r[0] for r in await cursor.fetchall() if r[0] not in known]
        for start in range(0, len(unknown), 100):
            rows = await self._text_rows(unknown[start:start + 100])
            yield await asyncio.to_thread(self._open_searchable, rows)

    async def texts_of(self, attachment_ids: list[str]) -> dict[str, str]:
        """The name and text of each of these attachments that is still there and opens (a search's snippets)."""
        if not attachment_ids:
            return {}
        rows = await self._text_rows(attachment_ids)
        return {attachment_id: text for attachment_id, _c, _m, text in self._open_searchable(rows)}

    async def _text_rows(self, attachment_ids: list[str]) -> list[Any]:
        async with self.database.conn.execute(
                f"SELECT {TEXT_COLUMNS} FROM attachments WHERE id IN ({','.join('?' * len(attachment_ids))})",
                attachment_ids) as cursor:
            return list(await cursor.fetchall())

    def _open_searchable(self, rows: list[Any]) -> list[tuple[str, str, str, str]]:
        """(id, conversation id, message id, name and text) of each row that opens; safe in a worker thread."""
        out = []
        for row in rows:
            try:
                name = (self._open(row, "name") or b"").decode("utf-8")
                out.append((row["id"], row["conversation_id"], row["message_id"], searchable_text(name, self._open(row, "content"))))
            except CryptoError:
                continue
        return out

    # Export and import --------------------------------------------------------------------------------
    async def export_of(self, conversation_id: str) -> list[dict[str, Any]]:
        import base64

        async with self.database.conn.execute(
                "SELECT * FROM attachments WHERE conversation_id = ? AND message_id IS NOT NULL ORDER BY created_at, position",
                (conversation_id,)) as cursor:
            rows = list(await cursor.fetchall())
        out = []
        for row in rows:
            info = self._info(row)
            content = self._open(row, "content")
            out.append({"id": info.id, "message_id": info.message_id, "name": info.name, "kind": info.kind, "mime": info.mime,
                        "size": info.size, "pages": info.pages, "created_at": info.created_at, "position": row["position"],
                        "content": json.loads(content) if content else None,
                        "data": base64.b64encode(self._open(row, "data") or b"").decode("ascii")})
        return out

    async def import_rows(self, conn: Any, conversation_id: str, attachments: list[dict[str, Any]], known_messages: set[str]) -> int:
        """Inside the import's transaction: the attachments of messages of this conversation not there yet."""
        import base64

        added = 0
        for item in attachments:
            if item["message_id"] not in known_messages:
                raise ImportInvalid(f"attachment {item['id']}: its message_id {item['message_id']} is not a message of "
                                    "the same conversation")
            async with conn.execute("SELECT 1 FROM attachments WHERE id = ?", (item["id"],)) as cursor:
                if await cursor.fetchone() is not None:
                    continue
            data = base64.b64decode(item["data"])
            content = None if item.get("content") is None else json.dumps(item["content"], ensure_ascii=False)
            bound = attachment_binding(conversation_id, item["message_id"], item["kind"], item["mime"], len(data), item.get("pages"))
            sealed = [self._seal(item["id"], column, value, bound) for column, value in
                      (("name", item["name"].encode("utf-8")), ("content", None if content is None else content.encode("utf-8")),
                       ("data", data))]
            await conn.execute(
                "INSERT INTO attachments (id, conversation_id, message_id, kind, mime, size, pages, name, content, data, created_at, "
                "position) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (item["id"], conversation_id, item["message_id"], item["kind"], item["mime"], len(data), item.get("pages"),
                 *sealed, item["created_at"], item.get("position", 0)))
            added += 1
        return added


def searchable_text(name: str, content: bytes | str | None) -> str:
    """An attachment as search sees it: its name, then its text."""
    if not content:
        return name
    parsed = json.loads(content)
    text = "\n".join(parsed["pages"]) if "pages" in parsed else parsed.get("text", "")
    return f"{name}\n{text}"
