"""`privchat doctor`: every check the server depends on, each with what is wrong and how to fix it."""

from __future__ import annotations

import argparse
import asyncio
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import httpx

from .output import emit
from ..addresses import http_url, port_answers, port_in_use
from ..config import Config, ConfigError, load_config


@dataclass
class Check:
    name: str
    ok: bool
    detail: str
    fix: str = ""
    warning: bool = False


def _check_config(args: argparse.Namespace) -> tuple[Check, Config | None]:
    try:
        config = load_config(args.config)
    except ConfigError as exc:
        return Check("config", False, str(exc), "edit the config file; `privchat config defaults` lists every key"), None
    where = str(config.source) if config.source else "no config file: all defaults"
    return Check("config", True, where), config


def _check_model(config: Config) -> list[Check]:
    from ..llm.model_files import check_model_file, resolve_model_path

    checks = []
    try:
        import llama_cpp  # noqa: F401

        checks.append(Check("llama-cpp-python", True, f"version {getattr(llama_cpp, '__version__', '?')}"))
    except Exception as exc:  # an import-time crash of a native module shows up here
        checks.append(Check("llama-cpp-python", False, f"cannot import llama_cpp ({type(exc).__name__})",
                            'reinstall: CMAKE_ARGS="-DGGML_NATIVE=OFF -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON" '
                            "pip install --force-reinstall --no-cache-dir llama-cpp-python"))
    if not config.model.enabled:
        checks.append(Check("model", True, "turned off (model.enabled: false): chat answers 503", warning=True))
        return checks
    if config.models.list:
        return checks + _check_models(config)
    path = resolve_model_path(config)
    problem = check_model_file(path)
    checks.append(Check("model", problem is None, problem or f"{path}", "set model.path to a GGUF file" if problem else ""))
    return checks


def _check_models(config: Config) -> list[Check]:
    """models.list: each embedded GGUF checked like model.path; each upstream asked for its models once."""
    import httpx

    from ..llm.model_files import check_model_file, default_model_path
    from ..llm.specs import model_specs

    checks = []
    for spec in model_specs(config):
        label = f"model {spec.name}"
        if spec.engine == "embedded":
            path = spec.path or default_model_path()
            problem = check_model_file(path)
            checks.append(Check(label, problem is None, problem or f"embedded: {path}",
                                f"set the path of model {spec.name} to a GGUF file" if problem else ""))
            continue
        try:
            status = httpx.get(f"{spec.base_url}/models", timeout=spec.connect_timeout_seconds, trust_env=False).status_code
            ok, detail = status < 400 or status == 401, f"openai: {spec.base_url} answers ({status})"
        except httpx.HTTPError as exc:
            ok, detail = False, f"openai: the model server at {spec.base_url} is not answering ({type(exc).__name__})"
        # A warning, not a failure: the model server may simply not be started yet.
        checks.append(Check(label, True, detail, "" if ok else "start the model server, or fix its base_url", warning=not ok))
    return checks


async def _check_database(config: Config) -> list[Check]:
    from ..storage.db import Database, DatabaseError
    from ..storage.crypto import CryptoError

    checks = []
    mode = config.storage.encryption
    if mode == "keyfile":
        key = config.key_file
        if key.exists():
            loose = key.stat().st_mode & 0o077
            checks.append(Check("key file", not loose, f"{key} (mode {oct(key.stat().st_mode & 0o777)})",
                                f"chmod 600 {key}" if loose else ""))
        elif config.database_path.exists():
            checks.append(Check("key file", False, f"{key} is missing but the database exists",
                                "restore the key file from your backup"))
        else:
            checks.append(Check("key file", True, f"{key} will be created on first start", warning=True))
    elif mode == "off":
        checks.append(Check("encryption", True, "storage.encryption is off: history is stored in plain text", warning=True))
    if not config.database_path.exists():
        checks.append(Check("database", True, f"{config.database_path} will be created on first start", warning=True))
        return checks
    try:
        database = await Database.open(config)
    except (DatabaseError, CryptoError) as exc:
        checks.append(Check("database", False, str(exc), "see the message; nothing was changed"))
        return checks
    except Exception as exc:
        checks.append(Check("database", False, f"{config.database_path}: {type(exc).__name__}: {exc}",
                            "check the folder exists and is writable"))
        return checks
    try:
        async with database.conn.execute("PRAGMA integrity_check") as cursor:
            result = (await cursor.fetchone())[0]
        async with database.conn.execute("SELECT COUNT(*) FROM devices WHERE revoked_at IS NULL") as cursor:
            devices = (await cursor.fetchone())[0]
    finally:
        await database.close()
    checks.append(Check("database", result == "ok", f"{config.database_path}: integrity {result}, encryption {mode}",
                        "restore from an export" if result != "ok" else ""))
    checks.append(Check("devices", True, f"{devices} active device(s)" + ("; pair one with `privchat pair`" if not devices else ""),
                        warning=not devices))
    return checks


