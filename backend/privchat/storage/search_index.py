"""Search over encrypted history, with nothing searchable written to disk.

The history is sealed per value, so SQLite cannot search it, and a plain-text index (FTS tables, a
token list, even hashed words) on disk would give away what the encryption hides. The index lives
in this process's memory only: built from the decrypted history at start-up, in the background
(``build``; batches of rows opened in a thread, read through the history store's bulk readers
such as ``HistoryStore.title_batches``), and kept current by every write of the history
store, which tells it as each write commits (``HistoryObserver``). A restart forgets it and builds
it again. It holds words, not text: the snippets of the few hits shown are opened from the database
when a search asks (``search``), and a conversation deleted meanwhile (by the CLI, say) is dropped
from the answer because it is no longer there. What the CLI adds (``privchat history import``) is
written by another connection, which the history store cannot tell: before answering, a search
asks SQLite whether another connection committed since it last looked (``PRAGMA data_version``)
and, if so, indexes the conversations and messages it does not know yet (``catch_up``).

Words are ``\\w+`` runs, case- and accent-folded. A query matches a conversation when each of its
words starts a word of the conversation's title or of one of its messages (any branch); results are
the newest conversations first, each with the message that holds most of the query's words.

An attached document is a document of its own here, under its message: its name and its
text are indexed, and a hit on it shows a snippet of the attachment and names the message it came with.
"""

from __future__ import annotations

import asyncio
import bisect
import heapq
import logging
import re
import sys
import time
import unicodedata
from dataclasses import dataclass, field
from typing import Any, Iterable

from .history import HistoryStore

log = logging.getLogger(__name__)

WORD = re.compile(r"\w+")
BUILD_BATCH = 2000
SNIPPET_CHARS = 160
MAX_QUERY_WORDS = 8
TITLE = -1  # the message "id" of a conversation's title


def fold(word: str) -> str:
    """Lower case without accents: "Élan" and "elan" are one word."""
    decomposed = unicodedata.normalize("NFKD", word.casefold())
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def words(text: str) -> set[str]:
    return {fold(w) for w in WORD.findall(text)}


def query_words(q: str) -> list[str]:
    found = sorted({fold(w) for w in WORD.findall(q)}, key=len, reverse=True)
    return found[:MAX_QUERY_WORDS]


@dataclass
class Hit:
    conversation_id: str
    title: str
    message_id: str | None
    snippet: str
    highlights: list[tuple[int, int]]
    updated_at: float

    def to_json(self) -> dict[str, Any]:
        return {"conversation_id": self.conversation_id, "title": self.title, "message_id": self.message_id,
                "snippet": self.snippet, "highlights": [list(h) for h in self.highlights], "updated_at": self.updated_at}


@dataclass
class _Conversation:
    number: int
    title: str = ""
    updated_at: float = 0.0
    docs: set[int] = field(default_factory=set)  # its messages' document numbers


