"""Streaming chat with the real SmolLM2 model through a live server."""

from __future__ import annotations

import json
import statistics
import threading
import time
from typing import Any

import httpx

from tests.support.server import BackgroundStream, LiveServer, SignedClient, parse_sse

LONG_PROMPT = "Write a long story about a lighthouse keeper and the sea, with many details."


def test_a_reply_streams_as_several_tokens_and_ends_with_done(shared_client: SignedClient) -> None:
    events = shared_client.chat("Say hello in one short sentence.", temperature=0)
    kinds = [kind for kind, _ in events if kind != "ping"]
    assert kinds[0] == "start" and kinds[-1] == "done"
    tokens = [data["text"] for kind, data in events if kind == "token"]
    assert len(tokens) >= 3
    done = events[-1][1]
    assert done["finish_reason"] in ("stop", "length")
    assert done["usage"]["completion_tokens"] >= len(tokens) - 1
    assert done["usage"]["prompt_tokens"] > 0
    assert done["timings"]["ttft_ms"] > 0 and done["timings"]["tokens_per_second"] > 0
    start = events[0][1]
    stored = shared_client.get(f"/api/history/{start['conversation_id']}").json()
    assert [m["role"] for m in stored["messages"]] == ["user", "assistant"]
    assert stored["messages"][1]["content"] == "".join(tokens)
    assert stored["messages"][1]["status"] == "complete"
    assert stored["title"] == "Say hello in one short sentence."


def test_stream_headers(shared_client: SignedClient) -> None:
    response = shared_client.request("POST", "/api/chat", json_body={"message": "Hi", "options": {"max_tokens": 4}}, stream=True)
    try:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        assert response.headers["cache-control"] == "no-cache, no-transform"
        assert "content-length" not in response.headers
        list(response.iter_text())
    finally:
        response.close()


def test_a_second_turn_continues_the_conversation(shared_client: SignedClient) -> None:
    first = shared_client.chat("My name is Ada. Remember it.", temperature=0, max_tokens=20)
    conversation = first[0][1]["conversation_id"]
    second = shared_client.chat("What is my name?", conversation, temperature=0, max_tokens=20)
    assert second[0][1]["conversation_id"] == conversation
    assert second[-1][1]["usage"]["prompt_tokens"] > first[-1][1]["usage"]["prompt_tokens"]
    stored = shared_client.get(f"/api/history/{conversation}").json()
    assert [m["role"] for m in stored["messages"]] == ["user", "assistant", "user", "assistant"]


def test_cancel_stops_generation_and_keeps_the_partial_reply(shared_client: SignedClient) -> None:
    response = shared_client.request("POST", "/api/chat", json_body={"message": LONG_PROMPT, "options": {"max_tokens": 400, "temperature": 0}}, stream=True)
    events = []
    cancelled_at: tuple[int, float] | None = None
    try:
        for event in parse_sse(response.iter_text()):
            events.append(event)
            tokens = [e for e in events if e[0] == "token"]
            if len(tokens) >= 5 and cancelled_at is None:
                reply_id = events[0][1]["assistant_message_id"]
                cancel = shared_client.post(f"/api/chat/{reply_id}/cancel")
                assert cancel.status_code == 200 and cancel.json() == {"cancelled": True}
                cancelled_at = (len(tokens), time.perf_counter())
            if event[0] in ("done", "error"):
                break
    finally:
        response.close()
    ended = time.perf_counter()
    done = events[-1]
    assert done[0] == "done" and done[1]["finish_reason"] == "cancelled"
    assert cancelled_at is not None
    tokens = [data["text"] for kind, data in events if kind == "token"]
    # Uncancelled, this reply runs for hundreds of tokens; it must end right after the cancel
    # (what arrives after it is the batching window plus a token or two of decoding).
    assert ended - cancelled_at[1] < 1.0
    assert len(tokens) - cancelled_at[0] <= 12, "decoding went on after cancel"
    assert done[1]["usage"]["completion_tokens"] < 100
    stored = shared_client.get(f"/api/history/{events[0][1]['conversation_id']}").json()["messages"][-1]
    assert stored["status"] == "cancelled"
    assert stored["content"] == "".join(tokens) and stored["content"]


def test_cancel_of_an_unknown_reply_is_404(shared_client: SignedClient) -> None:
    response = shared_client.post("/api/chat/no-such-reply/cancel")
    assert response.status_code == 404 and response.json()["error"]["code"] == "not_found"


def test_a_client_that_disconnects_finds_the_whole_reply_later(shared_client: SignedClient) -> None:
    response = shared_client.request("POST", "/api/chat", json_body={"message": LONG_PROMPT, "options": {"max_tokens": 120, "temperature": 0}}, stream=True)
    start = None
    seen = 0
    for event in parse_sse(response.iter_text()):
        if event[0] == "start":
            start = event[1]
        if event[0] == "token":
            seen += 1
            if seen == 3:
                break
    response.close()  # the phone lost its connection
    assert start is not None
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        message = shared_client.get(f"/api/history/{start['conversation_id']}").json()["messages"][-1]
        if message["status"] != "streaming":
            break
        time.sleep(0.2)
    assert message["status"] == "complete"
    assert message["completion_tokens"] > seen
    assert len(message["content"]) > 20


