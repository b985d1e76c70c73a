"""Fitting a long conversation into an upstream's context (llm/upstream_context.py); against a real
server in test_models_upstream.py."""

from __future__ import annotations

import json

from hypothesis import given, strategies as st

from privchat.llm.upstream_context import context_overflow, estimated_tokens, fit_turns, shorter


def turns(count: int, size: int = 300) -> list[dict[str, str]]:
    return [{"role": "user" if i % 2 == 0 else "assistant", "content": f"turn {i} " + "x" * size} for i in range(count)]


def test_without_a_known_size_everything_is_sent() -> None:
    assert fit_turns("", turns(40), 256, None) == turns(40)


def test_the_oldest_turns_go_first_and_what_is_kept_fits_with_room_for_the_reply() -> None:
    kept = fit_turns("Be brief.", turns(41), 256, 2048)
    assert 0 < len(kept) < 41
    assert kept == turns(41)[41 - len(kept):]  # the newest ones, in order
    assert kept[0]["role"] == "user"
    assert estimated_tokens("Be brief.", kept) + 256 <= 2048


def test_the_last_turn_always_stays_even_when_it_alone_is_too_long() -> None:
    huge = [{"role": "user", "content": "y" * 100_000}]
    assert fit_turns("", turns(4) + huge, 256, 2048) == huge


@given(st.integers(1, 60), st.integers(0, 2000), st.integers(300, 32768))
def test_fitting_keeps_a_suffix_that_starts_with_the_user(count: int, size: int, n_ctx: int) -> None:
    all_turns = turns(count, size)
    kept = fit_turns("", all_turns, 128, n_ctx)
    assert kept and kept == all_turns[len(all_turns) - len(kept):]
    assert kept[0]["role"] == "user" or len(kept) == 1


def test_shorter_keeps_the_newer_half_until_one_turn_is_left() -> None:
    assert [t["content"][:7] for t in shorter(turns(8))] == ["turn 4 ", "turn 5 ", "turn 6 ", "turn 7 "]
    assert shorter(turns(3))[0]["content"].startswith("turn 2")  # the half began with a reply: from the next user turn
    assert shorter(turns(1)) is None


def test_each_server_s_overflow_refusal_is_recognised_with_the_size_it_names() -> None:
    llama_cpp_server = json.dumps({"error": {"message": "This model's maximum context length is 2048 tokens. However, "
                                             "you requested 5120 tokens (4864 in the messages, 256 in the completion).",
                                             "type": "invalid_request_error", "code": "context_length_exceeded"}})
    llama_server = json.dumps({"error": {"code": 400, "message": "the request exceeds the available context size, try "
                                         "increasing it", "type": "exceed_context_size_error", "n_prompt_tokens": 5000, "n_ctx": 4096}})
    vllm = json.dumps({"object": "error", "message": "This model's maximum context length is 32768 tokens. However, you "
                       "requested 40000 tokens", "type": "BadRequestError", "code": 400})
    assert context_overflow(400, llama_cpp_server.encode()) == (True, 2048)
    assert context_overflow(400, llama_server.encode()) == (True, 4096)
    assert context_overflow(400, vllm.encode()) == (True, 32768)
    assert context_overflow(400, b'{"error": "context_length_exceeded"}') == (True, None)


def test_other_refusals_are_not_mistaken_for_an_overflow() -> None:
    assert context_overflow(400, b'{"error": {"message": "model not found"}}') == (False, None)
    assert context_overflow(401, b'{"error": "maximum context length is 2048"}') == (False, None)
    assert context_overflow(500, b"maximum context length") == (False, None)
