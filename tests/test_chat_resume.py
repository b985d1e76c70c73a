"""Reattaching to a reply after a dropped connection, watching it from a second device, and the
queued event, with the real model through a live server.

The phone's connection drops mid-reply; the page asks `GET /api/chat/<id>/stream` with the last
event id it has and must get exactly the rest: the tokens it saw plus the tokens it gets are the
stored reply, character for character.
"""

from __future__ import annotations

import time
from typing import Any

from tests.support.server import BackgroundStream, LiveServer, SignedClient, parse_sse_with_ids

LONG_PROMPT = "Write a long story about a lighthouse keeper and the sea, with many details."

Event = tuple[str | None, str, Any]  # (id, event, data)


def read_stream(response: Any, stop_after_tokens: int | None = None) -> list[Event]:
    events: list[Event] = []
    tokens = 0
    try:
        assert response.status_code == 200, response.read() and response.text
        for event in parse_sse_with_ids(response.iter_text()):
            if event[1] == "ping":
                continue
            events.append(event)
            if event[1] == "token":
                tokens += 1
                if stop_after_tokens is not None and tokens >= stop_after_tokens:
                    break
            if event[1] in ("done", "error"):
                break
    finally:
        response.close()
    return events


def reattach(client: SignedClient, reply_id: str, last_event_id: str | None = None, *,
             headers: dict[str, str] | None = None) -> list[Event]:
    """The cursor in the signed query, as the page sends it; ``headers`` are added unsigned."""
    path = f"/api/chat/{reply_id}/stream"
    if last_event_id is not None:
        path += f"?last_event_id={last_event_id}"
    return read_stream(client.request("GET", path, headers=headers or {}, stream=True))


def tokens(events: list[Event]) -> str:
    return "".join(data["text"] for _, kind, data in events if kind == "token")


def stored_reply(client: SignedClient, conversation_id: str, *, wait: bool = True) -> dict[str, Any]:
    deadline = time.monotonic() + 90
    while True:
        message = client.get(f"/api/history/{conversation_id}").json()["messages"][-1]
        if not wait or message["status"] != "streaming" or time.monotonic() > deadline:
            return message
        time.sleep(0.1)


def seq(event: Event) -> int:
    assert event[0] is not None
    return int(event[0].rsplit(":", 1)[1])


def test_every_event_has_an_id_of_its_reply_numbered_from_zero(shared_client: SignedClient) -> None:
    events = read_stream(shared_client.request("POST", "/api/chat", json_body={"message": "Say hi.", "options": {"max_tokens": 8}}, stream=True))
    reply_id = events[0][2]["assistant_message_id"]
    assert [e[0] for e in events] == [f"{reply_id}:{n}" for n in range(len(events))]
    assert events[0][1] == "start" and events[-1][1] == "done"


def test_reattach_mid_reply_gets_exactly_the_missing_events(shared_client: SignedClient) -> None:
    response = shared_client.request("POST", "/api/chat", json_body={"message": LONG_PROMPT, "options": {"max_tokens": 200, "temperature": 0}}, stream=True)
    seen = read_stream(response, stop_after_tokens=5)  # the connection drops here
    start = seen[0][2]
    reply_id = start["assistant_message_id"]
    rest = reattach(shared_client, reply_id, seen[-1][0])
    assert rest[-1][1] == "done", rest[-3:]
    assert seq(rest[0]) == seq(seen[-1]) + 1, "an event was skipped or sent twice at the seam"
    numbers = [seq(e) for e in seen + rest]
    assert numbers == list(range(len(numbers)))
    stored = stored_reply(shared_client, start["conversation_id"])
    assert stored["status"] == "complete"
    assert tokens(seen) + tokens(rest) == stored["content"]
    assert tokens(rest), "the reply had finished before the reattach; make it longer"


def test_reattach_by_query_parameter_as_the_page_does(shared_client: SignedClient) -> None:
    response = shared_client.request("POST", "/api/chat", json_body={"message": LONG_PROMPT, "options": {"max_tokens": 60, "temperature": 0}}, stream=True)
    seen = read_stream(response, stop_after_tokens=3)
    rest = reattach(shared_client, seen[0][2]["assistant_message_id"], seen[-1][0])
    assert seq(rest[0]) == seq(seen[-1]) + 1 and rest[-1][1] == "done"
    assert tokens(seen) + tokens(rest) == stored_reply(shared_client, seen[0][2]["conversation_id"])["content"]


