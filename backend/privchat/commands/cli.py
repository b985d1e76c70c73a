"""The `privchat` command: serve, pair, devices, history, doctor, site, tunnel, service.

Every command that reads or writes the database opens its own connection; WAL mode lets it run
while the server streams. Commands a script would call take ``--json``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import re
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Awaitable, Callable
from urllib.parse import quote

from .. import __version__
from ..auth.device_names import check_device_name, for_terminal
from ..addresses import port_in_use
from ..config import SITE_PORT, Config, ConfigError, default_config_path, documented_defaults, load_config
from ..errors import CodedError, PrivchatError
from . import e2e as e2e_commands
from .output import EXIT_FAIL, EXIT_OK, EXIT_USAGE, emit, report_failure
from .service import ServiceError
from .tunnel_setup import SetupError
from ..storage.db import Database



class CliError(PrivchatError):
    """A sentence for the owner; the command exits non-zero."""


def _config(args: argparse.Namespace) -> Config:
    return load_config(args.config)


def _run(coro: Awaitable[int]) -> int:
    return asyncio.run(coro)  # type: ignore[arg-type]


async def _with_db(args: argparse.Namespace, action: Callable[[Config, Database], Awaitable[int]]) -> int:
    config = _config(args)
    database = await Database.open(config)
    try:
        return await action(config, database)
    finally:
        await database.close()


def _iso(stamp: float | None) -> str:
    return "-" if stamp is None else datetime.fromtimestamp(stamp, tz=timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


# serve -----------------------------------------------------------------------------------------
def cmd_serve(args: argparse.Namespace) -> int:
    from ..server import serve

    overrides: dict[str, Any] = {}
    if args.host is not None:
        overrides["host"] = args.host
    if args.port is not None:
        overrides["port"] = args.port
    config = _config(args)
    if overrides:
        config = config.with_overrides(server=overrides)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    def ready(url: str) -> None:
        print(f"privchat {__version__} listening on {url} (loopback only); model loading in the background", flush=True)
        if config.access_enabled:
            print(f"tunnel listener on port {config.tunnel_port}: only for cloudflared, every request needs a Cloudflare Access token",
                  flush=True)

    _check_port_free(config)
    try:
        asyncio.run(serve(config, on_ready=ready))
    except KeyboardInterrupt:
        pass
    print("privchat stopped", flush=True)
    return EXIT_OK


def _check_port_free(config: Config) -> None:
    ports = [("port", config.port, "--port")]
    if config.access_enabled:
        ports.append(("tunnel port", config.tunnel_port, "another tunnel.port in the config (and re-run `privchat tunnel setup`)"))
    for what, port, remedy in ports:
        if port_in_use(config.host, port):
            raise CliError(f"{what} {port} on {config.host} is in use; is privchat already running? Stop it, or start with {remedy}")


# pair ------------------------------------------------------------------------------------------
def pairing_url(config: Config, code: str, name: str | None, kid: str) -> str:
    """The link a device opens; ``e2e`` pins the server key, so a key swapped on the path is refused."""
    fragment = f"pair={quote(code)}&api={quote(config.api_origin, safe=':/')}&e2e={quote(kid)}"
    if name:
        fragment += f"&name={quote(name)}"
    return f"{config.site_url.rstrip('/')}/chat/#{fragment}"


def cmd_pair(args: argparse.Namespace) -> int:
    from ..auth.pairing import PairingStore
    from ..e2e.keys import current_of, ensure_keys

    async def action(config: Config, database: Database) -> int:
        store = PairingStore.from_config(database, config)
        pairing = await store.create()
        server_key = current_of(await ensure_keys(database))
        url = pairing_url(config, pairing.code, args.name, server_key.kid)
        payload = {"code": pairing.code, "expires_at": pairing.expires_at, "expires_at_iso": _iso(pairing.expires_at),
                   "expires_in_seconds": config.auth.pairing_code_ttl_seconds, "url": url,
                   "api_origin": config.api_origin, "site_url": config.site_url,
                   "server_key": server_key.to_json()}
        if args.json:
            emit(args, payload, "")
        else:
            import segno

            print(f"Pairing code: {pairing.code}   (single use, expires {_iso(pairing.expires_at)})")
            print(f"Server key:   {server_key.fingerprint}   (the page shows it while pairing; the link pins it)")
            print(f"Open on the device: {url}\n")
            segno.make(url, error="m").terminal(compact=True)
            print("\nOr open /chat on the device and type the code. The page then shows its fingerprint at the top;")
            if args.wait:
                print("this command prints the same fingerprint here once the device has paired.\n")
                print("Waiting for the device to pair… (Ctrl-C stops waiting; the code stays valid)", flush=True)
            else:
                print("compare it with `privchat devices list` (or run `privchat pair --wait`, which prints it here).")
        if args.wait:
            return await _wait_for_device(database, pairing.expires_at, quiet=args.json, pairing=store)
        return EXIT_OK

    return _run(_with_db(args, action))


async def _wait_for_device(database: Database, until: float, *, quiet: bool, pairing: Any = None) -> int:
    """Wait for a device to pair; say each wrong try on the way (a wrong code, or a pairing that
    came through a swapped key), so the owner knows someone tried before the code is void."""
    from ..auth.devices import DeviceStore

    store = DeviceStore(database)
    started = time.time()
    told = 0
    while time.time() < until:
        fresh = [d for d in await store.list() if d.created_at >= started - 1]
        if fresh:
            device = fresh[-1]
            if not quiet:
                print(f"Paired: {for_terminal(device.name)}  fingerprint {device.fingerprint}  — it should match the page.")
                print(f"  The page shows it at the top (Fingerprint: {device.fingerprint}) and in Devices → This browser.")
            return EXIT_OK
        if pairing is not None:
            tries = await pairing.failed_tries(started)
            if tries > told and not quiet:
                print(f"A pairing try was refused ({tries} of {pairing.max_attempts} wrong tries; at {pairing.max_attempts} "
                      "every open code is void): a wrong code, a pairing given up half-way, or something on the way "
                      "that is not your device.", flush=True)
            told = max(told, tries)
        await asyncio.sleep(1)
    print("The code expired before a device paired.", file=sys.stderr)
    return EXIT_FAIL


# devices ---------------------------------------------------------------------------------------
def cmd_devices_list(args: argparse.Namespace) -> int:
    from ..auth.devices import DeviceStore

    async def action(config: Config, database: Database) -> int:
        devices = await DeviceStore(database).list()
        rows = [d.to_json() for d in devices]
        lines = [f"{'NAME':<24} {'FINGERPRINT':<21} {'STATUS':<8} {'CREATED':<24} LAST SEEN"]
        for d in devices:
            lines.append(f"{for_terminal(d.name)[:24]:<24} {d.fingerprint:<21} {d.status:<8} {_iso(d.created_at):<24} {_iso(d.last_seen_at)}")
        emit(args, {"devices": rows}, "\n".join(lines) if devices else "No devices paired yet. Run `privchat pair`.")
        return EXIT_OK

    return _run(_with_db(args, action))


def _change_device(args: argparse.Namespace, change: Callable[[Any, str], Awaitable[Any]], said: Callable[[Any], str]) -> int:
    """Find the device the owner named (id or fingerprint), apply ``change``, report the result."""
    from ..auth.devices import DeviceLookupError, DeviceStore

    async def action(config: Config, database: Database) -> int:
        store = DeviceStore(database)
        try:
            device = await change(store, (await store.find(args.device)).id)
        except DeviceLookupError as exc:
            raise CliError(str(exc)) from exc
        emit(args, device.to_json(), said(device))
        return EXIT_OK

    return _run(_with_db(args, action))


def cmd_devices_revoke(args: argparse.Namespace) -> int:
    return _change_device(args, lambda store, device_id: store.revoke(device_id),
                          lambda d: f"Revoked {for_terminal(d.name)} ({d.fingerprint}); its next request is refused.")


def cmd_devices_rename(args: argparse.Namespace) -> int:
    try:
        name = check_device_name(args.name)
    except CodedError as exc:  # invalid_device_name
        raise CliError(f"the new name was refused: {exc.message}") from exc
    return _change_device(args, lambda store, device_id: store.rename(device_id, name),
                          lambda d: f"Renamed {d.fingerprint} to {for_terminal(d.name)}.")


# history ---------------------------------------------------------------------------------------
def write_private_file(path: Path, content: str | bytes) -> None:
    """Write a new file only its owner can read (0600), never over an existing one (O_EXCL).

    An export is the whole history in plain text: a umask of 022 would have left it readable by
    every account on the machine, and writing over an existing file could replace a symlink's
    target or an earlier export the owner meant to keep. An encrypted export keeps the same rule.
    """
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError as exc:
        raise CliError(f"{path} already exists; give another file name (an export never writes over a file)") from exc
    except OSError as exc:
        raise CliError(f"{path}: cannot create the export file ({exc.strerror})") from exc
    if isinstance(content, bytes):
        with os.fdopen(fd, "wb") as binary:
            binary.write(content)
    else:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(content)


# An encrypted export is an age file (age-encryption.org/v1), made and opened by pyrage: either to a
# passphrase (age's scrypt recipient) or to age X25519 public keys. The passphrase comes from this
# variable (scripts) or a prompt, for export and import alike.
EXPORT_PASSPHRASE_ENV = "PRIVCHAT_EXPORT_PASSPHRASE"
AGE_HEADER = b"age-encryption.org/v1\n"
AGE_ARMOR_HEADER = b"-----BEGIN AGE ENCRYPTED FILE-----"


def _export_passphrase(*, confirm: bool) -> str:
    """The passphrase from $PRIVCHAT_EXPORT_PASSPHRASE, else asked on the terminal (twice to set one)."""
    import getpass

    from_env = os.environ.get(EXPORT_PASSPHRASE_ENV)
    if from_env is not None:
        if not from_env:
            raise CliError(f"${EXPORT_PASSPHRASE_ENV} is set but empty; set a passphrase or unset it to be asked")
        return from_env
    if not sys.stdin.isatty():
        raise CliError(f"no passphrase: set ${EXPORT_PASSPHRASE_ENV} when not on a terminal"
                       + (", or encrypt to a key with --recipient" if confirm else ", or give --identity FILE"))
    passphrase = getpass.getpass("Export passphrase: ")
    if not passphrase:
        raise CliError("an empty passphrase was refused; nothing was written" if confirm else "no passphrase given; nothing was imported")
    if confirm and getpass.getpass("The same passphrase again: ") != passphrase:
        raise CliError("the two passphrases differ; nothing was written")
    return passphrase


def _age_recipients(keys: list[str]) -> list[Any]:
    import pyrage

    recipients = []
    for key in keys:
        try:
            recipients.append(pyrage.x25519.Recipient.from_str(key.strip()))
        except Exception as exc:  # pyrage raises RecipientError (and ValueError on some inputs)
            raise CliError(f"--recipient {key!r} is not an age public key (age1…, as `age-keygen -y` prints it)") from exc
    return recipients


def _encrypt_export(data: bytes, recipients: list[str], passphrase: str | None) -> bytes:
    import pyrage

    if recipients:
        return pyrage.encrypt(data, _age_recipients(recipients))
    if not passphrase:
        raise CliError("no passphrase for the encrypted export; nothing was written")
    return pyrage.passphrase.encrypt(data, passphrase)


def _age_identities(path: Path) -> list[Any]:
    """The AGE-SECRET-KEY-1… lines of an age identity file (as age-keygen writes it)."""
    import pyrage

    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise CliError(f"--identity {path}: no such file") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise CliError(f"--identity {path}: cannot read it ({exc})") from exc
    identities = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        try:
            identities.append(pyrage.x25519.Identity.from_str(line))
        except Exception as exc:
            raise CliError(f"--identity {path}: not an age identity file (expected AGE-SECRET-KEY-1… lines)") from exc
    if not identities:
        raise CliError(f"--identity {path}: no AGE-SECRET-KEY-1… line in it")
    return identities


def _decrypt_export(source: Path, data: bytes, identity: str | None) -> bytes:
    """Opens an age export with --identity, or with the passphrase when it was made to one."""
    import pyrage

    header = data.split(b"\n---", 1)[0]
    to_passphrase = b"\n-> scrypt " in header
    try:
        if identity is not None:
            if to_passphrase:
                raise CliError(f"{source} was encrypted with a passphrase, not to a key; leave out --identity. Nothing was imported.")
            return pyrage.decrypt(data, _age_identities(Path(identity)))
        if not to_passphrase:
            raise CliError(f"{source} is encrypted to an age key; give its identity file with --identity FILE. Nothing was imported.")
        return pyrage.passphrase.decrypt(data, _export_passphrase(confirm=False))
    except pyrage.DecryptError as exc:
        what = "identity does not open it" if identity is not None else "passphrase is wrong"
        raise CliError(f"{source}: the {what} (or the file was changed): {exc}. Nothing was imported.") from exc


def cmd_history_export(args: argparse.Namespace) -> int:
    from ..storage.export import export_to_markdown, history_export
    from ..storage.history import HistoryStore

    encrypt = bool(args.encrypt or args.recipient)
    to_file = bool(args.output and args.output != "-")
    if encrypt and not to_file and sys.stdout.isatty():
        raise CliError("an encrypted export is binary; write it to a file with -o FILE (or redirect standard output)")
    # A bad key or no passphrase is refused (and a prompt answered) before the database is opened.
    if args.recipient:
        _age_recipients(args.recipient)
    passphrase = _export_passphrase(confirm=True) if encrypt and not args.recipient else None

    async def action(config: Config, database: Database) -> int:
        export = await history_export(HistoryStore(database))
        text = export_to_markdown(export) if args.format == "markdown" else json.dumps(export, ensure_ascii=False, indent=2)
        content: str | bytes = _encrypt_export(text.encode("utf-8"), args.recipient, passphrase) if encrypt else text
        if to_file:
            write_private_file(Path(args.output), content)
            how = (f" (age, to {len(args.recipient)} key(s))" if args.recipient else " (age, passphrase)") if encrypt else ""
            print(f"Exported {len(export['conversations'])} conversation(s) to {args.output}{how}", file=sys.stderr)
        elif isinstance(content, bytes):
            sys.stdout.buffer.write(content)
            sys.stdout.flush()
        else:
            sys.stdout.write(content + ("\n" if not content.endswith("\n") else ""))
        return EXIT_OK

    return _run(_with_db(args, action))


def cmd_history_import(args: argparse.Namespace) -> int:
    from pydantic import ValidationError

    from ..api.schemas import ExportFile
    from ..app import describe_validation_error
    from ..storage.export import import_conversations
    from ..storage.history import HistoryStore

    source = Path(args.file)
    try:
        data = source.read_bytes()
    except FileNotFoundError as exc:
        raise CliError(f"{source}: no such file") from exc
    except OSError as exc:
        raise CliError(f"{source}: cannot read it ({exc.strerror})") from exc
    if data.startswith(AGE_ARMOR_HEADER):
        raise CliError(f"{source} is an ASCII-armored age file; remove the armor first (age -d, then import the JSON). Nothing was imported.")
    if data.startswith(AGE_HEADER):
        data = _decrypt_export(source, data, args.identity)
    elif args.identity is not None:
        raise CliError(f"{source} is not an age-encrypted file; leave out --identity. Nothing was imported.")
    try:
        raw = json.loads(data.decode("utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CliError(f"{source}: not a JSON file ({exc}); import takes a JSON export, not Markdown") from exc
    try:
        parsed = ExportFile.model_validate(raw)
    except ValidationError as exc:
        raise CliError(f"{source}: {describe_validation_error(exc)} Nothing was imported.") from exc

    async def action(config: Config, database: Database) -> int:
        result = await import_conversations(HistoryStore(database), (c.model_dump() for c in parsed.conversations))
        emit(args, result, f"Imported {result['imported_conversations']} conversation(s) and "
                            f"{result['imported_messages']} message(s); {result['skipped']} already there.")
        return EXIT_OK

    return _run(_with_db(args, action))


def cmd_history_clear(args: argparse.Namespace) -> int:
    from ..storage.history import HistoryStore

    if not args.yes:
        if not sys.stdin.isatty():
            raise CliError("history clear deletes every conversation; add --yes to confirm when not on a terminal")
        answer = input("Delete every conversation and message? This cannot be undone. Type 'yes': ")
        if answer.strip().lower() != "yes":
            print("Nothing deleted.")
            return EXIT_FAIL

    async def action(config: Config, database: Database) -> int:
        deleted = await HistoryStore(database).clear()
        emit(args, {"deleted": deleted}, f"Deleted {deleted} conversation(s).")
        return EXIT_OK

    return _run(_with_db(args, action))


# config ----------------------------------------------------------------------------------------
def cmd_config_defaults(args: argparse.Namespace) -> int:
    print(documented_defaults(), end="")
    return EXIT_OK


def cmd_config_path(args: argparse.Namespace) -> int:
    print(args.config or default_config_path())
    return EXIT_OK


# site ------------------------------------------------------------------------------------------
def cmd_site(args: argparse.Namespace) -> int:
    from .site import api_origins_to_allow, serve_site

    directory = Path(args.dir).resolve()
    if not (directory / "chat" / "index.html").exists():
        raise CliError(f"{directory} has no chat/index.html; build the page first: (cd pages && npm ci && npm run build)")
    try:  # the configured server's origin goes into the CSP's connect-src (server.port need not be 8765)
        origins = api_origins_to_allow(_config(args))
    except ConfigError as exc:
        origins = []
        print(f"the config could not be read ({exc}); the page's CSP is served as built", file=sys.stderr, flush=True)
    print(f"page served at http://{args.host}:{args.port}/chat/ from {directory}", flush=True)
    if origins:
        print(f"its CSP connect-src also allows {', '.join(origins)} (the server in the config)", flush=True)
    try:
        asyncio.run(serve_site(directory, args.host, args.port, connect_origins=origins))
    except KeyboardInterrupt:
        pass
    return EXIT_OK


def cmd_site_verify(args: argparse.Namespace) -> int:
    from .site import SiteVerifyError, verify_site

    directory = Path(args.dir).resolve()
    try:
        checks = verify_site(args.url, directory)
    except SiteVerifyError as exc:
        raise CliError(str(exc)) from exc
    bad = [c for c in checks if c.status != "ok"]
    lines = [f"{c.status:<8} {c.path}" + (f"  ({c.note})" if c.note else "") for c in checks]
    if bad:
        lines.append(f"{len(bad)} of {len(checks)} file(s) differ from the build in {directory}: the deployed page is not this build "
                     "(an old or a new deploy, a Cloudflare feature that rewrites HTML, or a changed site).")
    else:
        lines.append(f"All {len(checks)} files match the build in {directory}.")
    emit(args, {"ok": not bad, "url": args.url, "dir": str(directory), "files": [c.to_json() for c in checks]}, "\n".join(lines))
    return EXIT_FAIL if bad else EXIT_OK


# parser ----------------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="privchat", description="A private chat with your own GGUF model.")
    parser.add_argument("--version", action="version", version=f"privchat {__version__}")
    parser.add_argument("--config", metavar="PATH", default=None,
                        help=f"config file (default: {default_config_path()}, or $PRIVCHAT_CONFIG)")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", metavar="PATH", default=argparse.SUPPRESS, help="config file (as above)")
    sub = parser.add_subparsers(title="commands", metavar="COMMAND")

    serve = sub.add_parser("serve", parents=[common], help="run the server (loopback only)",
                           description="Run privchat on Hypercorn. The model loads in the background.")
    serve.add_argument("--host", help="loopback address to listen on (default server.host, 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port (default server.port, 8765)")
    serve.set_defaults(func=cmd_serve)

    pair = sub.add_parser("pair", parents=[common], help="print a one-time pairing code and QR for a new device",
                          description="Print a single-use pairing code (and a QR code of the pairing link) for a new device.")
    pair.add_argument("--name", help="suggested device name, carried in the link")
    pair.add_argument("--json", action="store_true", help="print JSON (code, url, expires_at, api_origin)")
    pair.add_argument("--wait", action="store_true", help="wait until a device pairs and print its fingerprint")
    pair.set_defaults(func=cmd_pair)

    devices = sub.add_parser("devices", parents=[common], help="list, revoke or rename paired devices")
    devices.set_defaults(func=lambda a: _help(devices))
    dsub = devices.add_subparsers(title="devices commands", metavar="COMMAND")
    dlist = dsub.add_parser("list", parents=[common], help="list devices with fingerprint and status")
    dlist.add_argument("--json", action="store_true")
    dlist.set_defaults(func=cmd_devices_list)
    drevoke = dsub.add_parser("revoke", parents=[common], help="revoke a device (by id or fingerprint)")
    drevoke.add_argument("device", metavar="ID|FINGERPRINT")
    drevoke.add_argument("--json", action="store_true")
    drevoke.set_defaults(func=cmd_devices_revoke)
    drename = dsub.add_parser("rename", parents=[common], help="rename a device")
    drename.add_argument("device", metavar="ID|FINGERPRINT")
    drename.add_argument("name")
    drename.add_argument("--json", action="store_true")
    drename.set_defaults(func=cmd_devices_rename)

    e2e = sub.add_parser("e2e", parents=[common], help="show or rotate the server's end-to-end encryption key")
    e2e.set_defaults(func=lambda a: _help(e2e))
    esub = e2e.add_subparsers(title="e2e commands", metavar="COMMAND")
    eshow = esub.add_parser("show", parents=[common], help="print the current key's fingerprint (the page's \"Server key\")")
    eshow.add_argument("--json", action="store_true", help="print JSON")
    eshow.set_defaults(func=lambda a: _run(_with_db(a, lambda c, d: e2e_commands.show(a, c, d))))
    erotate = esub.add_parser("rotate", parents=[common], help="make a new key; the old one keeps working for e2e.rotation_grace_hours")
    erotate.add_argument("--json", action="store_true", help="print JSON")
    erotate.add_argument("--revoke-old", action="store_true",
                         help="delete the old keys instead of keeping them for the grace period (a key that leaked)")
    erotate.set_defaults(func=lambda a: _run(_with_db(a, lambda c, d: e2e_commands.rotate_key(a, c, d))))

    history = sub.add_parser("history", parents=[common], help="export, import or clear the chat history")
    history.set_defaults(func=lambda a: _help(history))
    hsub = history.add_subparsers(title="history commands", metavar="COMMAND")
    hexport = hsub.add_parser("export", parents=[common], help="write every conversation as JSON or Markdown")
    hexport.add_argument("--format", choices=("json", "markdown"), default="json")
    hexport.add_argument("-o", "--output", metavar="FILE", help="file to write (default: standard output)")
    hexport.add_argument("--encrypt", action="store_true",
                         help=f"write an age-encrypted file, to a passphrase (${EXPORT_PASSPHRASE_ENV} or a prompt) "
                              "unless --recipient is given")
    hexport.add_argument("--recipient", metavar="AGE_PUBLIC_KEY", action="append", default=[],
                         help="encrypt to this age X25519 public key (age1…) instead of a passphrase; repeatable; implies --encrypt")
    hexport.set_defaults(func=cmd_history_export)
    himport = hsub.add_parser("import", parents=[common], help="import a JSON export, plain or age-encrypted (adds only what is missing)")
    himport.add_argument("file", metavar="FILE")
    himport.add_argument("--identity", metavar="FILE",
                         help=f"age identity file for an export encrypted to a key (a passphrase export asks, or reads ${EXPORT_PASSPHRASE_ENV})")
    himport.add_argument("--json", action="store_true")
    himport.set_defaults(func=cmd_history_import)
    hclear = hsub.add_parser("clear", parents=[common], help="delete every conversation")
    hclear.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    hclear.add_argument("--json", action="store_true")
    hclear.set_defaults(func=cmd_history_clear)

    from .doctor import cmd_doctor

    doctor = sub.add_parser("doctor", parents=[common], help="check config, model, database, key, port and tunnel config")
    doctor.add_argument("--json", action="store_true")
    doctor.set_defaults(func=cmd_doctor)

    config = sub.add_parser("config", parents=[common], help="show the documented default config or the config path")
    config.set_defaults(func=lambda a: _help(config))
    csub = config.add_subparsers(title="config commands", metavar="COMMAND")
    csub.add_parser("defaults", help="print every key with its default and meaning").set_defaults(func=cmd_config_defaults)
    csub.add_parser("path", parents=[common], help="print the config file path in use").set_defaults(func=cmd_config_path)

    site = sub.add_parser("site", parents=[common], help="serve the built page locally (applies pages/_headers)")
    site.add_argument("--dir", default=str(Path(__file__).resolve().parents[3] / "pages" / "dist"), help="built site folder")
    site.add_argument("--host", default="127.0.0.1")
    site.add_argument("--port", type=int, default=SITE_PORT)
    site.set_defaults(func=cmd_site)
    ssub = site.add_subparsers(title="site commands", metavar="COMMAND")
    sverify = ssub.add_parser("verify", parents=[common], help="compare the deployed page at URL with the local build",
                              description="Fetch every file of the page the build pinned (and sw.js, config.json) from URL, "
                                          "e.g. https://chat.example.com/chat/, and compare each with the local build; "
                                          "exits 1 when any file differs or is missing.")
    sverify.add_argument("url", metavar="URL", help="the deployed page, e.g. https://chat.example.com/chat/")
    sverify.add_argument("--dir", default=str(Path(__file__).resolve().parents[3] / "pages" / "dist"),
                         help="the local build to compare with (default pages/dist)")
    sverify.add_argument("--json", action="store_true", help="print JSON (ok, files with status and hashes)")
    sverify.set_defaults(func=cmd_site_verify)

    from .tunnel import add_commands

    add_commands(sub)
    _name_commands(parser)
    return parser


def _name_commands(parser: argparse.ArgumentParser) -> None:
    """Every command knows its own name (`privchat tunnel setup`), for the one way failures are reported."""
    parser.set_defaults(command=parser.prog)
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                _name_commands(sub)


def _help(parser: argparse.ArgumentParser) -> int:
    parser.print_help()
    return EXIT_USAGE


# A device id is a 43-character base64url thumbprint, so one in 64 begins with "-" and argparse
# would take it for an unknown option. argparse always reads a token with a space as a value, and
# device lookups strip it, so such an id gets a trailing space.
_DASHED_DEVICE_ID = re.compile(r"-[A-Za-z0-9_-]{42}")


def _shield_device_ids(argv: list[str]) -> list[str]:
    return [f"{arg} " if _DASHED_DEVICE_ID.fullmatch(arg) else arg for arg in argv]


def main(argv: list[str] | None = None) -> None:
    parser = build_parser()
    args = parser.parse_args(_shield_device_ids(sys.argv[1:] if argv is None else list(argv)))
    if not hasattr(args, "func"):
        parser.print_help()
        sys.exit(EXIT_USAGE)
    try:
        code = args.func(args)
    except PrivchatError as exc:  # every refusal, from any command, is reported here and only here
        code = report_failure(args, exc, usage=isinstance(exc, USAGE_ERRORS))
    except EOFError:
        print("\nprivchat: cancelled, nothing written.", file=sys.stderr)
        code = 130
    except KeyboardInterrupt:
        code = 130
    sys.exit(code)


# Refused input (a config key, a setup answer) is a usage error; anything else that failed is 1.
USAGE_ERRORS: tuple[type[PrivchatError], ...] = (ConfigError, SetupError, ServiceError)


if __name__ == "__main__":
    main()
