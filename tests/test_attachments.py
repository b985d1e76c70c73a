"""Attachments: documents and images attached to a message, end to end.

The prompt is checked where it leaves privchat: an OpenAI stand-in upstream (tests/support/upstreams.py)
records every request, so a test reads the exact messages the model was sent. The real model
(SmolLM2, embedded) answers one message with a PDF and a text file attached. Storage tests look at
the database and WAL files as bytes, as someone who copies the folder would.
"""

from __future__ import annotations

import base64
import json
import os
import sqlite3
import time
from pathlib import Path
from typing import Any, Iterator

import pytest

from privchat.attachments import image_size
from privchat.storage.db import MIGRATIONS, Database
from privchat.storage.history import HistoryStore
from tests.support.documents import encrypted_pdf, make_pdf, make_png
from tests.support.e2e import OpenedResponse
from tests.support.inprocess import InProcessServer
from tests.support.server import LiveServer, SignedClient, parse_sse, write_config
from tests.support.stores import store_config
from tests.support.upstreams import FakeUpstream

PDF_WORD = "QUOKKA7731"  # only on page 2 of the PDF
TEXT_WORD = "NARWHAL4412"  # only in the text file
PAGES = ["Quarterly notes, page one.", f"Page two. The code word is {PDF_WORD}.", "Page three ends it."]


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def upload(client: SignedClient, name: str, mime: str, data: bytes, **more: Any) -> Any:
    return client.post("/api/attachments", {"name": name, "mime": mime, "data": b64(data), **more})


def chat(client: SignedClient, message: str, **body: Any) -> list[tuple[str, Any]]:
    response = client.request("POST", "/api/chat", json_body={"message": message, **body}, stream=True)
    try:
        if response.status_code != 200:  # a refusal is one sealed JSON answer, not a stream of frames
            response.raw.read()
            refusal = OpenedResponse(response.raw, response.opener, stream=False)
            return [("refused", {"status": response.status_code, **refusal.json()["error"]})]
        return [e for e in parse_sse(response.iter_text()) if e[0] != "ping"]
    finally:
        response.close()


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeUpstream]:
    upstream = FakeUpstream()
    yield upstream
    upstream.stop()


@pytest.fixture(scope="module")
def app(fake: FakeUpstream, tmp_path_factory: pytest.TempPathFactory) -> Iterator[InProcessServer]:
    def openai(name: str, **more: Any) -> dict[str, Any]:
        # "brief": three words a reply; these tests read the prompt the model was given, not what it writes.
        return {"name": name, "engine": "openai", "base_url": fake.url("brief"), "first_token_timeout_seconds": 20, **more}

    models = [openai("texty", n_ctx=2048), openai("seeing", vision=True, n_ctx=8192), openai("roomy", n_ctx=32768)]
    server = InProcessServer(tmp_path_factory.mktemp("attach"), {"models": {"list": models, "default": "texty"},
                                                                 "attachments": {"max_bytes": 300_000}}).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def client(app: InProcessServer) -> SignedClient:
    return app.pair()


def last_prompt(fake: FakeUpstream) -> list[dict[str, Any]]:
    return fake.requests[-1]["body"]["messages"]


def test_models_say_which_can_see(client: SignedClient) -> None:
    models = {m["name"]: m for m in client.get("/api/models").json()["models"]}
    assert models["seeing"]["vision"] is True and models["texty"]["vision"] is False


def test_a_pdf_and_a_text_file_reach_the_prompt(client: SignedClient, fake: FakeUpstream) -> None:
    pdf = upload(client, "notes.pdf", "application/pdf", make_pdf(PAGES))
    assert pdf.status_code == 201, pdf.text
    assert pdf.json()["kind"] == "document" and pdf.json()["pages"] == 3 and pdf.json()["name"] == "notes.pdf"
    text = upload(client, "animals.md", "text/markdown", f"# Animals\n\nThe other code word is {TEXT_WORD}.\n".encode())
    assert text.status_code == 201, text.text
    events = chat(client, "What are the two code words?", attachments=[pdf.json()["id"], text.json()["id"]],
                  model="roomy", options={"max_tokens": 4})
    assert events[-1][0] == "done", events
    prompt = last_prompt(fake)[-1]["content"]
    assert PDF_WORD in prompt and TEXT_WORD in prompt and prompt.rstrip().endswith("What are the two code words?")
    assert "[Attached file: notes.pdf, PDF, 3 pages]" in prompt
    assert all(seen["whole"] for seen in events[-1][1]["attachments_seen"])
    # The message shows its chips: each attachment's name and size, from the server.
    conversation = client.get(f"/api/history/{events[0][1]['conversation_id']}").json()
    user = [m for m in conversation["messages"] if m["role"] == "user"][0]
    assert [(a["name"], a["size"]) for a in user["attachments"]] == [("notes.pdf", pdf.json()["size"]),
                                                                    ("animals.md", text.json()["size"])]
    # ...and the file comes back as it was sent.
    assert base64.b64decode(client.get(f"/api/attachments/{pdf.json()['id']}").json()["data"]) == make_pdf(PAGES)
    # A second message in the conversation still has the documents in its history.
    again = chat(client, "And again?", conversation_id=events[0][1]["conversation_id"], model="roomy", options={"max_tokens": 4})
    assert again[-1][0] == "done" and PDF_WORD in json.dumps(last_prompt(fake))


