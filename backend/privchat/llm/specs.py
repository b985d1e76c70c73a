"""What the config says about each model: the ``models.list`` entries, validated, and where they may point.

A model is ``embedded`` (a GGUF in this process) or ``openai`` (an OpenAI-compatible server). The
entries are checked when the config loads, like every other key, so a typo or an upstream on a public
address stops start-up with a sentence that names the entry. Upstreams must be on loopback or on a
private address the owner listed in ``models.upstream_hosts``: privchat then never sends a
conversation across the internet by mistake. When ``models.list`` is empty the old ``model:``
section is the one embedded model, so configs from before keep working.
"""

from __future__ import annotations

import ipaddress
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from ..addresses import is_hostname, is_loopback_host
from ..config import Config, ConfigError

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
ENGINES = ("embedded", "openai")

# key: (engines it belongs to, kind, lo, hi)
_ENTRY_KEYS: dict[str, tuple[tuple[str, ...], str, float | None, float | None]] = {
    "name": (ENGINES, "name", None, None),
    "engine": (ENGINES, "engine", None, None),
    "label": (ENGINES, "text", None, None),
    "n_ctx": (ENGINES, "int", 256, 1_048_576),
    "path": (("embedded",), "path", None, None),
    "n_threads": (("embedded",), "int", 1, 512),
    "n_batch": (("embedded",), "int", 8, 65536),
    "mmproj": (("embedded",), "path", None, None),
    "base_url": (("openai",), "url", None, None),
    "model": (("openai",), "text", None, None),
    "api_key_file": (("openai",), "path", None, None),
    "parallel": (("openai",), "int", 1, 1024),
    "connect_timeout_seconds": (("openai",), "number", 0.1, 600),
    "first_token_timeout_seconds": (("openai",), "number", 0.1, 3600),
    "vision": (("openai",), "bool", None, None),
}


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


def validate_model_entries(key: str, value: Any) -> list[dict[str, Any]]:
    if not isinstance(value, list):
        raise ConfigError(f"{key}: expected a list of models, got {type(value).__name__}")
    entries = [_entry(f"{key}[{i}]", item) for i, item in enumerate(value)]
    seen: set[str] = set()
    for i, entry in enumerate(entries):
        if entry["name"] in seen:
            raise ConfigError(f"{key}[{i}].name: {entry['name']!r} is used twice; each model needs its own name")
        seen.add(entry["name"])
    return entries


def _entry(where: str, item: Any) -> dict[str, Any]:
    if not isinstance(item, dict):
        raise ConfigError(f"{where}: expected a mapping like {{name: smollm2, engine: embedded}}, got {type(item).__name__}")
    engine = item.get("engine", "embedded")
    if engine not in ENGINES:
        raise ConfigError(f"{where}.engine: expected one of {', '.join(ENGINES)}, got {engine!r}")
    if "name" not in item:
        raise ConfigError(f"{where}.name: required (letters, digits, '.', '_' or '-')")
    if engine == "openai" and "base_url" not in item:
        raise ConfigError(f"{where}.base_url: required for an openai model, e.g. http://127.0.0.1:8080/v1")
    out: dict[str, Any] = {"engine": engine}
    for key, value in item.items():
        spec = _ENTRY_KEYS.get(key)
        if spec is None or engine not in spec[0]:
            known = ", ".join(k for k, s in _ENTRY_KEYS.items() if engine in s[0])
            raise ConfigError(f"{where}.{key}: unknown key for an {engine} model; known keys are {known}")
        out[key] = _value(f"{where}.{key}", spec[1], spec[2], spec[3], value)
    return out


