"""What each sealed value is bound to: the fields that give it its meaning.

One place for it, because several modules must agree byte for byte: the stores that seal and open
(``history.py``, ``settings.py``) and the migrations that re-seal rows written under an older
binding (``reseal.py``: migration 2, and migration 5, ``tree_migration.py``).

- A message's text means what it means because of its conversation, who said it, where it stands
  in the conversation and which message it answers (its parent in the tree of branches): moving it
  to another conversation or branch, re-labelling or reordering it must make it fail to open.
- A conversation's title belongs to its conversation: its row id is bound already.
- An attachment's name, text and file are bound to its conversation and message ("" while it
  waits to be sent), its kind, type, size and page count: it cannot be moved to another message or
  passed off as another file.
- The settings row is bound to a version that grows on every write, so a copy of an older sealed
  value put back into the row fails to open (unless the version is put back with it: state kept
  only in the database can always be rolled back as a whole; see SECURITY.md).

Not bound, on purpose: a message's status, timestamps and token counts. They describe the row,
not the text, and they are written without the key (start-up marks unfinished replies
``interrupted`` with one UPDATE).
"""

from __future__ import annotations

from .crypto import Binding


def message_binding(conversation_id: str, role: str, seq: int, parent_id: str | None) -> Binding:
    """Schema 5 on: the message's place in the tree is its parent ("" for a conversation's first)."""
    return {"conversation": conversation_id, "role": role, "seq": seq, "parent": parent_id or ""}


def flat_message_binding(conversation_id: str, role: str, seq: int) -> Binding:
    """Schema 2 to 4, when a conversation was one list: written by migration 2, opened by migration 5."""
    return {"conversation": conversation_id, "role": role, "seq": seq}


def settings_binding(version: int) -> Binding:
    return {"version": version}


def attachment_binding(conversation_id: str | None, message_id: str | None, kind: str, mime: str, size: int,
                       pages: int | None) -> Binding:
    """Schema 7 on: where an attachment belongs and what it is."""
    return {"conversation": conversation_id or "", "message": message_id or "", "kind": kind, "mime": mime,
            "size": size, "pages": "" if pages is None else pages}