def test_a_document_that_does_not_fit_is_cut_at_a_page_and_the_reply_says_so(client: SignedClient, fake: FakeUpstream) -> None:
    pages = [f"Page {n}: " + "the harbour master counted the boats again " * 12 for n in range(1, 41)]
    pdf = upload(client, "long.pdf", "application/pdf", make_pdf(pages)).json()
    events = chat(client, "Summarise it.", attachments=[pdf["id"]], model="texty", options={"max_tokens": 256})
    assert events[-1][0] == "done", events
    seen = events[-1][1]["attachments_seen"][0]
    assert seen["pages"] == 40 and 0 < seen["pages_seen"] < 40 and seen["whole"] is False, seen
    prompt = last_prompt(fake)[-1]["content"]
    assert f"only the first {seen['pages_seen']} fit" in prompt
    assert "Page 1:" in prompt and f"Page {seen['pages_seen'] + 1}:" not in prompt
    assert len(prompt.encode()) // 3 < 2048, "the estimate of the prompt fits the model's context"
    stored = client.get(f"/api/history/{events[0][1]['conversation_id']}").json()["messages"]
    assert stored[-1]["attachments_seen"][0]["pages_seen"] == seen["pages_seen"]


def test_an_image_goes_to_a_model_that_can_see_as_an_image_url_part(client: SignedClient, fake: FakeUpstream) -> None:
    image = upload(client, "photo.png", "image/png", make_png(640, 480))
    assert image.status_code == 201 and image.json()["kind"] == "image", image.text
    events = chat(client, "What colour is it?", attachments=[image.json()["id"]], model="seeing", options={"max_tokens": 4})
    assert events[-1][0] == "done", events
    parts = last_prompt(fake)[-1]["content"]
    assert isinstance(parts, list) and parts[0]["type"] == "text" and "What colour is it?" in parts[0]["text"]
    url = parts[1]["image_url"]["url"]
    assert parts[1]["type"] == "image_url" and url.startswith("data:image/png;base64,")
    assert image_size(base64.b64decode(url.split(",", 1)[1])) == ("image/png", 640, 480)


def test_a_model_that_cannot_see_refuses_an_image_with_its_sentence(client: SignedClient, app: InProcessServer) -> None:
    image = upload(client, "photo.png", "image/png", make_png(64, 64)).json()
    before = client.get("/api/history").json()["conversations"]
    events = chat(client, "Look at this.", attachments=[image["id"]], model="texty")
    assert events[0][0] == "refused" and events[0][1]["status"] == 400
    assert events[0][1]["code"] == "image_not_supported"
    assert "texty cannot see images" in events[0][1]["message"] and "photo.png" in events[0][1]["message"]
    assert client.get("/api/history").json()["conversations"] == before, "nothing stored"
    # The image is still pending: the same message to a model that can see takes it.
    assert chat(client, "Look at this.", attachments=[image["id"]], model="seeing", options={"max_tokens": 2})[-1][0] == "done"


def _count(app: InProcessServer, sql: str) -> int:
    async def run() -> int:
        async with app.state.database.conn.execute(sql) as cursor:
            return (await cursor.fetchone())[0]
    return app.run(run())