def _check_key_placement(config: Config) -> Check | None:
    """Where the key and the database are, and a warning when one backup would take both."""
    from ..storage.key_placement import FIX, shared_backup

    mode = config.storage.encryption
    database = config.database_path
    if mode == "off":
        return None  # the encryption check already says the history is stored in plain text
    if mode == "passphrase":
        return Check("key placement", True, f"database {database}; its key comes from your passphrase and is stored nowhere")
    key = config.key_file
    reason = shared_backup(key, database)
    if reason is None:
        return Check("key placement", True, f"key file {key} is on another filesystem than the database {database}")
    return Check("key placement", True, f"the key file {key} and the database {database} {reason}: the same backup would "
                 "hold both, and with both the history can be read", FIX, warning=True)


async def _check_port(config: Config) -> Check:
    url = http_url(config.host, config.port) + "/api/health"
    try:
        async with httpx.AsyncClient(timeout=2.0) as client:
            response = await client.get(url)
        model = response.json().get("model", {})
        return Check("server", True, f"privchat is running on {url}: model {model.get('state')}"
                     + (f" ({model.get('error')})" if model.get("error") else ""))
    except (httpx.HTTPError, ValueError):
        pass
    if port_in_use(config.host, config.port):
        return Check("port", False, f"port {config.port} is taken by another program", "stop it, or set server.port")
    return Check("port", True, f"port {config.port} is free; start the server with `privchat serve`", warning=True)


def _check_tunnel_port(config: Config) -> Check | None:
    """With Access configured, privchat also listens on tunnel.port: the only port cloudflared may point at."""
    if not config.access_enabled:
        return None
    if port_answers(config.host, config.tunnel_port):
        return Check("tunnel port", True, f"something listens on tunnel port {config.tunnel_port} (privchat, when it runs)")
    if port_in_use(config.host, config.tunnel_port):
        return Check("tunnel port", False, f"tunnel port {config.tunnel_port} is taken by another program",
                     "stop it, or set tunnel.port and run `privchat tunnel setup` again")
    return Check("tunnel port", True, f"tunnel port {config.tunnel_port} is free for `privchat serve`", warning=True)


# A remotely-managed tunnel: created in the Cloudflare dashboard and run with its token. Where to
# look for one (module attributes, so tests can point them at a fake /proc and unit folders).
PROC_ROOT = Path("/proc")
UNIT_DIRS: tuple[Path, ...] = (
    Path("/etc/systemd/system"), Path("/lib/systemd/system"), Path("/usr/lib/systemd/system"),
    Path.home() / ".config" / "systemd" / "user", Path("/Library/LaunchDaemons"), Path.home() / "Library" / "LaunchAgents",
)
TOKEN_FLAGS = ("--token", "--token-file")


def _runs_with_token(argv: list[str]) -> bool:
    """`cloudflared … tunnel … run --token X` (or --token=X, --token-file F)."""
    if not argv or not os.path.basename(argv[0]).startswith("cloudflared") or "tunnel" not in argv or "run" not in argv:
        return False
    return any(arg in TOKEN_FLAGS or arg.startswith(("--token=", "--token-file=")) for arg in argv)


def _redacted(argv: list[str]) -> str:
    """The command line without the token: it is the tunnel's secret and never printed."""
    shown: list[str] = []
    hide = False
    for arg in argv:
        if hide:
            shown.append("…")
            hide = False
        elif arg == "--token":
            shown.append(arg)
            hide = True
        elif arg.startswith("--token="):
            shown.append("--token=…")
        else:
            shown.append(arg)
    return " ".join([os.path.basename(shown[0]), *shown[1:]]) if shown else ""


def token_tunnel_processes(proc_root: Path | None = None) -> list[str]:
    """Running cloudflared processes that run a tunnel with a token, as "pid N: command (token hidden)"."""
    root = proc_root or PROC_ROOT
    found = []
    try:
        entries = sorted((e for e in root.iterdir() if e.name.isdigit()), key=lambda e: int(e.name))
    except OSError:
        return []
    for entry in entries:
        try:
            argv = [part.decode("utf-8", "replace") for part in (entry / "cmdline").read_bytes().split(b"\0") if part]
        except OSError:  # gone, or not ours to read
            continue
        if _runs_with_token(argv):
            found.append(f"pid {entry.name}: {_redacted(argv)}")
    return found