def test_reattach_after_the_end_replays_the_remainder_and_done(shared_client: SignedClient) -> None:
    whole = read_stream(shared_client.request("POST", "/api/chat", json_body={"message": LONG_PROMPT, "options": {"max_tokens": 40, "temperature": 0}}, stream=True))
    reply_id = whole[0][2]["assistant_message_id"]
    stored = stored_reply(shared_client, whole[0][2]["conversation_id"])["content"]
    middle = whole[len(whole) // 2]
    rest = reattach(shared_client, reply_id, middle[0])
    assert rest == whole[len(whole) // 2 + 1:], "the replay differs from what was streamed"
    assert tokens(whole[: len(whole) // 2 + 1]) + tokens(rest) == stored
    assert rest[-1][1] == "done" and rest[-1][2]["finish_reason"] in ("stop", "length")
    # Without a cursor: everything from the start.
    again = reattach(shared_client, reply_id)
    assert again == whole
    # A Last-Event-ID header is not signed: one added on the path does not cut the reply's start.
    # (The same cursor in the signed query did cut it, above: the header is what is ignored.)
    added = reattach(shared_client, reply_id, headers={"Last-Event-ID": middle[0]})
    assert added == whole, "an unsigned Last-Event-ID header shifted the reply"


def test_a_second_device_watches_a_running_reply(shared_server: LiveServer, shared_client: SignedClient) -> None:
    other = shared_server.pair(name="second device")
    reply = BackgroundStream(shared_client, {"message": LONG_PROMPT, "options": {"max_tokens": 150, "temperature": 0}})
    assert reply.streaming.wait(30)
    start = reply.events[0][1]
    watched = reattach(other, start["assistant_message_id"])
    sent = reply.join()
    assert watched[0][1] == "start" and watched[0][2] == start
    assert watched[-1][1] == "done"
    stored = stored_reply(shared_client, start["conversation_id"])["content"]
    assert tokens(watched) == stored == "".join(d["text"] for k, d in sent if k == "token")


def test_unknown_reply_is_404_and_a_foreign_event_id_is_refused(shared_client: SignedClient) -> None:
    response = shared_client.get("/api/chat/no-such-reply/stream")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found" and response.json()["error"]["message"]
    events = read_stream(shared_client.request("POST", "/api/chat", json_body={"message": "Hi", "options": {"max_tokens": 4}}, stream=True))
    reply_id = events[0][2]["assistant_message_id"]
    for bad in ("other-reply:3", f"{reply_id}:x", f"{reply_id}:99999"):
        refused = shared_client.get(f"/api/chat/{reply_id}/stream?last_event_id={bad}")
        assert refused.status_code == 400, (bad, refused.text)
        assert refused.json()["error"]["code"] == "event_id_invalid"
    user_message = events[0][2]["user_message_id"]
    assert shared_client.get(f"/api/chat/{user_message}/stream").status_code == 404


def test_the_stream_route_is_signed(shared_server: LiveServer, shared_client: SignedClient) -> None:
    import httpx
    events = read_stream(shared_client.request("POST", "/api/chat", json_body={"message": "Hi", "options": {"max_tokens": 4}}, stream=True))
    response = httpx.get(f"{shared_server.url}/api/chat/{events[0][2]['assistant_message_id']}/stream")
    assert response.status_code == 401


def test_a_request_behind_another_reply_is_told_its_place(shared_server: LiveServer, shared_client: SignedClient) -> None:
    other = shared_server.pair(name="queued device")
    first = BackgroundStream(shared_client, {"message": LONG_PROMPT, "options": {"max_tokens": 120, "temperature": 0}})
    assert first.streaming.wait(30)
    waiting = read_stream(other.request("POST", "/api/chat", json_body={"message": "Say hi.", "options": {"max_tokens": 8}}, stream=True))
    first.join()
    kinds = [kind for _, kind, _ in waiting]
    assert kinds[0] == "start" and kinds[1] == "queued", kinds
    assert waiting[1][2] == {"position": 1}
    assert kinds.index("queued") < kinds.index("token") and kinds[-1] == "done"
    # The queued event is part of the reply's log: a reattach from the start sees it too.
    again = reattach(other, waiting[0][2]["assistant_message_id"])
    assert [e[1] for e in again] == kinds
    # Time to first token in the done event counts the wait too (queued_ms is the wait alone).
    assert waiting[-1][2]["timings"]["queued_ms"] > 0