def _value(key: str, kind: str, lo: float | None, hi: float | None, value: Any) -> Any:
    if kind == "name":
        if not isinstance(value, str) or not NAME.match(value):
            raise ConfigError(f"{key}: expected a name of letters, digits, '.', '_' or '-' (at most 64), got {value!r}")
        return value
    if kind in ("text", "engine"):
        if not isinstance(value, str) or not value or len(value) > 200:
            raise ConfigError(f"{key}: expected a non-empty string, got {value!r}")
        return value
    if kind == "path":
        if not isinstance(value, str) or not value.strip():
            raise ConfigError(f"{key}: expected a file path, got {value!r}")
        return str(Path(os.path.expanduser(value)))
    if kind == "url":
        parts = urlsplit(value) if isinstance(value, str) else None
        if parts is None or parts.scheme not in ("http", "https") or not parts.hostname or parts.query or parts.fragment \
                or parts.username or parts.password:
            raise ConfigError(f"{key}: expected an http(s) URL like http://127.0.0.1:8080/v1 (no user, query or fragment), got {value!r}")
        return value.rstrip("/")
    if kind == "bool":
        if not isinstance(value, bool):
            raise ConfigError(f"{key}: expected true or false, got {value!r}")
        return value
    if kind in ("int", "number"):
        ok = isinstance(value, int) if kind == "int" else isinstance(value, (int, float))
        if isinstance(value, bool) or not ok or (lo is not None and value < lo) or (hi is not None and value > hi):
            raise ConfigError(f"{key}: expected {'an integer' if kind == 'int' else 'a number'} from {lo} to {hi}, got {value!r}")
        return value
    raise AssertionError(kind)


def validate_private_hosts(key: str, value: Any) -> list[str]:
    if not isinstance(value, list):
        raise ConfigError(f"{key}: expected a list of private addresses or host names, got {type(value).__name__}")
    hosts = []
    for i, item in enumerate(value):
        host = item.strip("[]").lower() if isinstance(item, str) else None
        if not host:
            raise ConfigError(f"{key}[{i}]: expected an address or a host name, got {item!r}")
        address = _ip(host)
        if address is not None and not is_private_address(address):
            raise ConfigError(f"{key}[{i}]: {item} is a public address; privchat only talks to model servers on loopback "
                              "or a private network (10/8, 172.16/12, 192.168/16, 100.64/10, fc00::/7, fe80::/10)")
        if address is None and not is_hostname(host):
            raise ConfigError(f"{key}[{i}]: expected an address or a bare host name, got {item!r}")
        hosts.append(host)
    return hosts


def is_private_address(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if address.is_loopback or address.is_link_local:
        return True
    if isinstance(address, ipaddress.IPv4Address) and address in ipaddress.ip_network("100.64.0.0/10"):
        return True  # carrier-grade NAT space, which Tailscale uses
    return address.is_private and not address.is_unspecified and not address.is_multicast


def _ip(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


def upstream_host_allowed(host: str, allowed: list[str]) -> bool:
    host = host.strip("[]").lower()
    return is_loopback_host(host) or host in allowed


def check_models(values: dict[str, Any]) -> None:
    """Cross-checks: the default names a listed model; every upstream is on loopback or a named private host."""
    entries = values["list"]
    names = [e["name"] for e in entries]
    default = values["default"]
    if default is not None and entries and default not in names:
        raise ConfigError(f"models.default: {default!r} is not one of the models ({', '.join(names)})")
    for i, entry in enumerate(entries):
        if entry["engine"] != "openai":
            continue
        host = urlsplit(entry["base_url"]).hostname or ""
        if not upstream_host_allowed(host, values["upstream_hosts"]):
            raise ConfigError(
                f"models.list[{i}].base_url: {host} is not loopback; privchat only sends conversations to a model server on "
                f"this machine or on a private address you name: add {host} to models.upstream_hosts if it is on your network")


def model_specs(config: Config) -> list[ModelSpec]:
    """The configured models; with no list, the ``model:`` section as one embedded model."""
    base = config.model
    entries = config.models.list
    if not entries:
        from .engine import default_model_path  # the bundled GGUF names the model when the config does not
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
                parallel=entry.get("parallel", 1),
                connect_timeout_seconds=float(entry.get("connect_timeout_seconds", 5.0)),
                first_token_timeout_seconds=float(entry.get("first_token_timeout_seconds", 120.0)),
                vision=bool(entry.get("vision", False))))
    return specs


def default_model_name(config: Config, specs: list[ModelSpec]) -> str:
    return config.models.default or specs[0].name
