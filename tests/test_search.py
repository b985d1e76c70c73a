"""Search over encrypted history: the in-memory index, built at start-up and kept current
by every write, finds conversations by words of titles and messages, newest first, with highlighted
snippets; and nothing searchable reaches the disk. The API route is tested in test_branches_api.py."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hypothesis import given, settings, strategies as st

from privchat.storage.db import Database
from privchat.storage.export import import_conversations
from privchat.storage.history import HistoryStore
from privchat.storage.search_index import SearchIndex, make_snippet, query_words, words
from tests.support.stores import store_config, with_history


def _marked(hit: Any) -> list[str]:
    return [hit.snippet[s:e] for s, e in hit.highlights]


def test_build_then_live_writes_newest_first_with_snippets(tmp_path: Path) -> None:
    async def scenario(database: Database, history: HistoryStore) -> None:
        old = await history.create_conversation("Sourdough starter", now=1000.0)
        await history.add_message(old, "user", "How do I feed a sourdough starter?", now=1001.0)
        await history.add_message(old, "assistant", "Feed it flour and water every day; keep it warm.", now=1002.0)
        newer = await history.create_conversation("Crème brûlée", now=2000.0)
        await history.add_message(newer, "user", "A recipe for crème brûlée with flour?", now=2001.0)

        index = SearchIndex()
        history.observers.append(index)
        await index.build(history)
        assert index.ready

        hits = await index.search(history, "flour")
        assert [h.conversation_id for h in hits] == [newer, old]  # newest first
        assert _marked(hits[1]) == ["flour"] and hits[1].message_id is not None
        # Accents and case fold; every word must be found in the conversation; words match as prefixes.
        assert [h.conversation_id for h in await index.search(history, "CREME brulee")] == [newer]
        assert [h.conversation_id for h in await index.search(history, "sourd warm")] == [old]
        assert await index.search(history, "flour unicorn") == []
        title_hit = (await index.search(history, "starter"))[0]
        assert title_hit.title == "Sourdough starter"

        # Live writes: a new message, a streamed reply updated, a rename, a delete.
        third = await history.create_conversation("Bicycles", now=3000.0)
        reply = await history.add_message(third, "assistant", "", status="streaming", now=3001.0)
        await history.update_message(reply.id, "Oil the chain, then add flour? No: grease.", "complete")
        assert [h.conversation_id for h in await index.search(history, "grease")] == [third]
        assert [h.conversation_id for h in await index.search(history, "flour")][0] == third
        await history.update_message(reply.id, "Oil the chain.", "complete")
        assert await index.search(history, "grease") == []
        await history.rename(old, "Bread notes")
        assert [h.conversation_id for h in await index.search(history, "bread")] == [old]
        assert await index.search(history, "Sourdough starter") != []  # still in its messages
        await history.delete_conversation(newer)
        assert newer not in [h.conversation_id for h in await index.search(history, "flour")]
        await history.clear()
        assert await index.search(history, "flour") == [] and await index.search(history, "chain") == []

    with_history(tmp_path, scenario)


def test_a_conversation_deleted_behind_the_index_is_not_shown(tmp_path: Path) -> None:
    """The CLI deletes through its own connection; the index does not hear of it, the answer checks."""
    async def scenario(database: Database, history: HistoryStore) -> None:
        gone = await history.create_conversation("secret plans")
        index = SearchIndex()
        history.observers.append(index)
        await index.build(history)
        assert await index.search(history, "secret")
        other = HistoryStore(database)  # no observers: like another process
        await other.delete_conversation(gone)
        assert await index.search(history, "secret") == []

    with_history(tmp_path, scenario)


def test_what_another_connection_imports_is_found_without_a_restart(tmp_path: Path) -> None:
    """`privchat history import` writes through its own connection; the next search catches up."""
    async def scenario(database: Database, history: HistoryStore) -> None:
        await history.create_conversation("nothing to see")
        index = SearchIndex()
        history.observers.append(index)
        await index.build(history)
        assert await index.catch_up(history) == 0  # nobody else wrote: one PRAGMA, nothing read
        other_connection = await Database.open(store_config(tmp_path))
        try:
            await import_conversations(HistoryStore(other_connection), [{
                "id": "imported", "title": "Platypus notes", "created_at": 1.0, "updated_at": 2.0,
                "messages": [{"id": "imported-1", "role": "user", "content": "the echidna lays eggs",
                              "status": "complete", "created_at": 1.0}]}])
        finally:
            await other_connection.close()
        assert await index.search(history, "echidna") == [], "the control: the index has not heard of it yet"
        assert await index.catch_up(history) == 2  # the title and the message
        hits = await index.search(history, "echidna")
        assert [(h.conversation_id, h.message_id) for h in hits] == [("imported", "imported-1")]
        assert [h.conversation_id for h in await index.search(history, "platypus")] == ["imported"]
        assert await index.catch_up(history) == 0
        await history.add_message("imported", "user", "the echidna again")  # this process's own write
        assert await index.catch_up(history) == 0, "own writes reach the index directly"

    with_history(tmp_path, scenario)


def test_nothing_searchable_is_written_to_disk(tmp_path: Path) -> None:
    async def scenario(database: Database, history: HistoryStore) -> None:
        async with database.conn.execute("SELECT name FROM sqlite_master ORDER BY name") as cursor:
            schema_before = [r[0] for r in await cursor.fetchall()]
        conversation = await history.create_conversation("zanzibarquux")
        await history.add_message(conversation, "user", "zanzibarquux and xylophonic")
        index = SearchIndex()
        history.observers.append(index)
        await index.build(history)
        assert await index.search(history, "xylophonic")
        async with database.conn.execute("SELECT name FROM sqlite_master ORDER BY name") as cursor:
            assert [r[0] for r in await cursor.fetchall()] == schema_before
        await database.conn.execute("PRAGMA wal_checkpoint(FULL)")
        for path in database.path.parent.iterdir():
            data = path.read_bytes()
            assert b"xylophonic" not in data and b"zanzibarquux" not in data, path

    with_history(tmp_path, scenario)


def test_snippet_highlights_point_at_the_words() -> None:
    text = ("word " * 60) + "the  Élan\n vital\tof flour " + ("tail " * 60)
    snippet, highlights = make_snippet(text, ["elan", "flo"])
    assert snippet.startswith("…") and snippet.endswith("…") and len(snippet) < 200
    assert [snippet[s:e] for s, e in highlights] == ["Élan", "flour"]
    assert "  " not in snippet and "\n" not in snippet


def test_messages_read_at_start_up_can_still_change_and_go(tmp_path: Path) -> None:
    """The build keeps no word list per message (memory); such a message updated or deleted later
    must still leave the answers, and the sweep takes its words out of the index."""
    async def scenario(database: Database, history: HistoryStore) -> None:
        kept = await history.create_conversation("kept")
        await history.add_message(kept, "user", "aardvark")
        reply = await history.add_message(kept, "assistant", "", status="streaming")
        await history.update_message(reply.id, "interrupted platypus", "interrupted")
        gone = await history.create_conversation("gone")
        await history.add_message(gone, "user", "wombat aardvark")
        index = SearchIndex()
        history.observers.append(index)
        await index.build(history)
        await history.update_message(reply.id, "finished echidna", "complete")
        assert await index.search(history, "platypus") == []
        assert [h.message_id for h in await index.search(history, "echidna")] == [reply.id]
        await history.delete_conversation(gone)
        assert await index.search(history, "wombat") == []
        assert [h.conversation_id for h in await index.search(history, "aardvark")] == [kept]
        index._sweep(force=True)
        assert "wombat" not in index._postings and "platypus" not in index._postings
        assert [h.conversation_id for h in await index.search(history, "aardvark")] == [kept]

    with_history(tmp_path, scenario)


LETTERS = st.sampled_from("abcéE\U0002fa1d")  # accents fold; the last is the highest code point \w matches


@settings(max_examples=200, deadline=None)
@given(st.lists(st.text(alphabet=LETTERS, min_size=1, max_size=4), min_size=1, max_size=30),
       st.text(alphabet=LETTERS, min_size=1, max_size=3))
def test_a_prefix_finds_exactly_the_titles_with_a_word_that_starts_with_it(titles: list[str], prefix: str) -> None:
    """The index's prefix lookup against a scan of every title's words."""
    index = SearchIndex()
    for number, title in enumerate(titles):
        index.title_written(f"c{number}", title, float(number))
    expected = {f"c{n}" for n, title in enumerate(titles)
                if all(any(word.startswith(term) for word in words(title)) for term in query_words(prefix))}
    found = {conversation for conversation, _doc, _terms in index.match(prefix, limit=len(titles))}
    assert found == expected
