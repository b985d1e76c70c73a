"""The KV cache a model's context takes, from its GGUF header (llm/context_memory.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from privchat.llm.context_memory import context_bytes
from privchat.llm.model_files import check_model_file, default_model_path

pytestmark = pytest.mark.model

# SmolLM2-135M: 30 layers, 3 KV heads of 64 (576 wide, 9 heads), f16 keys and values.
SMOLLM2_BYTES_PER_TOKEN = 30 * 3 * (64 + 64) * 2


def test_the_default_model_s_context_from_its_header() -> None:
    path = default_model_path()
    assert path is not None
    assert context_bytes(path, 2048) == 2048 * SMOLLM2_BYTES_PER_TOKEN == 45 * 2**20  # llama.cpp logs 45.00 MiB
    assert context_bytes(path, 0) == 8192 * SMOLLM2_BYTES_PER_TOKEN  # 0: the trained context


def test_a_file_that_is_not_a_model_has_no_estimate(tmp_path: Path) -> None:
    junk = tmp_path / "junk.gguf"
    junk.write_bytes(b"GGUF" + bytes(4096))
    assert context_bytes(junk, 2048) is None


def test_the_sentence_counts_the_context_and_names_both_remedies(tmp_path: Path) -> None:
    path = default_model_path()
    assert path is not None
    size = path.stat().st_size
    assert check_model_file(path, size + 2**20) is None
    problem = check_model_file(path, size + 2**20, context=45 * 2**20)
    assert problem is not None and "with the memory for its context (45 MiB)" in problem
    assert "smaller quantisation or a smaller n_ctx" in problem