def token_tunnel_units(unit_dirs: tuple[Path, ...] | None = None) -> list[str]:
    """Service files (systemd units, launchd plists) that start cloudflared with a token."""
    found = []
    for folder in unit_dirs if unit_dirs is not None else UNIT_DIRS:
        try:
            files = sorted([*folder.glob("cloudflared*.service"), *folder.glob("com.cloudflare.cloudflared*.plist")])
        except OSError:
            continue
        for file in files:
            try:
                text = file.read_text(encoding="utf-8", errors="replace")
            except OSError:
                continue
            if "tunnel" in text and any(flag in text for flag in TOKEN_FLAGS):
                found.append(str(file))
    return found


def _check_remote_tunnel(config: Config) -> Check | None:
    """A cloudflared run with a token: its rules and Access are in the dashboard, out of doctor's sight."""
    processes, units = token_tunnel_processes(), token_tunnel_units()
    if not processes and not units:
        return None
    seen = "; ".join([*(f"running ({p})" for p in processes), *(f"service {u}" for u in units)])
    if not config.access_enabled:
        return Check("remote tunnel", False, f"cloudflared runs a tunnel with a token ({seen}), but privchat has no access "
                     "settings, so it does not listen on tunnel.port and the tunnel cannot reach it",
                     "run `privchat tunnel setup --remote` and enter what it prints in the Cloudflare dashboard")
    host = (config.access.public_hostnames or ["the API host name"])[0]
    service = http_url(config.host, config.tunnel_port)
    team = config.access.team_domain
    auds = ", ".join(config.access.aud) or "?"
    return Check("remote tunnel", True,
                 f"cloudflared runs a remotely-managed tunnel ({seen}). Its public hostnames and their Access settings live "
                 f"in the Cloudflare dashboard, so doctor cannot check from here that {host} goes to {service} with "
                 f"'Protect with Access' on (team {team}, AUD {auds}), that no HTTP Host Header is set, or that no other "
                 "public hostname reaches privchat's ports; privchat itself still refuses any request on the tunnel port "
                 "without a valid Access token",
                 "compare the tunnel's Public Hostname in the dashboard with `privchat tunnel setup --remote --dry-run`",
                 warning=True)


def _check_tunnel(config: Config, remote: bool = False) -> Check | None:
    from ..tunnel.validate import PrivchatPorts, validate_cloudflared_file

    path = config.tunnel_config_file
    if not path.exists():
        if config.access_enabled and not remote:
            return Check("tunnel config", False, f"{path} does not exist, and no cloudflared runs with a token "
                         "(a tunnel managed in the dashboard)",
                         "run `privchat tunnel setup` (scripts/setup-tunnel); for a tunnel created in the Cloudflare "
                         "dashboard, start it (`cloudflared tunnel run --token …` or its service) and see "
                         "`privchat tunnel setup --remote`")
        return None
    problems = validate_cloudflared_file(path, PrivchatPorts.of(config))
    return Check("tunnel config", not problems, f"{path}: " + ("valid" if not problems else "; ".join(problems)),
                 "run scripts/setup-tunnel again" if problems else "")


async def run_checks(args: argparse.Namespace) -> list[Check]:
    first, config = _check_config(args)
    checks = [first]
    if config is None:
        return checks
    checks += _check_model(config)
    checks += await _check_database(config)
    placement = _check_key_placement(config)
    if placement is not None:
        checks.append(placement)
    checks.append(await _check_port(config))
    tunnel_port = _check_tunnel_port(config)
    if tunnel_port is not None:
        checks.append(tunnel_port)
    remote = _check_remote_tunnel(config)
    tunnel = _check_tunnel(config, remote=remote is not None)
    if tunnel is not None:
        checks.append(tunnel)
    if remote is not None:
        checks.append(remote)
    return checks


def cmd_doctor(args: argparse.Namespace) -> int:
    checks = asyncio.run(run_checks(args))
    failed = [c for c in checks if not c.ok]
    lines = []
    for check in checks:
        mark = "ok  " if check.ok and not check.warning else ("note" if check.ok else "FAIL")
        lines.append(f"[{mark}] {check.name}: {check.detail}")
        if check.fix and (not check.ok or check.warning):
            lines.append(f"       fix: {check.fix}")
    lines.append("all checks passed" if not failed else f"{len(failed)} check(s) failed")
    emit(args, {"ok": not failed, "checks": [asdict(c) for c in checks]}, "\n".join(lines))
    return 0 if not failed else 1
