"""How much memory a model's context takes, read from its GGUF header before it is loaded.

A model needs its weights (the file, mapped whole) and a KV cache llama.cpp allocates at load time
for every token of its context: for each layer, a key and a value vector per KV head. For a 7B
model at 32k tokens that is gigabytes on top of the file, so a check on the file size alone would
let a switch start that then fails, or pushes the machine into swap. The shape comes from the
file's own header, read by llama.cpp with the vocabulary only (no weights: a fraction of a second);
llama-cpp-python's ``Llama`` would allocate a context, so the low-level loader is used.

Only the usual attention shape is estimated. A model with a sliding window (part of its layers keep
only the window) or without attention heads (recurrent) gets None: then only the file is counted,
never a refusal from an estimate known to be too high.
"""

from __future__ import annotations

import ctypes
import logging
from pathlib import Path

KV_BYTES_PER_VALUE = 2  # llama.cpp's default cache type is f16

log = logging.getLogger(__name__)


def context_bytes(path: Path, n_ctx: int) -> int | None:
    """The KV cache for ``n_ctx`` tokens of this GGUF (0: the context it was trained for); None
    when the header does not say or the shape is not the usual one. Blocking: call it in a thread."""
    meta = _header(path)
    if meta is None:
        return None
    arch = meta.get("general.architecture")
    if not arch:
        return None

    def number(key: str) -> int | None:
        value = meta.get(f"{arch}.{key}")
        try:
            return int(value) if value is not None else None
        except ValueError:
            return None  # an array (a count per layer): not the usual shape

    if meta.get(f"{arch}.attention.sliding_window") is not None:
        return None
    layers, width, heads = number("block_count"), number("embedding_length"), number("attention.head_count")
    if not layers or not width or not heads:
        return None
    kv_heads = number("attention.head_count_kv") or heads
    key_width = number("attention.key_length") or width // heads
    value_width = number("attention.value_length") or width // heads
    tokens = n_ctx or number("context_length")
    if not tokens:
        return None
    return tokens * layers * kv_heads * (key_width + value_width) * KV_BYTES_PER_VALUE


_WANTED = ("general.architecture", "block_count", "embedding_length", "attention.head_count",
           "attention.head_count_kv", "attention.key_length", "attention.value_length", "context_length",
           "attention.sliding_window")


def _header(path: Path) -> dict[str, str] | None:
    try:
        import llama_cpp
    except ImportError:
        return None
    logging.getLogger("llama-cpp-python").setLevel(logging.ERROR)  # as Llama(verbose=False) does
    params = llama_cpp.llama_model_default_params()
    params.vocab_only = True
    model = llama_cpp.llama_model_load_from_file(str(path).encode(), params)
    if not model:
        log.warning("could not read the header of %s to size its context", path.name)
        return None
    try:
        buffer = ctypes.create_string_buffer(256)

        def value(key: str) -> str | None:
            length = llama_cpp.llama_model_meta_val_str(model, key.encode(), buffer, len(buffer))
            return buffer.value.decode("utf-8", "replace") if length >= 0 else None

        arch = value("general.architecture")
        if arch is None:
            return None
        meta = {"general.architecture": arch}
        for name in _WANTED[1:]:
            found = value(f"{arch}.{name}")
            if found is not None:
                meta[f"{arch}.{name}"] = found
        return meta
    finally:
        llama_cpp.llama_model_free(model)
