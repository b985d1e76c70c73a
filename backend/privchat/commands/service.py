"""`privchat service install|uninstall`: start privchat at login (or boot) as the owner, not root.

The tunnel is useless when the backend is not running, so the owner wants privchat to come back
after a reboot or a crash. A per-user service (a systemd user unit on Linux, a launchd agent on
macOS) does that without root and without opening a port: the backend still binds loopback only.
Nothing is enabled silently: install writes the file and prints the commands that turn it on, so
the owner sees exactly what will run.

The passphrase is never written into the unit: a service file is readable config, not a secret
store, and an environment variable there would sit on disk next to the encrypted database it
protects. Passphrase mode therefore cannot autostart; keyfile mode can.
"""

from __future__ import annotations

import argparse
import os
import plistlib
import shlex
import shutil
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from privchat.config import ConfigError, default_config_path, load_config
from privchat.errors import PrivchatError
from privchat.commands.output import emit
from privchat.files import write_file

UNIT_NAME = "privchat.service"
AGENT_LABEL = "dev.privchat.serve"


class ServiceError(PrivchatError, RuntimeError):
    """A service problem phrased as a sentence for the owner."""


@dataclass
class ServiceResult:
    platform: str
    action: str
    path: str
    status: str
    exec_args: list[str] = field(default_factory=list)
    backup: str | None = None
    warnings: list[str] = field(default_factory=list)
    next_commands: list[str] = field(default_factory=list)
    content: str | None = None


def current_platform() -> str:
    if sys.platform.startswith("linux"):
        return "linux"
    if sys.platform == "darwin":
        return "macos"
    raise ServiceError(f"privchat service supports Linux (systemd) and macOS (launchd), not {sys.platform}; start `privchat serve` with your system's own tools.")


def privchat_executable() -> Path:
    """The absolute path of the privchat console script that is running now (or the one on PATH).

    A service manager starts with a minimal PATH, so the unit must name the script exactly.
    """
    argv0 = Path(sys.argv[0]) if sys.argv and sys.argv[0] else None
    if argv0 is not None and argv0.name == "privchat" and argv0.is_file():
        return argv0.resolve()
    beside_python = Path(sys.executable).parent / "privchat"
    if beside_python.is_file():
        return beside_python.absolute()
    found = shutil.which("privchat")
    if found:
        return Path(found).resolve()
    raise ServiceError("cannot find the privchat command: install privchat (pip install -e .) so the `privchat` script exists, then run this again.")


def exec_args(executable: Path, config_path: Path) -> list[str]:
    # --config is privchat's global option, so it goes before the subcommand.
    return [str(executable), "--config", str(config_path), "serve"]


def _systemd_quote(arg: str) -> str:
    """Quote one ExecStart word; systemd understands C-style double quotes, and % must be doubled."""
    arg = arg.replace("%", "%%")
    if arg and all(ch.isalnum() or ch in "/._-+:=@," for ch in arg):
        return arg
    return '"' + arg.replace("\\", "\\\\").replace('"', '\\"') + '"'


def render_systemd_unit(executable: Path, config_path: Path) -> str:
    """A systemd user unit: restart on crashes, started by the user's default target."""
    command = " ".join(_systemd_quote(a) for a in exec_args(executable, config_path))
    return f"""\
# privchat user service, written by `privchat service install`.
# Enable: systemctl --user daemon-reload && systemctl --user enable --now {UNIT_NAME}
# Start at boot without logging in: loginctl enable-linger $USER
# No PRIVCHAT_PASSPHRASE here on purpose: a unit file is not a secret store. Autostart needs
# storage.encryption: keyfile (the default); passphrase mode has to be started by hand.
[Unit]
Description=privchat: private chat backend on loopback for your own LLM
After=network.target

[Service]
Type=simple
ExecStart={command}
Restart=on-failure
RestartSec=5
UMask=0077

[Install]
WantedBy=default.target
"""


def render_launchd_plist(executable: Path, config_path: Path, log_dir: Path) -> str:
    """A launchd agent: started at login, restarted when it exits with an error."""
    plist = {
        "Label": AGENT_LABEL,
        "ProgramArguments": exec_args(executable, config_path),
        "RunAtLoad": True,
        "KeepAlive": {"SuccessfulExit": False},
        "ThrottleInterval": 5,
        "ProcessType": "Background",
        "Umask": 0o077,
        "StandardOutPath": str(log_dir / "privchat.out.log"),
        "StandardErrorPath": str(log_dir / "privchat.err.log"),
    }
    return plistlib.dumps(plist, sort_keys=False).decode("utf-8")


def service_path(platform: str, *, home: Path | None, unit_dir: Path | None) -> Path:
    """Where the unit or agent goes; $XDG_CONFIG_HOME and $HOME are honoured, --unit-dir/--home win."""
    if unit_dir is not None:
        return unit_dir / (UNIT_NAME if platform == "linux" else f"{AGENT_LABEL}.plist")
    base_home = home or Path.home()
    if platform == "linux":
        xdg = os.environ.get("XDG_CONFIG_HOME") if home is None else None
        return Path(xdg or base_home / ".config") / "systemd" / "user" / UNIT_NAME
    return base_home / "Library" / "LaunchAgents" / f"{AGENT_LABEL}.plist"