BAD = {
    "too large": ("big.txt", "text/plain", b"a" * 300_001, 413, "attachment_too_large", "at most"),
    "type not allowed": ("report.docx", "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
                         b"PK\x03\x04 not really", 415, "attachment_type_not_allowed", "PDFs"),
    "audio": ("voice.ogg", "audio/ogg", b"OggS....", 415, "attachment_type_not_allowed", "microphone"),
    "encrypted pdf": ("locked.pdf", "application/pdf", None, 422, "attachment_pdf_encrypted", "password"),
    "corrupt pdf": ("broken.pdf", "application/pdf", b"%PDF-1.4\n1 0 obj << /Type /Catalog /Pages 9 0 R >>\n%%EOF",
                    422, "attachment_pdf_corrupt", "damaged"),
    "pdf without text": ("scan.pdf", "application/pdf", None, 422, "attachment_pdf_no_text", "no text"),
    "binary renamed .txt": ("notes.txt", "text/plain", bytes(range(256)) * 8, 422, "attachment_not_text", "not text"),
    "zip renamed .txt": ("notes.txt", "text/plain", b"PK\x03\x04" + bytes(200), 422, "attachment_not_text", "ZIP"),
    "image that does not decode": ("photo.jpg", "image/jpeg", b"\xff\xd8\xff\xe0 truncated", 422, "attachment_image_invalid",
                                   "does not decode"),
    "blank text file": ("blank.txt", "text/plain", b"  \n\n \t\n", 422, "attachment_empty", "blank"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_each_bad_input_gets_its_code_and_nothing_is_stored(client: SignedClient, app: InProcessServer, case: str) -> None:
    name, mime, data, status, code, words = BAD[case]
    if case == "encrypted pdf":
        data = encrypted_pdf(["secret page"])
    elif case == "pdf without text":
        data = make_pdf(["", ""])
    before = _count(app, "SELECT COUNT(*) FROM attachments")
    response = upload(client, name, mime, data)
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] == code and words in error["message"] and error["message"].endswith("."), error
    assert name in error["message"]
    assert _count(app, "SELECT COUNT(*) FROM attachments") == before, "nothing half-stored"


def test_data_that_is_not_base64_is_refused(client: SignedClient) -> None:
    response = client.post("/api/attachments", {"name": "a.txt", "mime": "text/plain", "data": "not base64!!"})
    assert response.status_code == 400 and response.json()["error"]["code"] == "attachment_invalid_data"


def test_a_body_over_the_route_limit_is_413_and_a_file_under_it_passes(client: SignedClient) -> None:
    """The route's own limit (attachments.max_bytes, not server.max_body_bytes): a file of about the
    limit arrives; one far over it is refused at the body limit."""
    ok = upload(client, "big.csv", "text/csv", b"a,b\n" * 70_000)  # 280 KB, over server.max_body_bytes' share
    assert ok.status_code == 201, ok.text
    over = upload(client, "huge.csv", "text/csv", b"a,b\n" * 400_000)
    assert over.status_code == 413 and over.json()["error"]["code"] in ("payload_too_large", "attachment_too_large")


def test_a_chat_with_an_unknown_attachment_stores_nothing(client: SignedClient) -> None:
    before = client.get("/api/history").json()["conversations"]
    events = chat(client, "Here it is.", attachments=["no-such-attachment"])
    assert events[0][0] == "refused" and events[0][1]["code"] == "attachment_not_found" and events[0][1]["status"] == 404
    assert client.get("/api/history").json()["conversations"] == before


def test_an_attachment_goes_with_one_message_only(client: SignedClient) -> None:
    doc = upload(client, "once.txt", "text/plain", b"only once").json()
    assert chat(client, "First.", attachments=[doc["id"]], model="roomy", options={"max_tokens": 2})[-1][0] == "done"
    events = chat(client, "Second.", attachments=[doc["id"]], model="roomy")
    assert events[0][1]["code"] == "attachment_taken" and events[0][1]["status"] == 409
    assert client.delete(f"/api/attachments/{doc['id']}").json()["error"]["code"] == "attachment_sent"


def test_attachments_are_found_by_search(client: SignedClient) -> None:
    doc = upload(client, "ledger.txt", "text/plain", b"Entries.\nThe treasurer signed as PELICAN9090 that day.\n").json()
    events = chat(client, "Keep this.", attachments=[doc["id"]], model="roomy", options={"max_tokens": 2})
    results = client.post("/api/search", {"q": "pelican9090"}).json()["results"]
    assert [r["conversation_id"] for r in results] == [events[0][1]["conversation_id"]]
    assert "PELICAN9090" in results[0]["snippet"] and results[0]["message_id"] == events[0][1]["user_message_id"]


# Storage: ciphertext on disk, secure delete, migration, export and import ----------------------------------

def _on_disk(path: Path) -> bytes:
    return b"".join(p.read_bytes() for p in (path, path.with_name(path.name + "-wal")) if p.exists())


def test_attachments_are_ciphertext_on_disk_and_gone_with_their_conversation(tmp_path: Path) -> None:
    """The code word, the file name and the file's bytes are not in the database or WAL file; after
    the conversation is deleted neither is the sealed file (secure_delete and the WAL checkpoint)."""
    import asyncio

    import aiosqlite

    from privchat.storage import db as db_module

    original = aiosqlite.connect

    async def connect_off(*args: Any, **kwargs: Any) -> aiosqlite.Connection:  # a build whose default is off
        conn = await original(*args, **kwargs)
        await conn.execute("PRAGMA secure_delete = OFF")
        return conn

    db_module.aiosqlite.connect = connect_off  # type: ignore[assignment]
    try:
        async def main() -> None:
            config = store_config(tmp_path)
            database = await Database.open(config)
            try:
                history = HistoryStore(database)
                pdf = make_pdf(PAGES)
                from privchat.attachments import check
                checked = check("secret-plans.pdf", "application/pdf", pdf, max_bytes=10**7, max_pages=100)
                kept_conv = await history.create_conversation("kept")
                gone_conv = await history.create_conversation("gone")
                info = await history.attachments.add(name="secret-plans.pdf", kind="document", mime=checked.mime, data=pdf,
                                                     content=checked.content(), pages=checked.page_count)
                kept_info = await history.attachments.add(name="kept.txt", kind="document", mime="text/plain", data=b"stays",
                                                          content=json.dumps({"text": "stays"}), pages=None)
                await history.add_message(gone_conv, "user", "see attached", attachments=[info.id])
                await history.add_message(kept_conv, "user", "this stays", attachments=[kept_info.id])
                on_disk = _on_disk(config.database_path)
                for plain in (PDF_WORD.encode(), b"secret-plans.pdf", pdf[:200]):
                    assert plain not in on_disk, f"{plain[:40]!r} is readable on disk"
                async with database.conn.execute("SELECT data FROM attachments WHERE id = ?", (info.id,)) as cursor:
                    sealed = bytes((await cursor.fetchone())[0])
                assert sealed[-4096:] in on_disk, "control: the scan finds the sealed file before the delete"
                await history.delete_conversation(gone_conv)
                on_disk = _on_disk(config.database_path)
                assert sealed[-4096:] not in on_disk and sealed[-16:] not in on_disk, "the sealed file lingers after delete"
                async with database.conn.execute("SELECT COUNT(*) FROM attachments") as cursor:
                    assert (await cursor.fetchone())[0] == 1
                assert (await history.attachments.get(kept_info.id))[1] == b"stays"
            finally:
                await database.close()

        asyncio.run(main())
    finally:
        db_module.aiosqlite.connect = original  # type: ignore[assignment]


def test_a_sealed_attachment_moved_to_another_message_does_not_open(tmp_path: Path) -> None:
    import asyncio

    from privchat.storage.crypto import CryptoError

    async def main() -> None:
        database = await Database.open(store_config(tmp_path))
        try:
            history = HistoryStore(database)
            conv = await history.create_conversation("c")
            a = await history.attachments.add(name="a.txt", kind="document", mime="text/plain", data=b"a",
                                              content=json.dumps({"text": "a"}), pages=None)
            first = await history.add_message(conv, "user", "one", attachments=[a.id])
            second = await history.add_message(conv, "user", "two")
            await database.write("UPDATE attachments SET message_id = ? WHERE id = ?", (second.id, a.id))
            with pytest.raises(CryptoError):
                await history.attachments.get(a.id)
            await database.write("UPDATE attachments SET message_id = ? WHERE id = ?", (first.id, a.id))
            assert (await history.attachments.get(a.id))[1] == b"a"
        finally:
            await database.close()

    asyncio.run(main())


def test_migration_7_adds_attachments_to_an_older_database(tmp_path: Path) -> None:
    from tests.support.legacy_db import LegacyConversation, LegacyMessage, build_v1_database

    database_path, key_file = tmp_path / "data" / "privchat.sqlite3", tmp_path / "keys" / "privchat.key"
    build_v1_database(database_path, [LegacyConversation("c1", "t", [LegacyMessage("m1", "user", "hello")])], key_file=key_file)

    async def main() -> None:
        from privchat.config import config_from_dict
        database = await Database.open(config_from_dict({"storage": {"data_dir": str(database_path.parent),
                                                                      "key_file": str(key_file)}}))
        await database.close()

    import asyncio
    asyncio.run(main())
    conn = sqlite3.connect(database_path)
    try:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS) >= 7
        assert "attachments_seen" in [r[1] for r in conn.execute("PRAGMA table_info(messages)")]
        assert conn.execute("SELECT COUNT(*) FROM attachments").fetchone()[0] == 0
    finally:
        conn.close()


