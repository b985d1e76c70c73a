"""History through the API and the CLI: list, read, delete, export, import, clear."""

from __future__ import annotations

import json
import signal
import stat
import time
from pathlib import Path

from tests.support.server import LiveServer, SignedClient, parse_sse


def _conversations(client: SignedClient) -> list[dict]:
    return client.get("/api/history?limit=200").json()["conversations"]


def _full(client: SignedClient) -> list[dict]:
    return [client.get(f"/api/history/{c['id']}").json() for c in _conversations(client)]


def test_export_clear_import_gives_back_the_same_conversations(server_factory) -> None:
    server = server_factory(name="roundtrip")
    client = server.pair()
    first = client.chat("Name three colours.", max_tokens=12)[0][1]["conversation_id"]
    client.chat("And one more?", first, max_tokens=8)
    client.chat("A different topic: what is 2+2?", max_tokens=8)
    before = sorted(_full(client), key=lambda c: c["id"])
    export = client.get("/api/history/export?format=json")
    assert export.status_code == 200
    assert "attachment" in export.headers["content-disposition"] and ".json" in export.headers["content-disposition"]
    document = export.json()
    assert client.delete("/api/history").json() == {"deleted": 2}
    assert _conversations(client) == []
    result = client.post("/api/history/import", document).json()
    assert result == {"imported_conversations": 2, "imported_messages": 6, "skipped": 0}
    after = sorted(_full(client), key=lambda c: c["id"])
    assert after == before
    again = client.post("/api/history/import", document).json()
    assert again == {"imported_conversations": 0, "imported_messages": 0, "skipped": 6}
    assert sorted(_full(client), key=lambda c: c["id"]) == before


def test_an_invalid_import_changes_nothing_and_says_why(shared_client: SignedClient) -> None:
    before = _conversations(shared_client)
    now = time.time()
    good = {"id": "ok-1", "title": "t", "created_at": now, "updated_at": now, "messages": []}
    bad_cases = [
        ({"format": "something-else", "version": 1, "exported_at": now, "conversations": []}, "format"),
        ({"format": "privchat-export", "version": 1, "exported_at": now,
          "conversations": [good, {"id": "bad", "title": "t", "created_at": now, "updated_at": now,
                                    "messages": [{"id": "m", "role": "wizard", "content": "x", "status": "complete", "created_at": now}]}]},
         "role"),
        ({"format": "privchat-export", "version": 1, "exported_at": now, "conversations": [{"id": "x"}]}, "title"),
    ]
    for body, field in bad_cases:
        response = shared_client.post("/api/history/import", body)
        assert response.status_code == 400
        error = response.json()["error"]
        assert error["code"] == "validation_error" and field in error["message"]
    assert _conversations(shared_client) == before


def test_markdown_export(shared_client: SignedClient) -> None:
    shared_client.chat("Markdown export check", max_tokens=4)
    response = shared_client.get("/api/history/export?format=markdown")
    assert response.status_code == 200
    # Sealed like every answer: the edge sees neither the type nor the text; the file name stays outside.
    assert response.sealed and response.headers["content-type"] == "application/privchat-e2e"
    assert b"Markdown export check" not in response.raw_content
    assert response.headers["content-disposition"].endswith('.md"')
    assert "## Markdown export check" in response.text and "**You**" in response.text
    assert shared_client.get("/api/history/export?format=pdf").status_code == 400


def test_pagination_newest_first_and_delete(shared_client: SignedClient) -> None:
    now = time.time()
    conversations = [{"id": f"page-{i}", "title": f"page {i}", "created_at": now + i, "updated_at": now + 1000 + i, "messages": []}
                     for i in range(7)]
    shared_client.post("/api/history/import", {"format": "privchat-export", "version": 1, "exported_at": now, "conversations": conversations})
    seen: list[str] = []
    cursor = None
    while True:
        page = shared_client.get("/api/history?limit=3" + (f"&before={cursor}" if cursor else "")).json()
        seen += [c["id"] for c in page["conversations"]]
        cursor = page["next_before"]
        if not cursor:
            break
    ours = [s for s in seen if s.startswith("page-")]
    assert ours == [f"page-{i}" for i in reversed(range(7))]
    assert len(seen) == len(set(seen))
    assert shared_client.delete("/api/history/page-3").status_code == 200
    assert shared_client.get("/api/history/page-3").status_code == 404
    assert shared_client.delete("/api/history/page-3").status_code == 404
    assert shared_client.get("/api/history?before=garbage").status_code == 400


def test_cli_export_import_clear_while_the_server_runs(server_factory, tmp_path: Path) -> None:
    # Titles off: the model's own title would replace the first message's whenever it is done,
    # before or after the export; this test is about export and import, test_titles.py about titles.
    server = server_factory({"titles": {"enabled": False}}, name="cli")
    client = server.pair()
    client.chat("CLI history check", max_tokens=6)
    out = tmp_path / "export.json"
    server.cli("history", "export", "-o", str(out))
    exported = json.loads(out.read_text())
    assert exported["conversations"][0]["title"] == "CLI history check"
    # The whole history in plain text: readable by its owner only, whatever the umask.
    assert stat.S_IMODE(out.stat().st_mode) == 0o600, oct(out.stat().st_mode)
    # Never written over an existing file: refused with a sentence, the file left as it was.
    before = out.read_bytes()
    again = server.cli("history", "export", "-o", str(out), check=False)
    assert again.returncode != 0 and "already exists" in again.stderr, again.stderr
    assert out.read_bytes() == before
    markdown = server.cli("history", "export", "--format", "markdown").stdout
    assert "CLI history check" in markdown
    refused = server.cli("history", "clear", check=False)
    assert refused.returncode != 0 and "--yes" in refused.stderr
    assert json.loads(server.cli("history", "clear", "--yes", "--json").stdout) == {"deleted": 1}
    assert client.get("/api/history").json()["conversations"] == []
    imported = json.loads(server.cli("history", "import", str(out), "--json").stdout)
    assert imported["imported_conversations"] == 1 and imported["imported_messages"] == 2
    assert json.loads(server.cli("history", "import", str(out), "--json").stdout)["imported_messages"] == 0
    assert client.get("/api/history").json()["conversations"][0]["title"] == "CLI history check"
    broken = tmp_path / "broken.json"
    broken.write_text('{"format": "privchat-export", "version": 2}')
    result = server.cli("history", "import", str(broken), check=False)
    assert result.returncode != 0 and "Nothing was imported" in result.stderr


def test_sigterm_mid_stream_saves_the_partial_reply(server_factory) -> None:
    server = server_factory(name="sigterm")
    client = server.pair()
    response = client.request("POST", "/api/chat", json_body={"message": "Tell a very long story about dragons.",
                                                              "options": {"max_tokens": 1000, "temperature": 0}}, stream=True)
    start = None
    tokens = []
    events = parse_sse(response.iter_text())
    for kind, data in events:
        if kind == "start":
            start = data
        elif kind == "token":
            tokens.append(data["text"])
            if len(tokens) == 5:
                server.process.send_signal(signal.SIGTERM)
                break
    remaining = [event for event in events]
    response.close()
    assert server.process.wait(30) == 0
    assert remaining and remaining[-1][0] == "done" and remaining[-1][1]["finish_reason"] == "interrupted"
    server.start()
    stored = client.get(f"/api/history/{start['conversation_id']}").json()["messages"]
    assert stored[0]["content"] == "Tell a very long story about dragons."
    assert stored[1]["status"] == "interrupted"
    assert stored[1]["content"].startswith("".join(tokens))
