"""Upstream models: privchat in front of a real ``python -m llama_cpp.server``, and of broken servers.

The good cases run against llama-cpp-python's own OpenAI-compatible server with the default model
(started here on a loopback port); the failures against small fakes (tests/support/upstreams.py).
Every failure must end the reply with a coded error naming the server, quickly, never a hang, and
the owner's message and what was written must stay saved.
"""

from __future__ import annotations

import socket
import time
from typing import Any, Iterator

import httpx
import pytest

from privchat.llm.model_files import default_model_path
from tests.support.server import LiveServer, SignedClient, parse_sse, write_config
from tests.support.upstreams import SMALL_CONTEXT, FakeUpstream, LlamaCppServer

pytestmark = pytest.mark.model

API_KEY = "upstream-secret-key"


@pytest.fixture(scope="module")
def upstreams() -> Iterator[dict[str, Any]]:
    model = default_model_path()
    real = LlamaCppServer(model, api_key=API_KEY, threads=1)
    victim = LlamaCppServer(model, threads=1)
    fake = FakeUpstream()
    try:
        yield {"real": real.wait(), "victim": victim.wait(), "fake": fake}
    finally:
        real.stop()
        victim.stop()
        fake.stop()


@pytest.fixture(scope="module")
def server(upstreams: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    folder = tmp_path_factory.mktemp("upstream")
    key_file = folder / "upstream.key"
    key_file.write_text(API_KEY + "\n")
    fake: FakeUpstream = upstreams["fake"]
    closed = socket.socket()  # bound, never listening: connections to it are refused
    closed.bind(("127.0.0.1", 0))

    def openai(name: str, base_url: str, **more: Any) -> dict[str, Any]:
        return {"name": name, "engine": "openai", "base_url": base_url, "first_token_timeout_seconds": 20, **more}

    models = [
        openai("real", upstreams["real"].base_url, model="smollm2", api_key_file=str(key_file)),
        openai("victim", upstreams["victim"].base_url, model="smollm2"),
        openai("slow", fake.url("slow"), parallel=2),
        openai("broken", fake.url("error500")),
        openai("garbage", fake.url("garbage")),
        openai("silent", fake.url("silent"), first_token_timeout_seconds=1),
        openai("cut", fake.url("cut")),
        openai("small", fake.url("small")),
        openai("empty", fake.url("empty")),
        openai("down", f"http://127.0.0.1:{closed.getsockname()[1]}/v1", connect_timeout_seconds=1),
        {"name": "local", "engine": "embedded", "n_threads": 1},
    ]
    live = LiveServer(folder, write_config(folder, {"models": {"list": models, "default": "real"},
                                                    "model": {"queue_size": 0}})).start()
    yield live
    live.stop()
    closed.close()


@pytest.fixture(scope="module")
def client(server: LiveServer) -> SignedClient:
    return server.pair()


def chat(client: SignedClient, message: str, model: str | None = None, **options: Any) -> list[tuple[str, Any]]:
    body: dict[str, Any] = {"message": message, "options": {"max_tokens": 24, "temperature": 0, **options}}
    if model:
        body["model"] = model
    response = client.request("POST", "/api/chat", json_body=body, stream=True)
    try:
        assert response.status_code == 200, (response.read(), response.status_code)
        return [e for e in parse_sse(response.iter_text()) if e[0] != "ping"]
    finally:
        response.close()


def stored_reply(client: SignedClient, conversation_id: str, *, until: str | None = None, timeout: float = 30) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        messages = client.get(f"/api/history/{conversation_id}").json()["messages"]
        reply = [m for m in messages if m["role"] == "assistant"][-1]
        if until is None or reply["status"] == until or time.monotonic() > deadline:
            return {"messages": messages, "reply": reply}
        time.sleep(0.2)


def test_models_lists_every_model_with_its_state(client: SignedClient) -> None:
    answer = client.get("/api/models").json()
    assert answer["default"] == "real"
    states = {m["name"]: m for m in answer["models"]}
    assert states["real"]["engine"] == "openai" and states["real"]["state"] == "ready"
    assert states["local"]["engine"] == "embedded" and states["local"]["state"] in ("unloaded", "ready")
    assert states["down"]["state"] == "unreachable"
    assert "is not answering" in states["down"]["error"] and "127.0.0.1" in states["down"]["error"]


def test_a_chat_through_llama_cpp_server_streams_and_records_its_model(client: SignedClient, upstreams: dict[str, Any]) -> None:
    events = chat(client, "Say hello.")
    kinds = [k for k, _ in events]
    assert kinds[0] == "start" and events[0][1]["model"] == "real"
    assert kinds.count("token") >= 2 and kinds[-1] == "done", events
    assert events[-1][1]["status"] == "complete"
    text = "".join(d["text"] for k, d in events if k == "token")
    saved = stored_reply(client, events[0][1]["conversation_id"])
    assert saved["reply"]["content"] == text and saved["reply"]["model"] == "real"
    # The same prompt straight to the upstream gives the same words: privchat relays, it does not rewrite.
    assert text.strip()


def import_long_conversation(client: SignedClient, conversation_id: str) -> list[dict[str, Any]]:
    now = time.time()
    messages = [{"id": f"{conversation_id}-{i}", "role": "user" if i % 2 == 0 else "assistant",
                 "content": f"Turn {i}: " + "the lighthouse keeper watched the grey sea all night " * 12,
                 "status": "complete", "created_at": now + i} for i in range(60)]
    imported = client.post("/api/history/import", {"format": "privchat-export", "version": 1, "exported_at": now,
                                                   "conversations": [{"id": conversation_id, "title": "long", "created_at": now,
                                                                      "updated_at": now, "messages": messages}]})
    assert imported.status_code == 200, imported.text
    return messages


def chat_in(client: SignedClient, conversation_id: str, model: str, question: str) -> list[tuple[str, Any]]:
    response = client.request("POST", "/api/chat", stream=True, json_body={
        "message": question, "conversation_id": conversation_id, "model": model,
        "options": {"max_tokens": 8, "temperature": 0}})
    try:
        assert response.status_code == 200
        return [e for e in parse_sse(response.iter_text()) if e[0] != "ping"]
    finally:
        response.close()


def test_a_conversation_longer_than_llama_cpp_server_s_context_still_gets_replies(
        client: SignedClient, upstreams: dict[str, Any]) -> None:
    """llama_cpp.server here has 2048 tokens; a longer streamed prompt ends its stream before any
    token (the control: the whole history sent straight to it is refused). privchat sends it shorter."""
    messages = import_long_conversation(client, "up-long")
    straight = httpx.post(f"{upstreams['real'].base_url}/chat/completions", timeout=30,
                          headers={"Authorization": f"Bearer {API_KEY}"},
                          json={"model": "smollm2", "max_tokens": 8,
                                "messages": [{"role": m["role"], "content": m["content"]} for m in messages]})
    assert straight.status_code == 400 and "context" in straight.text, straight.text[:300]
    for question in ("What did the keeper watch?", "And in the morning?"):
        events = chat_in(client, "up-long", "real", question)
        assert events[-1][0] == "done", events[-3:]
        assert events[-1][1]["status"] == "complete" and events[-1][1]["dropped_messages"] > 0, events[-1]
    states = {m["name"]: m["state"] for m in client.get("/api/models").json()["models"]}
    assert states["real"] == "ready"  # a prompt too long is not the server failing


def test_a_400_for_the_context_is_answered_with_what_fits_the_size_it_names(
        client: SignedClient, upstreams: dict[str, Any]) -> None:
    fake: FakeUpstream = upstreams["fake"]
    import_long_conversation(client, "small-long")
    before = len(fake.requests)
    events = chat_in(client, "small-long", "small", "What did the keeper watch?")
    assert events[-1][0] == "done" and events[-1][1]["dropped_messages"] > 0, events[-3:]
    sent = [r["body"]["messages"] for r in fake.requests[before:]]
    assert len(sent) == 2 and len(sent[1]) < len(sent[0]) == 62  # system prompt and 61 turns refused, then fitted
    assert [m["role"] for m in sent[1][:2]] == ["system", "user"]
    assert sent[1][-1]["content"] == "What did the keeper watch?"
    assert sum(len(m["content"]) for m in sent[1]) // 4 <= SMALL_CONTEXT


def test_a_server_that_ends_every_stream_before_a_token_fails_as_a_cut_after_a_few_tries(
        client: SignedClient, upstreams: dict[str, Any]) -> None:
    fake: FakeUpstream = upstreams["fake"]
    before = len(fake.requests)
    events = chat(client, "Hello there.", model="empty")
    assert events[-1][0] == "error" and events[-1][1]["code"] == "upstream_cut", events[-3:]
    assert len(fake.requests) - before == 1  # one turn: nothing shorter to try


def test_the_default_model_is_used_when_none_is_named_and_an_unknown_one_is_refused(client: SignedClient) -> None:
    response = client.post("/api/chat", {"message": "hi", "model": "nope"})
    assert response.status_code == 400 and response.json()["error"]["code"] == "model_unknown"
    assert "real" in response.json()["error"]["message"]


def test_the_settings_hold_the_default_model_for_every_device(client: SignedClient, server: LiveServer) -> None:
    """The owner picks the default in the settings: chats that name no model go there, from any
    device, and /api/models reports it; a name the config does not have is refused, nothing saved."""
    before = client.get("/api/settings").json()
    assert before["default_model"] == "real" and before["defaults"]["default_model"] == "real"
    refused = client.put("/api/settings", {"default_model": "nope"})
    assert refused.status_code == 400 and refused.json()["error"]["code"] == "model_unknown"
    assert client.get("/api/settings").json()["default_model"] == "real"
    other = server.pair(name="second device")
    try:
        assert client.put("/api/settings", {"default_model": "victim"}).json()["default_model"] == "victim"
        assert other.get("/api/models").json()["default"] == "victim"
        events = chat(other, "Say hi.", max_tokens=4)
        assert events[0][1]["model"] == "victim" and events[-1][0] == "done", events
        assert chat(other, "Say hi.", model="real", max_tokens=4)[0][1]["model"] == "real"  # a named model still wins
    finally:
        client.put("/api/settings", {"default_model": "real"})


def test_only_the_upstream_key_is_sent_upstream_never_device_headers(client: SignedClient, upstreams: dict[str, Any]) -> None:
    fake: FakeUpstream = upstreams["fake"]
    fake.requests.clear()
    client.extra_headers["Cf-Access-Jwt-Assertion"] = "a.b.c"
    try:
        events = chat(client, "hello there", model="slow", max_tokens=3)
    finally:
        client.extra_headers.pop("Cf-Access-Jwt-Assertion")
    assert events[-1][0] == "done"
    headers = fake.requests[-1]["headers"]
    for name in ("signature", "signature-input", "cf-access-jwt-assertion", "authorization", "cookie", "origin",
                 "content-digest", "privchat-e2e"):
        assert name not in headers, headers
    assert fake.requests[-1]["body"]["messages"][-1] == {"role": "user", "content": "hello there"}


def test_cancel_closes_the_upstream_request(client: SignedClient, upstreams: dict[str, Any]) -> None:
    fake: FakeUpstream = upstreams["fake"]
    fake.hangups.clear()
    response = client.request("POST", "/api/chat", json_body={"message": "go", "model": "slow"}, stream=True)
    events = parse_sse(response.iter_text())
    start = next(events)[1]
    next(e for e in events if e[0] == "token")
    assert client.post(f"/api/chat/{start['assistant_message_id']}/cancel").json()["cancelled"] is True
    rest = [e for e in events if e[0] != "ping"]
    response.close()
    assert rest[-1][0] == "done" and rest[-1][1]["finish_reason"] == "cancelled"
    assert fake.hangups.wait(5), "the upstream request was not closed"


def test_cancel_against_the_real_server_frees_it_at_once(client: SignedClient) -> None:
    response = client.request("POST", "/api/chat", json_body={"message": "Write a long story.",
                                                              "options": {"max_tokens": 1500}}, stream=True)
    events = parse_sse(response.iter_text())
    start = next(events)[1]
    next(e for e in events if e[0] == "token")
    client.post(f"/api/chat/{start['assistant_message_id']}/cancel")
    assert [e for e in events if e[0] != "ping"][-1][1]["status"] == "cancelled"
    response.close()
    began = time.monotonic()
    events = chat(client, "Say yes.", max_tokens=4)  # llama_cpp.server decodes one request at a time
    assert events[-1][0] == "done" and time.monotonic() - began < 10


def test_a_reply_is_saved_when_the_client_goes_away(client: SignedClient) -> None:
    response = client.request("POST", "/api/chat", json_body={"message": "Count to ten.", "options": {"max_tokens": 40}},
                              stream=True)
    events = parse_sse(response.iter_text())
    start = next(events)[1]
    next(e for e in events if e[0] == "token")
    response.close()  # the phone loses its connection
    saved = stored_reply(client, start["conversation_id"], until="complete")
    assert saved["reply"]["status"] == "complete" and saved["reply"]["content"] and saved["reply"]["model"] == "real"


def test_up_to_parallel_replies_run_at_once_then_503(client: SignedClient, server: LiveServer,
                                                    upstreams: dict[str, Any]) -> None:
    fake: FakeUpstream = upstreams["fake"]
    fake.max_active = 0
    opened = []
    try:
        for _ in range(2):
            response = client.request("POST", "/api/chat", json_body={"message": "go", "model": "slow"}, stream=True)
            assert response.status_code == 200
            events = parse_sse(response.iter_text())
            opened.append((response, next(events)[1]))
            next(e for e in events if e[0] == "token")
        assert fake.max_active == 2
        third = client.post("/api/chat", {"message": "go", "model": "slow"})
        assert third.status_code == 503 and third.json()["error"]["code"] == "queue_full"
        assert int(third.headers["Retry-After"]) > 0
    finally:
        for response, start in opened:
            client.post(f"/api/chat/{start['assistant_message_id']}/cancel")
            response.close()


@pytest.mark.parametrize(("model", "code", "words"), [
    ("broken", "upstream_error", "refused the request (500): out of memory on the GPU"),
    ("garbage", "upstream_bad_reply", "not an OpenAI chat stream"),
    ("silent", "upstream_timeout", "is not answering (nothing for 1 s)"),
    ("cut", "upstream_cut", "before"),
    ("down", "upstream_unreachable", "is not answering"),
])
def test_a_failing_upstream_ends_the_reply_with_a_sentence_and_keeps_what_was_saved(
        client: SignedClient, model: str, code: str, words: str) -> None:
    began = time.monotonic()
    events = chat(client, f"hello {model}", model=model)
    assert time.monotonic() - began < 10
    assert events[0][0] == "start" and events[-1][0] == "error", events
    assert events[-1][1]["code"] == code and words in events[-1][1]["message"], events[-1]
    assert "127.0.0.1" in events[-1][1]["message"]
    saved = stored_reply(client, events[0][1]["conversation_id"])
    assert saved["messages"][0]["content"] == f"hello {model}"
    assert saved["reply"]["status"] == "error" and saved["reply"]["model"] == model
    if model == "cut":
        assert saved["reply"]["content"] == "one two three "


def test_an_upstream_killed_mid_stream(client: SignedClient, upstreams: dict[str, Any]) -> None:
    victim: LlamaCppServer = upstreams["victim"]
    response = client.request("POST", "/api/chat", json_body={"message": "Write a long story.", "model": "victim",
                                                              "options": {"max_tokens": 1500}}, stream=True)
    events = parse_sse(response.iter_text())
    start = next(events)[1]
    first = next(e for e in events if e[0] == "token")
    victim.kill()
    began = time.monotonic()
    rest = [e for e in events if e[0] != "ping"]
    response.close()
    assert time.monotonic() - began < 10
    assert rest[-1][0] == "error" and rest[-1][1]["code"] in ("upstream_cut", "upstream_unreachable"), rest[-1]
    saved = stored_reply(client, start["conversation_id"])
    assert saved["reply"]["status"] == "error"
    assert saved["reply"]["content"].startswith(first[1]["text"])
    states = {m["name"]: m for m in client.get("/api/models").json()["models"]}
    assert states["victim"]["state"] in ("unreachable", "error")


def test_public_health_does_not_say_where_an_upstream_is(server: LiveServer) -> None:
    health = httpx.get(f"{server.url}/api/health").json()
    assert health["model"]["name"] == "real"
    assert "127.0.0.1" not in str(health["model"])
