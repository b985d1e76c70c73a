"""Regenerate, edit, branches, rename, search and titles through the API of a live server with the
real model. Storage-level cases: test_branches.py, test_search.py; timing of titles
against a stand-in model: test_titles.py."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from tests.support.server import BackgroundStream, LiveServer, SignedClient


def _send(client: SignedClient, **body: Any) -> dict[str, Any]:
    """POST /api/chat with this body; the start event's data, after the reply ended."""
    body.setdefault("options", {"max_tokens": 4, "seed": 1, "temperature": 0})
    events = BackgroundStream(client, body).join()
    assert events and events[0][0] == "start", events
    assert events[-1][0] == "done", events
    return events[0][1]


def _refused(client: SignedClient, body: dict[str, Any]) -> dict[str, Any]:
    response = client.post("/api/chat", body)
    assert response.status_code == 400, response.text
    return response.json()["error"]


def _patch(client: SignedClient, conversation_id: str, body: dict[str, Any]) -> Any:
    return client.request("PATCH", f"/api/history/{conversation_id}", json_body=body)


@pytest.fixture(scope="module")
def second_device(shared_server: LiveServer) -> SignedClient:
    return shared_server.pair(name="second device")


def test_regenerate_and_edit_make_the_right_tree_and_every_device_follows_the_branch(
        shared_client: SignedClient, second_device: SignedClient) -> None:
    first = _send(shared_client, message="Say hi")
    conversation, q1, a1 = first["conversation_id"], first["user_message_id"], first["assistant_message_id"]
    again = _send(shared_client, conversation_id=conversation, regenerate_of=a1)
    assert again["user_message_id"] == q1 and again["regenerate_of"] == a1
    a1b = again["assistant_message_id"]
    edited = _send(shared_client, conversation_id=conversation, message="Say hello", parent_id=None)
    q1b, a1c = edited["user_message_id"], edited["assistant_message_id"]
    assert edited["user_parent_id"] is None
    follow = _send(shared_client, conversation_id=conversation, message="Once more")  # no parent: current branch
    assert follow["user_parent_id"] == a1c

    got = shared_client.get(f"/api/history/{conversation}").json()
    parents = {m["id"]: m["parent_id"] for m in got["messages"]}
    assert parents == {q1: None, a1: q1, a1b: q1, q1b: None, a1c: q1b,
                       follow["user_message_id"]: a1c, follow["assistant_message_id"]: follow["user_message_id"]}
    assert got["current_leaf"] == follow["assistant_message_id"]

    # Switching to the regenerated reply's branch: this device, after a reload, and the other device see it.
    switched = _patch(shared_client, conversation, {"current_leaf": a1b})
    assert switched.status_code == 200 and switched.json()["current_leaf"] == a1b
    assert shared_client.get(f"/api/history/{conversation}").json()["current_leaf"] == a1b
    assert second_device.get(f"/api/history/{conversation}").json()["current_leaf"] == a1b
    # Choosing the first message of the edited branch shows that branch's newest end.
    assert _patch(second_device, conversation, {"current_leaf": q1b}).json()["current_leaf"] == follow["assistant_message_id"]

    # Refusals, each with its code; nothing is stored for them.
    assert _refused(shared_client, {"conversation_id": conversation, "regenerate_of": q1})["code"] == "regenerate_invalid"
    other = _send(shared_client, message="Another conversation")
    assert _refused(shared_client, {"conversation_id": conversation, "message": "x",
                                    "parent_id": other["user_message_id"]})["code"] == "parent_invalid"
    assert _refused(shared_client, {"conversation_id": conversation})["code"] == "validation_error"
    assert _patch(shared_client, conversation, {"current_leaf": other["user_message_id"]}).json()["error"]["code"] == "parent_invalid"
    assert len(shared_client.get(f"/api/history/{conversation}").json()["messages"]) == 7

    # Deleting the conversation removes every branch.
    assert shared_client.delete(f"/api/history/{conversation}").status_code == 200
    export = shared_client.get("/api/history/export").json()
    stored = {m["id"] for c in export["conversations"] for m in c["messages"]}
    assert not stored & set(parents)
    assert shared_client.post("/api/chat", {"regenerate_of": a1b}).status_code == 400


