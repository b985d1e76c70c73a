"""Which message a new reply answers: where a chat request adds to a conversation's tree.

A chat request says where its reply goes in one of three ways. ``regenerate_of`` names an earlier
reply: the new one answers the same user message, a sibling of that reply. Otherwise the owner's
message is new and is stored here, before any decoding, so whatever happens to the reply it is
kept: it answers ``parent_id`` (an edit is a sibling of the message it edits; None makes a new first
message), or by default the end of the conversation's current branch (``END_OF_BRANCH``, the tip
the owner last saw). Without a conversation, a new one is made for it. The prompt is then the path
from the root to the message answered (``HistoryStore.path``), never a sibling branch.
"""

from __future__ import annotations

from ..errors import PARENT_INVALID, REGENERATE_INVALID, VALIDATION_ERROR, CodedError, NotFound
from ..storage.history import END_OF_BRANCH, HistoryStore, Message


async def message_to_answer(history: HistoryStore, message: str | None, conversation_id: str | None, *,
                            parent_id: str | None = END_OF_BRANCH, regenerate_of: str | None = None,
                            attachments: list[str] | None = None) -> Message:
    """The user message the new reply answers (its ``conversation_id`` is the reply's too): the one
    ``regenerate_of``'s reply answered, or ``message``, stored now where ``parent_id`` says with its
    ``attachments``. Refusals: regenerate_invalid, validation_error (no message), parent_invalid,
    not_found (no such conversation), and the store's own (attachment_not_found, attachment_taken)."""
    if regenerate_of is not None:
        try:
            old = await history.get_message(regenerate_of)
        except NotFound:
            old = None
        if (old is None or old.role != "assistant" or old.parent_id is None
                or (conversation_id is not None and old.conversation_id != conversation_id)):
            raise CodedError(REGENERATE_INVALID)
        try:
            user = await history.get_message(old.parent_id)
        except NotFound:
            user = None
        if user is None or user.role != "user":
            raise CodedError(REGENERATE_INVALID)
        return user
    if message is None:
        raise CodedError(VALIDATION_ERROR, detail="message is required unless regenerate_of names a reply")
    if conversation_id is None:
        if parent_id not in (END_OF_BRANCH, None):
            raise CodedError(PARENT_INVALID, field="parent_id")
        conversation_id = await history.create_conversation(message)
    elif not await history.conversation_exists(conversation_id):
        raise NotFound("conversation")
    # parent_invalid, attachment_not_found, attachment_taken: the store's refusals, as they are
    return await history.add_message(conversation_id, "user", message, parent_id=parent_id, attachments=attachments or None)