def test_export_and_import_carry_attachments_and_version_2_files_still_import(
        client: SignedClient, tmp_path_factory: pytest.TempPathFactory) -> None:
    doc = upload(client, "carried.txt", "text/plain", f"carried {TEXT_WORD}\n".encode()).json()
    events = chat(client, "Carry this.", attachments=[doc["id"]], model="roomy", options={"max_tokens": 2})
    exported = client.get("/api/history/export").json()
    assert exported["version"] == 3
    conv = next(c for c in exported["conversations"] if c["id"] == events[0][1]["conversation_id"])
    assert [a["name"] for a in conv["attachments"]] == ["carried.txt"]

    with InProcessServer(tmp_path_factory.mktemp("import")) as other:
        other_client = other.pair()
        result = other_client.post("/api/history/import", exported)
        assert result.status_code == 200, result.text
        again = other_client.post("/api/history/import", exported).json()
        assert again["imported_messages"] == 0
        copied = other_client.get(f"/api/history/{conv['id']}").json()
        user = [m for m in copied["messages"] if m["role"] == "user"][0]
        assert user["attachments"][0]["name"] == "carried.txt"
        assert base64.b64decode(other_client.get(f"/api/attachments/{doc['id']}").json()["data"]) == f"carried {TEXT_WORD}\n".encode()
        hits = other_client.post("/api/search", {"q": TEXT_WORD}).json()["results"]
        assert conv["id"] in [h["conversation_id"] for h in hits]
        # A version 2 file (no attachments) still imports.
        v2 = {"format": "privchat-export", "version": 2, "exported_at": time.time(), "conversations": [{
            "id": "v2conv", "title": "old", "created_at": 1.0, "updated_at": 1.0,
            "messages": [{"id": "v2m", "parent_id": None, "role": "user", "content": "old", "status": "complete",
                          "created_at": 1.0}]}]}
        assert other_client.post("/api/history/import", v2).json()["imported_messages"] == 1
        # An attachment naming a message of no conversation is refused, and nothing of the file is imported.
        bad_conv = json.loads(json.dumps(conv))
        bad_conv["attachments"][0].update(id="fresh-attachment", message_id="not-a-message")
        refused = other_client.post("/api/history/import", {**exported, "conversations": [bad_conv]})
        assert refused.status_code == 400 and "not a message" in refused.json()["error"]["message"], refused.text
        assert other_client.get("/api/attachments/fresh-attachment").status_code == 404