class SearchIndex:
    """Word → documents, in memory. Documents are numbered: a message, or a conversation's title."""

    def __init__(self) -> None:
        self._postings: dict[str, set[int]] = {}
        self._vocabulary: list[str] = []  # sorted, for prefix lookups
        # The words of the documents that may change (titles, messages written since start-up), to
        # take them out again. Messages read by the build keep none (most of the memory otherwise):
        # when one goes, its number is only marked dead and swept out of the postings later.
        self._doc_words: dict[int, tuple[str, ...]] = {}  # a tuple: a third of a frozenset's memory
        self._dead: set[int] = set()
        # Document number → its conversation's number (0: none, a dead document); a list, not a dict:
        # numbers are dense, and a query maps every matching document through it.
        self._doc_conversation: list[int] = [0]
        self._doc_message: dict[int, str | None] = {}  # None: the title document
        self._message_doc: dict[str, int] = {}
        self._title_doc: dict[str, int] = {}
        self._attachment_doc: dict[str, int] = {}  # attachment id -> its document (its message's in _doc_message)
        self._doc_attachment: dict[int, str] = {}
        self._conversations: dict[str, _Conversation] = {}
        self._conversation_ids: dict[int, str] = {}
        self._next = 0
        self._forgotten: set[str] = set()  # deleted while the build or a catch-up ran: not to be added back by it
        self.ready = False
        self.build_seconds: float | None = None
        self._data_version: int | None = None  # SQLite's count of other connections' commits, last seen
        self._catching_up = asyncio.Lock()

    # The HistoryObserver side -------------------------------------------------------------------
    def message_written(self, conversation_id: str, message_id: str, content: str, updated_at: float | None) -> None:
        conversation = self._conversation(conversation_id, updated_at)
        doc = self._message_doc.get(message_id)
        if doc is not None and doc not in self._doc_words:  # read by the build: its old words are unknown
            self._forget_doc(doc)
            conversation.docs.discard(doc)
            doc = None
        if doc is None:
            doc = self._new_doc(conversation, message_id)
            self._message_doc[message_id] = doc
        self._set_words(doc, words(content))

    def attachment_written(self, conversation_id: str, message_id: str, attachment_id: str, text: str,
                           updated_at: float | None) -> None:
        """An attachment sent with a message: its name and text, indexed once (attachments never change)."""
        if attachment_id in self._attachment_doc:
            return
        conversation = self._conversation(conversation_id, updated_at)
        doc = self._new_doc(conversation, message_id)
        self._attachment_doc[attachment_id] = doc
        self._doc_attachment[doc] = attachment_id
        self._add_many(doc, words(text))

    def title_written(self, conversation_id: str, title: str, updated_at: float | None) -> None:
        conversation = self._conversation(conversation_id, updated_at)
        conversation.title = title
        doc = self._title_doc.get(conversation_id)
        if doc is None:
            doc = self._new_doc(conversation, None)
            self._title_doc[conversation_id] = doc
        self._set_words(doc, words(title))

    def conversation_deleted(self, conversation_id: str) -> None:
        self._forgotten.add(conversation_id)
        conversation = self._conversations.pop(conversation_id, None)
        if conversation is None:
            return
        self._conversation_ids.pop(conversation.number, None)
        title_doc = self._title_doc.pop(conversation_id, None)
        for doc in list(conversation.docs) + ([title_doc] if title_doc is not None else []):
            self._forget_doc(doc)
        self._sweep()

    def cleared(self) -> None:
        forgotten = self._forgotten | set(self._conversations)
        ready, build_seconds, data_version = self.ready, self.build_seconds, self._data_version
        self.__init__()  # type: ignore[misc]  # everything goes at once
        self._forgotten, self.ready, self.build_seconds, self._data_version = forgotten, ready, build_seconds, data_version

    # Building at start-up -------------------------------------------------------------------------
    async def build(self, history: HistoryStore) -> None:
        """Read every title and message, a batch at a time (opened in a thread), and index them.

        Writes that happen meanwhile reach the index directly and win: a row the build reads after
        it was written or deleted live is not added again.
        """
        try:
            await self._build(history)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # search then answers from what was written since start-up, marked incomplete
            log.error("the search index could not read the history: %s", type(exc).__name__)

    async def _build(self, history: HistoryStore) -> None:
        started = time.perf_counter()
        self._data_version = await history.database.data_version()  # what others commit from here on is caught up
        async for titles in history.title_batches(BUILD_BATCH):
            for conversation_id, title, updated_at in titles:
                if conversation_id not in self._forgotten and conversation_id not in self._title_doc:
                    self.title_written(conversation_id, title, updated_at)
        async for messages in history.message_batches(BUILD_BATCH, words):
            for message_id, conversation_id, found in messages:
                if (conversation_id in self._conversations and conversation_id not in self._forgotten
                        and message_id not in self._message_doc):
                    doc = self._new_doc(self._conversations[conversation_id], message_id)
                    self._message_doc[message_id] = doc
                    self._add_words(doc, found)
            await asyncio.sleep(0)  # let requests in between batches
        await self._index_attachments(history, None)
        self._forgotten.clear()
        self.ready = True
        self.build_seconds = time.perf_counter() - started
        log.info("search index built in %.2f s: %d conversations, %d words", self.build_seconds,
                 len(self._conversations), len(self._postings))

    # What another connection wrote ------------------------------------------------------------------
    async def catch_up(self, history: HistoryStore) -> int:
        """Index the titles and messages another connection committed since the last look; how many.

        Costs one PRAGMA when nobody else wrote. Otherwise the ids of every conversation and message
        are compared with the index's, and only the unknown rows are read and opened (in a thread).
        Rows this process wrote are known already; the build reads everything itself.
        """
        if not self.ready:
            return 0
        async with self._catching_up:
            version = await history.database.data_version()
            if version == self._data_version:
                return 0
            self._data_version = version
            self._forgotten.clear()  # from here on: deleted while this catch-up reads, not to be added back
            added = 0
            for conversation_id, title, updated_at in await history.titles_not_in(self._title_doc):
                # A rename or a delete by this process while the rows were opened wins.
                if conversation_id not in self._title_doc and conversation_id not in self._forgotten:
                    self.title_written(conversation_id, title, updated_at)
                    added += 1
            async for messages in history.messages_not_in(self._message_doc, words):
                for message_id, conversation_id, found in messages:
                    if conversation_id in self._conversations and message_id not in self._message_doc:
                        doc = self._new_doc(self._conversations[conversation_id], message_id)
                        self._message_doc[message_id] = doc
                        self._add_words(doc, found)
                        added += 1
            added += await self._index_attachments(history, set(self._attachment_doc))
            if added:
                log.info("search index caught up with %d titles and messages written by another process", added)
            return added

    async def _index_attachments(self, history: HistoryStore, known: set[str] | None) -> int:
        """Every sent attachment not indexed yet (all of them at start-up), opened in a thread."""
        added = 0
        async for attachments in history.attachments.sent_text_batches(known or ()):
            for attachment_id, conversation_id, message_id, text in attachments:
                if conversation_id in self._conversations and conversation_id not in self._forgotten:
                    self.attachment_written(conversation_id, message_id, attachment_id, text, None)
                    added += 1
            await asyncio.sleep(0)
        return added

    # Searching ------------------------------------------------------------------------------------
    def match(self, q: str, limit: int) -> list[tuple[str, int | None, list[str]]]:
        """(conversation id, best document or None for the title, the query's words), newest first."""
        terms = query_words(q)
        if not terms:
            return []
        per_term: list[set[int]] = []
        conversations: set[int] | None = None
        for term in terms:
            docs = self._docs_for(term)
            per_term.append(docs)
            of = self._doc_conversation
            found = {of[d] for d in docs}
            found.discard(0)
            conversations = found if conversations is None else conversations & found
            if not conversations:
                return []
        assert conversations is not None
        newest = heapq.nlargest(limit, (c for c in conversations if c in self._conversation_ids),
                                key=lambda c: (self._conversations[self._conversation_ids[c]].updated_at, c))
        out = []
        for number in newest:
            conversation_id = self._conversation_ids[number]
            conversation = self._conversations[conversation_id]
            best, best_score = None, 0
            for doc in sorted(conversation.docs, reverse=True):  # the newest message wins a tie
                score = sum(1 for docs in per_term if doc in docs)
                if score > best_score:
                    best, best_score = doc, score
            title_doc = self._title_doc.get(conversation_id)
            if title_doc is not None and sum(1 for docs in per_term if title_doc in docs) > best_score:
                best = None
            out.append((conversation_id, best, terms))
        return out

    async def search(self, history: HistoryStore, q: str, limit: int = 20) -> list[Hit]:
        matched = self.match(q, limit)
        if not matched:
            return []
        message_ids = [self._doc_message[d] for _, d, _ in matched if d is not None and d not in self._doc_attachment]
        texts = await history.message_texts([m for m in message_ids if m])
        attached = {d: self._doc_attachment[d] for _, d, _ in matched if d in self._doc_attachment}
        attachment_texts = await history.attachments.texts_of(list(attached.values()))
        stamps = await history.conversation_stamps([c for c, _, _ in matched])
        hits = []
        for conversation_id, doc, terms in matched:
            if conversation_id not in stamps:  # deleted meanwhile (the CLI writes to the database too)
                continue
            conversation = self._conversations.get(conversation_id)
            if conversation is None:
                continue
            message_id = self._doc_message.get(doc) if doc is not None else None
            text = texts.get(message_id, conversation.title) if message_id else conversation.title
            if doc in attached:
                text = attachment_texts.get(attached[doc], conversation.title)
            snippet, highlights = make_snippet(text, terms)
            hits.append(Hit(conversation_id, conversation.title, message_id, snippet, highlights, stamps[conversation_id]))
        return hits

    def memory_bytes(self) -> int:
        """A rough size of what the index holds (its containers and their entries), for the bench."""
        total = sys.getsizeof(self._postings) + sys.getsizeof(self._vocabulary)
        for word, docs in self._postings.items():
            total += sys.getsizeof(word) + sys.getsizeof(docs)
        for table in (self._doc_words, self._doc_conversation, self._doc_message, self._message_doc, self._title_doc):  # type: ignore[attr-defined]
            total += sys.getsizeof(table)
        total += sum(sys.getsizeof(w) for w in self._doc_words.values())
        total += sum(sys.getsizeof(c.docs) + sys.getsizeof(c.title) for c in self._conversations.values())
        total += 28 * self._next  # the document numbers themselves
        return total

    # Internals ------------------------------------------------------------------------------------
    def _forget_doc(self, doc: int) -> None:
        if doc in self._doc_words:
            self._set_words(doc, frozenset())
            del self._doc_words[doc]
        else:
            self._dead.add(doc)
        self._doc_conversation[doc] = 0
        attachment_id = self._doc_attachment.pop(doc, None)
        if attachment_id is not None:
            self._attachment_doc.pop(attachment_id, None)
        message_id = self._doc_message.pop(doc, None)
        if message_id is not None and self._message_doc.get(message_id) == doc:
            del self._message_doc[message_id]

    def _sweep(self, force: bool = False) -> None:
        """Take dead documents out of the postings once they are a good part of them (one pass)."""
        if not self._dead or (not force and len(self._dead) < max(10_000, len(self._doc_message) // 4)):
            return
        dead = self._dead
        for word in list(self._postings):
            docs = self._postings[word]
            docs -= dead
            if not docs:
                del self._postings[word]
        self._vocabulary = sorted(self._postings)
        self._dead = set()

    def _conversation(self, conversation_id: str, updated_at: float | None) -> _Conversation:
        conversation = self._conversations.get(conversation_id)
        if conversation is None:
            self._forgotten.discard(conversation_id)
            conversation = _Conversation(self._next_number())
            self._conversations[conversation_id] = conversation
            self._conversation_ids[conversation.number] = conversation_id
        if updated_at is not None and updated_at > conversation.updated_at:
            conversation.updated_at = updated_at
        return conversation

    def _next_number(self) -> int:
        self._next += 1
        self._doc_conversation.append(0)
        return self._next

    def _new_doc(self, conversation: _Conversation, message_id: str | None) -> int:
        doc = self._next_number()
        self._doc_conversation[doc] = conversation.number
        self._doc_message[doc] = message_id
        if message_id is not None:
            conversation.docs.add(doc)
        return doc

    def _set_words(self, doc: int, new: Iterable[str]) -> None:
        new = frozenset(new)
        old = frozenset(self._doc_words.get(doc, ()))
        for word in old - new:
            docs = self._postings.get(word)
            if docs is not None:
                docs.discard(doc)
                if not docs:
                    del self._postings[word]
                    at = bisect.bisect_left(self._vocabulary, word)
                    if at < len(self._vocabulary) and self._vocabulary[at] == word:
                        del self._vocabulary[at]
        for word in new - old:
            docs = self._postings.get(word)
            if docs is None:
                docs = self._postings[word] = set()
                bisect.insort(self._vocabulary, word)
            docs.add(doc)
        self._doc_words[doc] = tuple(new)

    def _add_words(self, doc: int, found: Iterable[str]) -> None:
        """A document that will not change: its words go in, and are not kept for it."""
        for word in found:
            docs = self._postings.get(word)
            if docs is None:
                docs = self._postings[word] = set()
                bisect.insort(self._vocabulary, word)
            docs.add(doc)

    def _add_many(self, doc: int, found: Iterable[str]) -> None:
        """``_add_words`` for a long document (an attachment): new words join the vocabulary in one sort."""
        fresh = []
        for word in found:
            docs = self._postings.get(word)
            if docs is None:
                docs = self._postings[word] = set()
                fresh.append(word)
            docs.add(doc)
        if len(fresh) > 64:
            self._vocabulary = sorted(self._vocabulary + fresh)
        else:
            for word in fresh:
                bisect.insort(self._vocabulary, word)

    def _docs_for(self, term: str) -> set[int]:
        """Documents with a word that starts with ``term``."""
        at = bisect.bisect_left(self._vocabulary, term)
        if ord(term[-1]) < sys.maxunicode:  # the first string past every word that starts with term
            end = bisect.bisect_left(self._vocabulary, term[:-1] + chr(ord(term[-1]) + 1), at)
        else:
            end = at
            while end < len(self._vocabulary) and self._vocabulary[end].startswith(term):
                end += 1
        return set().union(*[self._postings[word] for word in self._vocabulary[at:end]])


def make_snippet(text: str, terms: list[str]) -> tuple[str, list[tuple[int, int]]]:
    """About SNIPPET_CHARS of ``text`` around its first matching word, and where the matches are."""
    spans = [(m.start(), m.end()) for m in WORD.finditer(text) if any(fold(m.group()).startswith(t) for t in terms)]
    flat = " ".join(text.split())
    if not spans:
        return flat[:SNIPPET_CHARS], []
    first = spans[0][0]
    start = max(0, first - SNIPPET_CHARS // 3)
    if start > 0:  # start on a word boundary
        space = text.rfind(" ", 0, start)
        start = space + 1 if space >= 0 and first - space < SNIPPET_CHARS // 2 else start
    end = min(len(text), start + SNIPPET_CHARS)
    window = text[start:end]
    prefix = "…" if start > 0 else ""
    suffix = "…" if end < len(text) else ""
    # Collapse whitespace while keeping the offsets right: rebuild the window character by character.
    out: list[str] = []
    mapping: dict[int, int] = {}
    last_space = False
    for index, char in enumerate(window):
        mapping[index] = len(out) + len(prefix)
        if char.isspace():
            if not last_space:
                out.append(" ")
            last_space = True
        else:
            out.append(char)
            last_space = False
    mapping[len(window)] = len(out) + len(prefix)
    highlights = [(mapping[s - start], mapping[min(e, end) - start]) for s, e in spans if s >= start and s < end]
    return prefix + "".join(out) + suffix, highlights
