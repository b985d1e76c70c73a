"""The edge cannot read a reply from the sizes and timing of what it carries (docs/E2E.md, v2).

What the recorder here sees is what the edge sees: the sealed bytes of each SSE frame and when it
arrived. The server and this client are on one machine, so the arrival time is the send time plus
the loopback; the edge would add its own jitter on top, which can only blur more.

- Padding: every body is a size class; the checks on the way in refuse anything else.
- Frames: the server's shaper, read back by the client's own reader (tests/support/e2e.py), for
  random event sequences; the sizes follow the documented rule.
- A live reply through the real model: every frame is of a size from the set, on the 100 ms clock.
- The statistic: over a few hundred tokens, Pearson's r between each token's byte length and what
  the recorder sees for it (the size of the frame that carried it, the time since the frame before)
  is within 0.2 of zero, about three standard errors of r for uncorrelated data with n >= 200. A
  constant observation carries no information and counts as r = 0. The negative control runs the
  same attack on the same reply's events framed by identity (each event sealed alone, unpadded,
  as version 1 did): it reads every token's length back exactly, and r is above 0.9.
"""

from __future__ import annotations

import json
import math
import os
import time
from statistics import median
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from privchat.errors import E2E_OPEN_FAILED
from privchat.e2e.frames import FrameShaper, encode_event, frame_size_for
from privchat.e2e.padding import pad, sealed_size, unpad
from privchat.e2e.sealing import ResponseSealer
from privchat.e2e.suite import FRAME_SIZES, FRAME_TICK_SECONDS, TAG_BYTES
from tests.support.e2e import ChunkOpener, FrameReader, SealError, b64url_decode, body_class, sse_blocks
from tests.support.server import SignedClient

LONG_PROMPT = "Write a long story about a lighthouse keeper and the sea, with many details."


# --- padding -------------------------------------------------------------------------------------------

@pytest.mark.parametrize("content, sealed", [
    (0, 1024), (1004, 1024), (1005, 2048), (2028, 2048), (2029, 4096),
    ((1 << 20) - 20, 1 << 20), ((1 << 20) - 19, 2 << 20), ((5 << 20) + 1, 6 << 20),
])
def test_a_body_is_sealed_to_its_size_class(content: int, sealed: int) -> None:
    assert sealed_size(content) == sealed == body_class(content)  # the server's rule and the contract's
    assert len(pad(b"x" * content)) + TAG_BYTES == sealed


@given(st.binary(max_size=5000))
@settings(max_examples=200, deadline=None)
def test_padding_round_trips(content: bytes) -> None:
    assert unpad(pad(content)) == content


@pytest.mark.parametrize("spoil, why", [
    (lambda p: p[:-1] + b"\x01", "a padding byte that is not zero"),
    (lambda p: p + bytes(1024), "padded past its class"),
    (lambda p: (2000).to_bytes(4, "big") + p[4:], "a length longer than the body"),
    (lambda p: (3).to_bytes(4, "big") + p[4:], "a length whose class is not the body's (content cut short)"),
])
def test_a_body_padded_otherwise_is_refused(spoil: Any, why: str) -> None:
    padded = pad(b'{"q":"sea"}')
    with pytest.raises(ValueError):
        unpad(spoil(padded))


def test_the_server_refuses_a_request_padded_otherwise(app_client: SignedClient) -> None:
    """A sealed body that opens but is not padded as the contract says is refused like one that does
    not open. The control: the same body padded right is accepted."""
    from tests.support.e2e import SealedExchange

    body = json.dumps({"q": "sea"}).encode()
    for padded, status in ((pad(body), 200), (pad(body) + bytes(1024), 400), (body, 400)):
        exchange = SealedExchange(app_client.server_key(), "POST", "/api/search", app_client.device.device_id, b"")
        sealed = exchange.context.seal(padded)
        headers = {"Content-Type": "application/privchat-e2e",
                   **app_client.device.sign("POST", "/api/search", sealed, e2e=exchange.header)}
        answer = app_client.http.send(app_client.http.build_request("POST", "/api/search", content=sealed, headers=headers))
        assert answer.status_code == status, answer.text
        if status == 400:  # refused sealed: the context exists before the body is opened
            assert exchange.open_json(answer, answer.content)["error"]["code"] == E2E_OPEN_FAILED.code


def test_answers_and_requests_of_different_lengths_have_one_size(app_client: SignedClient) -> None:
    """A 3- and a 17-character search answer in one size; a 3- and a 60-character chat request are
    sealed to one size (this client pads as the contract says; the page's own requests are measured
    at the edge in test_tunnel_path.py)."""
    from tests.support.e2e import SealedExchange

    sizes = []
    for query in ("sea", "lighthouse keeper"):
        answer = app_client.post("/api/search", {"q": query})
        assert answer.status_code == 200, answer.text
        sizes.append(len(answer.raw_content))
    assert len(set(sizes)) == 1 and sizes[0] == 1024, sizes
    requests = [len(SealedExchange(app_client.server_key(), "POST", "/api/chat", app_client.device.device_id,
                                   json.dumps({"message": m}).encode()).sealed_body) for m in ("Hi!", "x" * 60)]
    assert requests == [1024, 1024], requests