def test_rename_search_and_delete(shared_client: SignedClient, second_device: SignedClient) -> None:
    start = _send(shared_client, message="Tell me about the quokka of Rottnest")
    conversation = start["conversation_id"]
    renamed = _patch(shared_client, conversation, {"title": "Marsupials"})
    assert renamed.status_code == 200 and renamed.json()["title_source"] == "owner"
    listed = {c["id"]: c["title"] for c in second_device.get("/api/history").json()["conversations"]}
    assert listed[conversation] == "Marsupials"

    found = second_device.post("/api/search", {"q": "quokka"}).json()
    hit = next(r for r in found["results"] if r["conversation_id"] == conversation)
    assert hit["title"] == "Marsupials"
    assert hit["message_id"] in (start["user_message_id"], start["assistant_message_id"])  # the reply may say it too
    assert {hit["snippet"][s:e].lower() for s, e in hit["highlights"]} == {"quokka"}
    assert [r["conversation_id"] for r in second_device.post("/api/search", {"q": "marsup"}).json()["results"]] == [conversation]
    assert shared_client.post("/api/search", {"q": ""}).status_code == 400
    assert shared_client.get("/api/search?q=quokka").status_code == 405  # words never travel in a URL

    shared_client.delete(f"/api/history/{conversation}")
    assert shared_client.post("/api/search", {"q": "quokka"}).json()["results"] == []


def test_what_the_cli_imports_is_searchable_at_once(shared_server: LiveServer, shared_client: SignedClient,
                                                   tmp_path: Path) -> None:
    """The CLI imports through its own connection while the server runs: no restart is needed."""
    now = time.time()
    export = {"format": "privchat-export", "version": 1, "exported_at": now, "conversations": [{
        "id": "cli-imported", "title": "Imported by the CLI", "created_at": now, "updated_at": now,
        "messages": [{"id": "cli-imported-1", "role": "user", "content": "a wombat digs burrows",
                      "status": "complete", "created_at": now}]}]}
    assert shared_client.post("/api/search", {"q": "wombat"}).json()["results"] == []
    (tmp_path / "export.json").write_text(json.dumps(export))
    shared_server.cli("history", "import", str(tmp_path / "export.json"))
    found = shared_client.post("/api/search", {"q": "wombat"}).json()["results"]
    assert [(r["conversation_id"], r["message_id"]) for r in found] == [("cli-imported", "cli-imported-1")]


def test_a_title_never_holds_up_the_next_request(shared_client: SignedClient) -> None:
    # A question SmolLM2 titles ("Baking sourdough at home"); a title that reads like the reply would be
    # declined (llm/titles.py title_fits) and the first message would stay the title.
    first = _send(shared_client, message="How do I bake sourdough bread at home?")
    conversation = first["conversation_id"]
    # The title starts as soon as the reply ends; ask again at once.
    asked = time.perf_counter()
    stream = BackgroundStream(shared_client, {"conversation_id": conversation, "message": "And with rye flour?",
                                              "options": {"max_tokens": 4}})
    while not stream.events and not stream.finished.is_set():
        time.sleep(0.002)
    start_ms = (time.perf_counter() - asked) * 1000
    events = stream.join()
    assert events[0][0] == "start" and events[-1][0] == "done"
    assert start_ms < 500, start_ms  # signing, sealing and two inserts; the model is never waited for
    deadline = time.time() + 30
    while time.time() < deadline:
        got = shared_client.get(f"/api/history/{conversation}").json()
        if got["title_source"] == "model":
            break
        time.sleep(0.2)
    assert got["title_source"] == "model" and got["title"] and len(got["title"]) <= 60, got["title"]