# The real model -------------------------------------------------------------------------------------------

@pytest.mark.model
def test_the_real_model_replies_to_a_message_with_a_pdf_and_a_text_file(server_factory: Any) -> None:
    server: LiveServer = server_factory({"model": {"n_ctx": 2048}})
    client = server.pair()
    pdf = upload(client, "notes.pdf", "application/pdf", make_pdf(PAGES)).json()
    text = upload(client, "animals.txt", "text/plain", f"The other code word is {TEXT_WORD}.\n".encode()).json()
    events = chat(client, "What is the code word on page two?", attachments=[pdf["id"], text["id"]],
                  options={"max_tokens": 24, "temperature": 0})
    kinds = [k for k, _ in events]
    assert kinds[0] == "start" and kinds[-1] == "done" and kinds.count("token") >= 1, events
    done = events[-1][1]
    assert done["status"] == "complete" and all(s["whole"] for s in done["attachments_seen"])
    assert done["usage"]["prompt_tokens"] > 40, "the documents were in the prompt the model read"


@pytest.mark.model
def test_an_embedded_model_with_mmproj_sees_an_image(server_factory: Any) -> None:
    """Runs where a vision GGUF and its projector are given; elsewhere it says what it needs."""
    model, mmproj = os.environ.get("PRIVCHAT_TEST_VISION_GGUF"), os.environ.get("PRIVCHAT_TEST_MMPROJ")
    if not (model and mmproj and Path(model).is_file() and Path(mmproj).is_file()):
        pytest.skip("needs a vision GGUF and its mmproj file: set PRIVCHAT_TEST_VISION_GGUF and PRIVCHAT_TEST_MMPROJ "
                    "(no model hub is reachable here to download one)")
    server: LiveServer = server_factory({"models": {"list": [{"name": "eyes", "engine": "embedded", "path": model,
                                                              "mmproj": mmproj, "n_ctx": 4096}]}})
    client = server.pair()
    assert client.get("/api/models").json()["models"][0]["vision"] is True
    image = upload(client, "red.png", "image/png", make_png(256, 256, (220, 20, 20))).json()
    events = chat(client, "What colour is this image?", attachments=[image["id"]], options={"max_tokens": 16, "temperature": 0})
    assert events[-1][0] == "done" and "".join(d["text"] for k, d in events if k == "token").strip()