# --- frames --------------------------------------------------------------------------------------------

def shaper_pair() -> tuple[FrameShaper, FrameReader]:
    """The server's shaper and the client's reader over one fresh response secret."""
    secret, enc = os.urandom(16), os.urandom(65)
    sealer = ResponseSealer(secret=secret, enc=enc)
    meta = b'{"status":200,"kid":"k","headers":{}}\n'
    return FrameShaper(sealer, meta), FrameReader(ChunkOpener(secret, enc, sealer.nonce), 200)


def read_frame(reader: FrameReader, sse: bytes) -> list[tuple[Any, str, Any]]:
    (block,) = list(sse_blocks([sse.decode("ascii")]))
    return reader.feed(b64url_decode(block.split("data: ", 1)[1]))


texts = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=400)


@given(tokens=st.lists(texts, max_size=60), per_tick=st.lists(st.integers(0, 20), min_size=1, max_size=30),
       final=st.sampled_from(["done", "error"]))
@settings(max_examples=150, deadline=None)
def test_frames_carry_any_events_in_order_and_end_with_the_final_one(tokens: list[str], per_tick: list[int], final: str) -> None:
    """Events added between ticks in any pattern (none at all in some: empty frames) come out of the
    client's reader whole and in order, every frame of a size from the set, the last one final."""
    shaper, reader = shaper_pair()
    sent = [("r:0", "start", {"conversation_id": "c"})] + [(f"r:{i + 1}", "token", {"text": t}) for i, t in enumerate(tokens)]
    sent.append((f"r:{len(tokens) + 1}", final, {"finish_reason": "stop"}))
    shaper.add(*sent[0])
    waiting, got, tick = sent[1:], [], 0
    while not shaper.finished:
        got += read_frame(reader, shaper.next_frame())
        adding = per_tick[tick % len(per_tick)] or (1 if tick >= len(per_tick) else 0)  # always ends
        for _ in range(adding):
            if waiting:
                shaper.add(*waiting.pop(0))
        tick += 1
    assert got == [(i, e, json.loads(json.dumps(d))) for i, e, d in sent]
    assert reader.finished and {size for size, _k in reader.frames} <= set(FRAME_SIZES)


def test_the_frame_size_is_the_smallest_that_carries_what_waits() -> None:
    assert [frame_size_for(n) for n in (0, 1006, 1007, 4078, 4079, 16366, 10**6)] == [1024, 1024, 4096, 4096, 16384, 16384, 16384]


def test_a_token_split_across_frames_mid_character_reads_whole() -> None:
    shaper, reader = shaper_pair()
    shaper.add("r:0", "token", {"text": "é" * 3000})  # 6,000 bytes of two-byte characters: one 16 KiB frame...
    shaper.add("r:1", "done", {})
    events = read_frame(reader, shaper.next_frame())
    assert events[0][2]["text"] == "é" * 3000 and shaper.finished
    shaper, reader = shaper_pair()
    shaper.add("r:0", "token", {"text": "x" + "é" * 9000})  # ...and 18,001: cut inside a character
    shaper.add("r:1", "done", {})
    frames = [shaper.next_frame()]
    while not shaper.finished:
        frames.append(shaper.next_frame())
    assert len(frames) == 2
    assert read_frame(reader, frames[0]) == []
    with pytest.raises(UnicodeDecodeError):  # the first frame's 16,366 bytes end inside an "é"
        (reader.buffer).decode("utf-8")
    assert read_frame(reader, frames[1])[0][2]["text"] == "x" + "é" * 9000


def test_the_reader_refuses_frames_dropped_replayed_or_cut() -> None:
    def stream() -> tuple[list[bytes], FrameReader]:
        shaper, reader = shaper_pair()
        shaper.add("r:0", "token", {"text": "a" * 20_000})
        shaper.add("r:1", "done", {})
        frames = []
        while not shaper.finished:
            frames.append(shaper.next_frame())
        return frames, reader

    def outcome(spoil: Any) -> str:
        frames, reader = stream()
        try:
            for frame in spoil(frames):
                read_frame(reader, frame)
        except SealError as exc:
            return exc.code
        return "whole" if reader.finished else "e2e_truncated"

    assert outcome(lambda f: f) == "whole"  # the control
    assert outcome(lambda f: f[1:]) == "e2e_event_invalid"  # dropped
    assert outcome(lambda f: [f[0], f[0], f[1]]) == "e2e_event_invalid"  # replayed
    assert outcome(lambda f: f[::-1]) == "e2e_event_invalid"  # reordered
    assert outcome(lambda f: f[:1]) == "e2e_truncated"  # cut


# --- a live reply: what the recorder sees -------------------------------------------------------------

