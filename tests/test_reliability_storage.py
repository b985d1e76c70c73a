"""Storage under stress: a full disk, a read-only data folder, and the CLI writing while a reply streams.

Disk full is simulated with RLIMIT_FSIZE set on the running server process (``prlimit``): CPython
ignores SIGXFSZ, so a write past the limit fails with EFBIG, which SQLite reports as a disk I/O or
disk-full error, exactly where a full disk would stop it. Only the soft limit is lowered, so the
test can lift it again without CAP_SYS_RESOURCE.
"""

from __future__ import annotations

import hashlib
import json
import resource
import shutil
import sqlite3
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.server import PRIVCHAT, REPO, BackgroundStream, LiveServer, SignedClient, parse_sse
from tests.support.signing import TestDevice

LONG_PROMPT = "Write a long story about a lighthouse keeper and the sea, with many details."
STORAGE_CODES = {"storage_full", "storage_unavailable"}


def database_path(server: LiveServer) -> Path:
    return server.folder / "data" / "privchat.sqlite3"


def integrity(server: LiveServer) -> str:
    with sqlite3.connect(database_path(server), timeout=10) as conn:
        return conn.execute("PRAGMA integrity_check").fetchone()[0]


def seed_history(client: SignedClient, count: int = 12) -> None:
    now = time.time()
    conversations = [{
        "id": f"seed-{i}", "title": f"seeded {i}", "created_at": now + i, "updated_at": now + i,
        "messages": [
            {"id": f"seed-{i}-q", "role": "user", "content": f"question {i} " * 40, "status": "complete", "created_at": now + i},
            {"id": f"seed-{i}-a", "role": "assistant", "content": f"answer {i} " * 80, "status": "complete", "created_at": now + i},
        ]} for i in range(count)]
    response = client.post("/api/history/import", {"format": "privchat-export", "version": 1, "exported_at": now,
                                                    "conversations": conversations})
    assert response.status_code == 200, response.text


def stored_conversations(client: SignedClient) -> list[dict[str, Any]]:
    export = client.get("/api/history/export?format=json")
    assert export.status_code == 200, export.text
    return export.json()["conversations"]


def limit_file_size(server: LiveServer) -> None:
    """Let the server's files grow no further than the largest one is now: the next growth fails."""
    files = [p for p in (server.folder / "data").iterdir() if p.is_file()]
    limit = max(p.stat().st_size for p in files) + 1
    _, hard = resource.prlimit(server.process.pid, resource.RLIMIT_FSIZE)
    resource.prlimit(server.process.pid, resource.RLIMIT_FSIZE, (limit, hard))


def lift_file_size_limit(server: LiveServer) -> None:
    _, hard = resource.prlimit(server.process.pid, resource.RLIMIT_FSIZE)
    resource.prlimit(server.process.pid, resource.RLIMIT_FSIZE, (hard, hard))


def assert_storage_error(response: httpx.Response) -> None:
    assert response.status_code in (503, 507), (response.status_code, response.text)
    error = response.json()["error"]
    assert error["code"] in STORAGE_CODES, error
    assert len(error["message"].split()) >= 6, error


def test_disk_full_gives_a_clear_error_and_loses_nothing(server_factory) -> None:
    server = server_factory({"model": {"enabled": False}}, name="full")
    client = server.pair()
    seed_history(client)
    assert client.put("/api/settings", {"system_prompt": "before the disk filled"}).status_code == 200
    before = stored_conversations(client)
    assert len(before) == 12

    limit_file_size(server)
    refused = None
    for attempt in range(60):  # each signed request writes (nonce, settings): the WAL must hit the limit soon
        response = client.put("/api/settings", {"system_prompt": f"attempt {attempt} " * 50})
        if response.status_code != 200:
            refused = response
            break
    assert refused is not None, "no write failed under the file-size limit: the test did not fill the disk"
    assert_storage_error(refused)
    assert "Retry-After" in refused.headers
    # Every other signed route fails the same clean way (each one records its nonce), and nothing is 500.
    for method, path, body in (("GET", "/api/history", None), ("POST", "/api/history/import",
                               {"format": "privchat-export", "version": 1, "exported_at": time.time(), "conversations": []}),
                               ("DELETE", "/api/history/seed-0", None)):
        assert_storage_error(client.request(method, path, json_body=body))
    assert server.health()["status"] == "ok"  # public, read-only: still answers
    assert server.process.poll() is None
    assert "storage failure" in server.log() and "unhandled" not in server.log()

    # Space comes back: the same process writes again without a restart.
    lift_file_size_limit(server)
    assert client.put("/api/settings", {"temperature": 0.25}).status_code == 200
    assert client.get("/api/settings").json()["system_prompt"] == "before the disk filled"
    assert stored_conversations(client) == before

    assert server.stop() == 0
    assert integrity(server) == "ok"
    server.start()
    assert stored_conversations(client) == before
    assert client.get("/api/settings").json()["temperature"] == 0.25
    assert integrity(server) == "ok"


