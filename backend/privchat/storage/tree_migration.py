"""Migration 5: conversations become trees of messages, and each message is bound to its place in one.

Before, a conversation was one list ordered by ``seq``. Regenerate and edit make it a tree: every
message names the message it answers (``parent_id``; null for a conversation's first), and the
conversation remembers the branch shown by default (``current_leaf``) and who set its title
(``title_source``: the first message, the model, or the owner, whose rename is never overwritten).

Each existing conversation becomes one branch: a message's parent is the message before it. Every
message is then re-sealed bound to that parent as well (``bindings.message_binding``), so a row
moved to another branch (its ``parent_id`` rewritten) fails to open, like a row moved to another
conversation already did.

Like migration 2 it runs inside the migration's single transaction (``db.migrate``): a crash part-way
leaves the schema at version 4 and every row as it was. Rows go in batches by rowid with the AES work
in a thread. A value that does not open under its old binding (damaged or tampered before the
upgrade) is left as it is and named in the log; it fails its integrity check when read.
"""

from __future__ import annotations

from typing import Any, Sequence

import aiosqlite

from .bindings import flat_message_binding, message_binding
from .crypto import Cipher, CryptoError
from .reseal import _in_batches

SCHEMA = """
ALTER TABLE messages ADD COLUMN parent_id TEXT;
ALTER TABLE conversations ADD COLUMN current_leaf TEXT;
ALTER TABLE conversations ADD COLUMN title_source TEXT NOT NULL DEFAULT 'first_message';
CREATE INDEX messages_by_parent ON messages (conversation_id, parent_id, seq);
UPDATE messages SET parent_id = (
    SELECT before.id FROM messages AS before
    WHERE before.conversation_id = messages.conversation_id AND before.seq < messages.seq
    ORDER BY before.seq DESC LIMIT 1);
UPDATE conversations SET current_leaf = (
    SELECT m.id FROM messages AS m WHERE m.conversation_id = conversations.id ORDER BY m.seq DESC LIMIT 1)
"""


async def messages_become_a_tree(conn: aiosqlite.Connection, cipher: Cipher) -> None:
    for statement in (part.strip() for part in SCHEMA.split(";")):
        if statement:
            await conn.execute(statement)
    await _in_batches(conn, "SELECT rowid, id, conversation_id, role, seq, parent_id, content FROM messages",
                      "UPDATE messages SET content = ? WHERE rowid = ?", lambda rows, bad: _reseal(cipher, rows, bad))


def _reseal(cipher: Cipher, rows: Sequence[Any], unopened: list[str]) -> list[tuple[bytes, int]]:
    out = []
    for rowid, message_id, conversation_id, role, seq, parent_id, content in rows:
        try:
            text = cipher.open(content, table="messages", column="content", row_id=message_id,
                               bound=flat_message_binding(conversation_id, role, seq))
        except CryptoError as exc:
            unopened.append(str(exc))
            continue
        out.append((cipher.seal(text, table="messages", column="content", row_id=message_id,
                                bound=message_binding(conversation_id, role, seq, parent_id)), rowid))
    return out