def record_reply(client: SignedClient, message: str, **options: Any) -> tuple[list[tuple[float, bytes]], FrameReader, list[list[Any]]]:
    """Send a message and record its answer as the edge would: each sealed frame with the time it
    arrived. Also opens each frame (the test holds the device's context) to know what it carried."""
    response = client.request("POST", "/api/chat", json_body={"message": message, "options": options}, stream=True)
    assert response.status_code == 200, response.read()
    reader = FrameReader(response.opener, 200)
    frames: list[tuple[float, bytes]] = []
    carried: list[list[Any]] = []
    buffer = ""
    try:
        for chunk in response.raw.iter_raw():
            now = time.monotonic()
            buffer += chunk.decode("ascii")
            while "\n\n" in buffer:
                block, buffer = buffer.split("\n\n", 1)
                sealed = b64url_decode(block.split("data: ", 1)[1])
                frames.append((now, sealed))
                carried.append(reader.feed(sealed))
    finally:
        response.close()
    assert reader.finished
    return frames, reader, carried


def on_clock_share(times: list[float]) -> float:
    """The share of frames that arrived within 40 ms of the 100 ms grid that starts at frame 1."""
    start = times[1]
    near = [abs((t - start) / FRAME_TICK_SECONDS - round((t - start) / FRAME_TICK_SECONDS)) * FRAME_TICK_SECONDS <= 0.04
            for t in times[1:]]
    return sum(near) / len(near)


@pytest.mark.model
def test_two_replies_show_the_edge_frames_of_the_set_on_the_clock(shared_client: SignedClient) -> None:
    short = record_reply(shared_client, "Say hi.", max_tokens=4, temperature=0)
    long = record_reply(shared_client, LONG_PROMPT, max_tokens=80, temperature=0)
    for frames, reader, _carried in (short, long):
        sizes = {len(sealed) for _t, sealed in frames}
        assert sizes <= set(FRAME_SIZES), sizes
        times = [t for t, _ in frames]
        gaps = [b - a for a, b in zip(times[1:], times[2:])]
        assert gaps and median(gaps) == pytest.approx(FRAME_TICK_SECONDS, abs=0.03), gaps
        assert on_clock_share(times) >= 0.8, gaps
    tokens_short = sum(1 for events in short[2] for e in events if e[1] == "token")
    tokens_long = sum(1 for events in long[2] for e in events if e[1] == "token")
    assert tokens_long > 3 * tokens_short  # two replies that differ, with frames that do not


def pearson(xs: list[float], ys: list[float]) -> float:
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    sx = math.sqrt(sum((x - mx) ** 2 for x in xs))
    sy = math.sqrt(sum((y - my) ** 2 for y in ys))
    if sx == 0 or sy == 0:
        return 0.0  # a constant tells nothing
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / (sx * sy)


def identity_frames(carried: list[list[Any]]) -> list[int]:
    """The negative control's framing: each event sealed alone, unpadded (what version 1 sent)."""
    return [len(encode_event(id, event, data)) + TAG_BYTES for events in carried for id, event, data in events if event == "token"]


@pytest.mark.model
def test_token_lengths_do_not_correlate_with_anything_the_edge_sees(shared_client: SignedClient) -> None:
    frames, _reader, carried = record_reply(shared_client, LONG_PROMPT, max_tokens=300, temperature=0.8, seed=7)
    lengths, sizes, gaps = [], [], []
    for index, events in enumerate(carried):
        for _id, event, data in events:
            if event == "token":
                lengths.append(len(data["text"].encode("utf-8")))
                sizes.append(len(frames[index][1]))
                gaps.append(frames[index][0] - frames[index - 1][0] if index else 0.0)
    assert len(lengths) >= 200, len(lengths)
    r_size, r_gap = pearson(lengths, sizes), pearson(lengths, gaps)
    assert abs(r_size) < 0.2 and abs(r_gap) < 0.2, (r_size, r_gap, len(lengths))

    # The negative control: the same events framed by identity. The published attack's first step,
    # a token's length = its event's size less the constant wrapper, reads them back exactly.
    # The wrapper around a token depends on public facts only: the format and the event's place.
    ids = [id for events in carried for id, event, _data in events if event == "token"]
    wrapper = [len(encode_event(id, "token", {"text": ""})) + TAG_BYTES for id in ids]
    plain = identity_frames(carried)
    exact = sum(1 for size, wrap, true in zip(plain, wrapper, lengths) if size - wrap == true) / len(lengths)
    assert pearson(lengths, plain) > 0.9 and exact > 0.85, (pearson(lengths, plain), exact)
    # The same attack on what the edge saw: a token's "length" is its frame's size less the wrapper,
    # hundreds of bytes off and the same for every token in a frame.
    guessed = [size - wrap for size, wrap in zip(sizes, wrapper)]
    assert sum(1 for got, true in zip(guessed, lengths) if got == true) / len(lengths) < 0.05
