"""The export file: the whole history as one JSON document, read back by import, or as Markdown to read.

The format has its own life apart from the store: files written by older versions must still import
after the schema moved on, and an import must hold together before anything of it is kept. Version 1
has no branches (the messages are one line, in file order); version 2 adds each message's
``parent_id``, the current leaf and the title's source; version 3 adds the attachments. The file is
written in plain JSON here; ``privchat history export --encrypt`` wraps it in age (``commands/cli.py``).

What is written to the database, sealed and bound, is the history store's job
(``HistoryStore.importing``); this module decides what a file means and refuses one that does not
hold together.
"""

from __future__ import annotations

import time
from datetime import datetime, timezone
from typing import Any, Iterable

from .attachments import ImportInvalid
from .history import TITLE_SOURCES, HistoryStore, Message

EXPORT_FORMAT = "privchat-export"
EXPORT_VERSION = 3
# Kept on every exported message even when null: an import reads them to rebuild the tree and the state.
ALWAYS_EXPORTED = ("completed_at", "parent_id")


async def history_export(history: HistoryStore) -> dict[str, Any]:
    """Version 3: every branch (each message's ``parent_id``), the current leaf, the title's source
    and the attachments (each with its message, its file in base64 and its extracted text)."""
    conversations = []
    for conversation in await history.all_conversations():
        messages = await history.messages(conversation["id"])
        conversations.append({
            **conversation,
            "current_leaf": await history.branch_end(conversation["id"]),
            "messages": [{k: v for k, v in m.to_json().items()
                          if (v is not None or k in ALWAYS_EXPORTED) and k != "attachments"}
                         for m in messages],
            "attachments": await history.attachments.export_of(conversation["id"]),
        })
    return {"format": EXPORT_FORMAT, "version": EXPORT_VERSION, "exported_at": time.time(), "conversations": conversations}


async def import_conversations(history: HistoryStore, conversations: Iterable[dict[str, Any]]) -> dict[str, int]:
    """Add what is not there yet, in one transaction: importing the same file twice adds nothing.

    The input is already validated (api/schemas.py); a failure part-way rolls everything back.
    A conversation from a version 2 file keeps its tree (a message's parent must come before it,
    in the file or already stored in that conversation, else ImportInvalid); one from a version 1
    file, without parents, becomes one branch in file order. A version 3 file's attachments are
    added with their messages, sealed bound to them.
    """
    added_conversations = added_messages = skipped = 0
    async with history.importing() as batch:
        for conv in conversations:
            exists = await batch.conversation_exists(conv["id"])
            if not exists:
                source = conv.get("title_source") if conv.get("title_source") in TITLE_SOURCES else "first_message"
                await batch.add_conversation(conv["id"], conv["title"], created_at=conv["created_at"],
                                             updated_at=conv["updated_at"], title_source=source)
                added_conversations += 1
            existing = await batch.message_positions(conv["id"])
            next_seq = max(existing.values(), default=0) + 1
            tree = conv.get("current_leaf") is not None or any(m.get("parent_id") for m in conv["messages"])
            previous = None if not existing else await batch.branch_end(conv["id"])
            known = set(existing)
            for message in conv["messages"]:
                parent = message.get("parent_id") if tree else previous
                if tree and parent is not None and parent not in known:
                    raise ImportInvalid(f"message {message['id']}: its parent_id {parent} is not an earlier message "
                                     "of the same conversation")
                if message["id"] in existing:
                    skipped += 1
                    previous = message["id"]
                    continue
                if await batch.message_exists(message["id"]):  # stored in another conversation (or twice in this file)
                    skipped += 1
                    continue
                known.add(message["id"])
                previous = message["id"]
                await batch.add_message(_imported_message(conv["id"], message, next_seq, parent), updated_at=conv["updated_at"])
                next_seq += 1
                added_messages += 1
            if conv.get("attachments"):
                await batch.add_attachments(conv["id"], conv["attachments"], known | set(existing))
            leaf = conv.get("current_leaf") if conv.get("current_leaf") in known else previous
            if leaf is not None:
                await batch.set_current_leaf(conv["id"], leaf, replace=not exists)
    return {"imported_conversations": added_conversations, "imported_messages": added_messages, "skipped": skipped}


def _imported_message(conversation_id: str, message: dict[str, Any], seq: int, parent_id: str | None) -> Message:
    """An exported message as the store keeps it, at its new position; one exported mid-reply
    ("streaming") is not coming back: it is interrupted."""
    status = "interrupted" if message["status"] == "streaming" else message["status"]
    return Message(
        id=message["id"], conversation_id=conversation_id, seq=seq, role=message["role"], content=message["content"],
        status=status, created_at=message["created_at"], completed_at=message.get("completed_at"),
        prompt_tokens=message.get("prompt_tokens"), completion_tokens=message.get("completion_tokens"),
        finish_reason=message.get("finish_reason"), ttft_ms=message.get("ttft_ms"),
        tokens_per_second=message.get("tokens_per_second"), parent_id=parent_id, model=message.get("model"),
        attachments_seen=message.get("attachments_seen"),
    )


def current_path(conv: dict[str, Any]) -> list[dict[str, Any]]:
    """The messages of an exported conversation's current branch, root first (all of them for a
    version 1 export, which has no branches)."""
    messages = conv["messages"]
    leaf = conv.get("current_leaf")
    if leaf is None:
        return messages
    by_id = {m["id"]: m for m in messages}
    path: list[dict[str, Any]] = []
    while leaf is not None and leaf in by_id and len(path) <= len(messages):
        path.append(by_id[leaf])
        leaf = by_id[leaf].get("parent_id")
    return path[::-1]


def export_to_markdown(export: dict[str, Any]) -> str:
    """A readable transcript; JSON stays the format to import back."""

    def stamp(value: float) -> str:
        return datetime.fromtimestamp(value, tz=timezone.utc).strftime("%Y-%m-%d %H:%M UTC")

    lines = ["# privchat history", "", f"Exported {stamp(export['exported_at'])}.", ""]
    for conv in export["conversations"]:
        lines += [f"## {conv['title']}", "", f"*Started {stamp(conv['created_at'])}*", ""]
        attached: dict[str, list[str]] = {}
        for item in conv.get("attachments") or []:
            attached.setdefault(item["message_id"], []).append(f"{item['name']} ({item['size']} bytes)")
        for message in current_path(conv):
            who = {"user": "You", "assistant": "Assistant", "system": "System"}[message["role"]]
            note = "" if message["status"] == "complete" else f" ({message['status']})"
            lines += [f"**{who}**{note}:", "", message["content"], ""]
            if message["id"] in attached:
                lines += [f"*Attached: {', '.join(attached[message['id']])}*", ""]
    return "\n".join(lines)