def test_health_answers_quickly_while_a_reply_streams(shared_server: LiveServer, shared_client: SignedClient) -> None:
    latencies: list[float] = []
    reply = BackgroundStream(shared_client, {"message": LONG_PROMPT, "options": {"max_tokens": 200}})
    assert reply.streaming.wait(30)
    with httpx.Client(base_url=shared_server.url) as client:
        while not reply.finished.is_set() and len(latencies) < 40:
            started = time.perf_counter()
            assert client.get("/api/health").status_code == 200
            latencies.append((time.perf_counter() - started) * 1000)
            time.sleep(0.02)
    reply.join()
    assert len(latencies) >= 5
    assert statistics.median(latencies) < 100, latencies
    assert max(latencies) < 250, latencies


def test_a_long_history_never_fails_a_request(shared_client: SignedClient) -> None:
    """Import a conversation far larger than the context window, then chat in it."""
    now = time.time()
    conversation_id = "long-history-test"
    messages = []
    for i in range(120):
        role = "user" if i % 2 == 0 else "assistant"
        messages.append({"id": f"long-{i}", "role": role, "content": f"Turn {i}: " + "lorem ipsum dolor sit amet " * 20,
                         "status": "complete", "created_at": now + i, "completed_at": now + i})
    export = {"format": "privchat-export", "version": 1, "exported_at": now,
              "conversations": [{"id": conversation_id, "title": "long", "created_at": now, "updated_at": now, "messages": messages}]}
    imported = shared_client.post("/api/history/import", export)
    assert imported.status_code == 200, imported.text
    events = shared_client.chat("Summarise our talk in one line. " + "Really. " * 2000, conversation_id, max_tokens=16)
    done = events[-1]
    assert done[0] == "done", events[-3:]
    assert done[1]["dropped_messages"] > 0
    assert done[1]["usage"]["prompt_tokens"] <= 2048
    # The message itself (about 4,000 tokens) did not fit either: the reply says its start was cut.
    assert done[1]["message_cut"] is True
    events = shared_client.chat("And in one word?", conversation_id, max_tokens=4)
    assert events[-1][0] == "done" and events[-1][1]["message_cut"] is False


def test_chat_into_a_missing_conversation_is_404(shared_client: SignedClient) -> None:
    response = shared_client.post("/api/chat", {"message": "hi", "conversation_id": "missing-conversation"})
    assert response.status_code == 404 and response.json()["error"]["code"] == "not_found"


def test_bad_chat_bodies_are_400_with_the_error_shape(shared_client: SignedClient) -> None:
    for body in ({"message": ""}, {"message": 5}, {"mesage": "typo"}, {"message": "x", "options": {"temperature": 9}}):
        response = shared_client.post("/api/chat", body)
        assert response.status_code == 400, body
        assert response.json()["error"]["code"] == "validation_error"
    response = shared_client.request("POST", "/api/chat", body=b"{not json", headers={"Content-Type": "application/json"})
    assert response.status_code == 400
    assert response.json()["error"]["code"] in ("invalid_json", "validation_error")


def test_an_oversized_body_is_413(shared_client: SignedClient) -> None:
    body = json.dumps({"message": "x" * 1_100_000}).encode()
    response = shared_client.request("POST", "/api/chat", body=body, headers={"Content-Type": "application/json"})
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "payload_too_large"


def test_a_waiting_stream_gets_empty_frames(server_factory) -> None:
    """A request queued behind a long reply gets empty frames on the clock while it waits (support/e2e.py
    shows each as a ping), then its own reply."""
    server = server_factory(name="pings")
    client = server.pair()
    first = client.request("POST", "/api/chat", json_body={"message": LONG_PROMPT, "options": {"max_tokens": 300}}, stream=True)
    reader = parse_sse(first.iter_text())
    assert next(reader)[0] == "start"
    try:
        events = client.chat("Say hi.", max_tokens=4)
    finally:
        first.close()
    kinds = [kind for kind, _ in events]
    assert "ping" in kinds[: kinds.index("token")] if "token" in kinds else "ping" in kinds
    assert kinds[-1] == "done"


def test_revoking_a_device_ends_its_open_stream_within_a_second(shared_server: LiveServer) -> None:
    """A lost phone revoked mid-reply stops reading at once, not only at its next request: its stream
    ends with a sealed `error` event `device_revoked` within 1 s of the revocation. The control: a
    second device watching the same reply reads on to `done`, and the reply is stored whole."""
    lost, kept = shared_server.pair(name="lost phone"), shared_server.pair(name="laptop")
    watching = BackgroundStream(lost, {"message": LONG_PROMPT, "options": {"max_tokens": 400, "temperature": 0}})
    assert watching.streaming.wait(60), watching.events
    reply_id = watching.events[0][1]["assistant_message_id"]
    other: list[tuple[str, Any]] = []
    other_tokens = threading.Event()

    def watch() -> None:
        with kept.request("GET", f"/api/chat/{reply_id}/stream", stream=True) as response:
            for event in parse_sse(response.iter_text()):
                other.append(event)
                if event[0] == "token":
                    other_tokens.set()

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    assert other_tokens.wait(60), other
    # Revoked from the owner's other device (the page's Devices panel): the moment is its answer's.
    assert kept.delete(f"/api/devices/{lost.device.device_id}").status_code == 200
    revoked_at = time.monotonic()
    assert watching.finished.wait(30), watching.events
    ended_after = time.monotonic() - revoked_at
    last = watching.events[-1]
    assert last[0] == "error" and last[1]["code"] == "device_revoked", watching.events[-3:]
    assert ended_after <= 1.0, ended_after
    watcher.join(120)
    assert other[-1][0] == "done", other[-3:]  # the control: the reply itself went on
    stored = kept.get(f"/api/history/{watching.events[0][1]['conversation_id']}").json()["messages"][-1]
    assert stored["status"] == "complete" and stored["content"] == "".join(d["text"] for k, d in other if k == "token")