def test_disk_full_mid_reply_ends_the_stream_with_storage_failed(server_factory) -> None:
    server = server_factory(name="full-stream")
    client = server.pair()
    seed_history(client, 3)
    before = stored_conversations(client)
    response = client.request("POST", "/api/chat", json_body={"message": LONG_PROMPT, "options": {"max_tokens": 12, "temperature": 0}},
                              stream=True)
    events: list[tuple[str, Any]] = []
    try:
        assert response.status_code == 200
        for event in parse_sse(response.iter_text()):
            events.append(event)
            if event[0] == "start":
                limit_file_size(server)  # the user message and the empty reply are stored; nothing more fits
            if event[0] in ("done", "error"):
                break
    finally:
        response.close()
    start = events[0][1]
    assert events[-1] == ("error", {"code": "storage_failed", "message": events[-1][1]["message"]}), events[-3:]
    assert "could not be saved" in events[-1][1]["message"]
    assert server.process.poll() is None

    lift_file_size_limit(server)
    assert server.stop() == 0
    server.start()
    assert integrity(server) == "ok"
    conversation = client.get(f"/api/history/{start['conversation_id']}").json()
    by_id = {m["id"]: m for m in conversation["messages"]}
    assert by_id[start["user_message_id"]]["content"] == LONG_PROMPT
    assert by_id[start["assistant_message_id"]]["status"] == "interrupted"
    assert [c for c in stored_conversations(client) if c["id"].startswith("seed-")] == before


def _mounts_work(folder: Path) -> bool:
    if shutil.which("unshare") is None:
        return False
    folder.mkdir(parents=True, exist_ok=True)
    probe = subprocess.run(["unshare", "-m", "sh", "-c",
                            f'mount --bind "{folder}" "{folder}" && mount -o remount,bind,ro "{folder}" && ! touch "{folder}/x"'],
                           capture_output=True, timeout=20)
    return probe.returncode == 0 and not (folder / "x").exists()


def test_a_read_only_data_folder_stops_start_up_with_a_sentence_and_changes_nothing(server_factory, tmp_path: Path) -> None:
    """As root, chmod cannot make the database read-only; a read-only bind mount in a private mount
    namespace (only the server process sees it) can. Without mount namespaces, the read-only write
    path is the same error handler the disk-full tests cover (storage_unavailable), so it is skipped."""
    if not _mounts_work(tmp_path / "probe"):
        pytest.skip("no mount namespaces here (unshare -m / bind mounts refused); the refused-write path is covered by the disk-full tests")
    server = server_factory({"model": {"enabled": False}}, name="readonly")
    client = server.pair()
    seed_history(client, 4)
    before = stored_conversations(client)
    assert server.stop() == 0
    data = server.folder / "data"
    digest = hashlib.sha256(database_path(server).read_bytes()).hexdigest()
    files = sorted(p.name for p in data.iterdir())

    script = f'mount --bind "{data}" "{data}" && mount -o remount,bind,ro "{data}" && exec "$0" "$@"'
    result = subprocess.run(["unshare", "-m", "sh", "-c", script, *PRIVCHAT, "--config", str(server.config_path), "serve"],
                            cwd=REPO, capture_output=True, text=True, timeout=60)
    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    assert "cannot open the database" in output and "read-only" in output, output
    assert "Traceback" not in output, output
    with pytest.raises(httpx.HTTPError):
        httpx.get(server.url + "/api/health", timeout=2)  # it never listened
    assert hashlib.sha256(database_path(server).read_bytes()).hexdigest() == digest
    assert sorted(p.name for p in data.iterdir()) == files

    server.start()  # writable again: everything is there
    assert stored_conversations(client) == before
    assert integrity(server) == "ok"


def test_the_cli_works_while_a_reply_streams(server_factory) -> None:
    server = server_factory(name="cli-busy")
    client = server.pair()
    seed_history(client, 3)
    reply = BackgroundStream(client, {"message": LONG_PROMPT, "options": {"max_tokens": 1000, "temperature": 0}})
    events = reply.events
    assert reply.streaming.wait(60) and events and events[0][0] == "start", events[-3:]
    outputs: list[str] = []

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        result = server.cli(*args, check=False, timeout=60)
        outputs.append(result.stdout + result.stderr)
        assert result.returncode == 0, (args, result.stdout, result.stderr)
        return result

    second = TestDevice(name="second")
    code = json.loads(cli("pair", "--json").stdout)["code"]
    assert SignedClient(server.url, second).register(code, "second").status_code == 201
    revoked = cli("devices", "revoke", second.device_id, "--json")
    assert second.device_id in revoked.stdout
    export = json.loads(cli("history", "export", "--format", "json").stdout)
    assert {"seed-0", "seed-1", "seed-2"} <= {c["id"] for c in export["conversations"]}
    cli("devices", "list", "--json")
    assert not any("database is locked" in out.lower() for out in outputs), outputs
    assert SignedClient(server.url, second).get("/api/auth/device").json()["error"]["code"] == "device_revoked"

    # Every CLI call ran while the reply was still being written; now end it and check it is whole.
    assert not any(kind in ("done", "error") for kind, _ in events), "the reply ended before the CLI calls finished"
    reply_id = events[0][1]["assistant_message_id"]
    assert client.post(f"/api/chat/{reply_id}/cancel").json() == {"cancelled": True}
    reply.join()
    assert reply.finished.is_set()
    assert events[-1][0] == "done", events[-3:]
    text = "".join(data["text"] for kind, data in events if kind == "token")
    stored = client.get(f"/api/history/{events[0][1]['conversation_id']}").json()["messages"][-1]
    assert stored["status"] == "cancelled" and stored["content"] == text and text
    assert "database is locked" not in server.log()
    assert integrity(server) == "ok"