def log_dir_for(home: Path | None) -> Path:
    return (home or Path.home()) / "Library" / "Logs" / "privchat"


def _config_warnings(config_path: Path) -> list[str]:
    """Refuse a config the service would crash-loop on; warn about passphrase mode."""
    if not config_path.exists():
        return [f"{config_path} does not exist yet; the service will run with the defaults until you create it."]
    try:
        config = load_config(config_path)
    except ConfigError as exc:
        raise ServiceError(f"the config the service would use is invalid, so it would fail at every start: {exc}") from exc
    if config.storage.encryption == "passphrase":
        return ["storage.encryption is passphrase: a service cannot type the passphrase and privchat does not store it in the unit, "
                "so autostart will fail; switch to storage.encryption: keyfile to autostart, or start `privchat serve` by hand."]
    return []


def install(*, config_path: Path, platform: str, home: Path | None = None, unit_dir: Path | None = None,
            dry_run: bool = False, executable: Path | None = None) -> ServiceResult:
    config_path = Path(os.path.abspath(os.path.expanduser(str(config_path))))
    warnings = _config_warnings(config_path)
    exe = executable or privchat_executable()
    path = service_path(platform, home=home, unit_dir=unit_dir)
    if platform == "linux":
        content = render_systemd_unit(exe, config_path)
        commands = [f"systemctl --user daemon-reload && systemctl --user enable --now {UNIT_NAME}",
                    "loginctl enable-linger $USER    # optional: start at boot, before you log in",
                    f"systemctl --user status {UNIT_NAME}; journalctl --user -u {UNIT_NAME} -f    # check it"]
    else:
        logs = log_dir_for(home)
        content = render_launchd_plist(exe, config_path, logs)
        if not dry_run:
            logs.mkdir(parents=True, exist_ok=True)
        commands = [f"launchctl bootstrap gui/$(id -u) {shlex.quote(str(path))}",
                    f"launchctl print gui/$(id -u)/{AGENT_LABEL}    # check it; logs in {logs}"]
    change = write_file("service", path, content, mode=0o644, dry_run=dry_run)
    if change.status == "unchanged":
        commands = [f"(already installed; if it is not running:) {commands[0]}", *commands[1:]]
    return ServiceResult(platform=platform, action="install", path=str(path), status=change.status,
                         exec_args=exec_args(exe, config_path), backup=change.backup, warnings=warnings,
                         next_commands=commands, content=content if dry_run else None)


def uninstall(*, platform: str, home: Path | None = None, unit_dir: Path | None = None, dry_run: bool = False) -> ServiceResult:
    path = service_path(platform, home=home, unit_dir=unit_dir)
    if platform == "linux":
        commands = [f"systemctl --user stop {UNIT_NAME}", "systemctl --user daemon-reload"]
        wants = path.parent / "default.target.wants" / UNIT_NAME
    else:
        commands = [f"launchctl bootout gui/$(id -u)/{AGENT_LABEL}"]
        wants = None
    if not path.exists():
        return ServiceResult(platform=platform, action="uninstall", path=str(path), status="absent", next_commands=commands)
    if not dry_run:
        # `systemctl disable` refuses once the unit file is gone, so remove the enable link too.
        if wants is not None and wants.is_symlink():
            wants.unlink()
        path.unlink()
    return ServiceResult(platform=platform, action="uninstall", path=str(path),
                         status="would-remove" if dry_run else "removed", next_commands=commands)


def render(result: ServiceResult) -> str:
    lines = [f"{result.status}: {result.path}"]
    if result.content is not None:
        lines.append(result.content.rstrip("\n"))
    lines += [f"warning: {warning}" for warning in result.warnings]
    lines.append("Nothing was enabled. To start it now and at every login:" if result.action == "install"
                 else "Stop the running service:")
    lines += [f"  {command}" for command in result.next_commands]
    return "\n".join(lines)


def _common(args: argparse.Namespace) -> dict[str, Any]:
    platform = args.platform or current_platform()
    return {"platform": platform, "home": Path(args.home).expanduser() if args.home else None,
            "unit_dir": Path(args.unit_dir).expanduser() if args.unit_dir else None, "dry_run": args.dry_run}


def main_install(args: argparse.Namespace) -> int:
    """`privchat service install`; a ServiceError is reported by the CLI's one failure path."""
    result = install(config_path=Path(args.config) if args.config else default_config_path(), **_common(args))
    emit(args, asdict(result), render(result))
    return 0


def main_uninstall(args: argparse.Namespace) -> int:
    """`privchat service uninstall`; a ServiceError is reported by the CLI's one failure path."""
    result = uninstall(**_common(args))
    emit(args, asdict(result), render(result))
    return 0
