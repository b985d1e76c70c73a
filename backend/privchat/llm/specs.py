"""Each configured model as the engines need it (``ModelSpec``), from the ``models.list`` entries.

A model is ``embedded`` (a GGUF in this process) or ``openai`` (an OpenAI-compatible server). The
entries are declared and checked by the config itself (``MODEL_ENTRY`` in config.py, a Setting per
key: a typo or an upstream on a public address stops start-up with a sentence that names the
entry), so this module only turns them into specs, with the defaults declared there. When
``models.list`` is empty the old ``model:`` section is the one embedded model, so configs from
before keep working.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..config import MODEL_ENTRY, Config
from .model_files import default_model_path  # the bundled GGUF names the model when the config does not


@dataclass(frozen=True)
class ModelSpec:
    """One model as the engines need it; embedded fields fall back to the ``model:`` section."""

    name: str
    engine: str
    label: str | None = None
    n_ctx: int | None = None
    # embedded
    path: Path | None = None
    n_threads: int | None = None
    n_batch: int = 512
    mmproj: Path | None = None  # the GGUF's multimodal projector: the model can see images
    # openai
    base_url: str = ""
    model: str = ""
    api_key_file: Path | None = None
    parallel: int = 1
    connect_timeout_seconds: float = 5.0
    first_token_timeout_seconds: float = 120.0
    vision: bool = False  # openai: the upstream takes OpenAI image_url parts

    @property
    def sees(self) -> bool:
        """The model can be sent images: an embedded GGUF with its mmproj, or an upstream that says vision."""
        return self.mmproj is not None if self.engine == "embedded" else self.vision


def model_specs(config: Config) -> list[ModelSpec]:
    """The configured models; with no list, the ``model:`` section as one embedded model."""
    base = config.model
    entries = config.models.list
    if not entries:
        stem = (base.path or default_model_path() or Path("default")).stem
        return [ModelSpec(name=base.name or stem, engine="embedded", label=base.name, n_ctx=base.n_ctx,
                          path=base.path, n_threads=base.n_threads, n_batch=base.n_batch)]
    specs = []
    for entry in entries:
        if entry["engine"] == "embedded":
            specs.append(ModelSpec(
                name=entry["name"], engine="embedded", label=entry.get("label"),
                n_ctx=entry.get("n_ctx", base.n_ctx),
                path=Path(entry["path"]) if entry.get("path") else (base.path if len(entries) == 1 else None),
                n_threads=entry.get("n_threads", base.n_threads), n_batch=entry.get("n_batch", base.n_batch),
                mmproj=Path(entry["mmproj"]) if entry.get("mmproj") else None))
        else:
            specs.append(ModelSpec(
                name=entry["name"], engine="openai", label=entry.get("label"), n_ctx=entry.get("n_ctx"),
                base_url=entry["base_url"], model=entry.get("model", entry["name"]),
                api_key_file=Path(entry["api_key_file"]) if entry.get("api_key_file") else None,
                parallel=entry.get("parallel", _default("parallel")),
                connect_timeout_seconds=float(entry.get("connect_timeout_seconds", _default("connect_timeout_seconds"))),
                first_token_timeout_seconds=float(entry.get("first_token_timeout_seconds", _default("first_token_timeout_seconds"))),
                vision=bool(entry.get("vision", _default("vision")))))
    return specs


def _default(key: str) -> Any:
    return MODEL_ENTRY[key].setting.default


def default_model_name(config: Config, specs: list[ModelSpec]) -> str:
    return config.models.default or specs[0].name
