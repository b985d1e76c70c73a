"""`privchat service install|uninstall`: a well-formed systemd unit and launchd agent, nothing enabled."""

from __future__ import annotations

import json
import plistlib
import shutil
import subprocess
from pathlib import Path

import pytest

from privchat.commands.service import install, render_launchd_plist, render_systemd_unit, uninstall
from privchat.commands.cli import main


def run_cli(*argv: str) -> int:
    """The real CLI in this process: its exit code (failures are reported by cli.main's one path)."""
    with pytest.raises(SystemExit) as exited:
        main(list(argv))
    return int(exited.value.code or 0)


def unit_fields(text: str) -> dict[str, str]:
    fields: dict[str, str] = {}
    for line in text.splitlines():
        if "=" in line and not line.startswith(("#", "[")):
            key, value = line.split("=", 1)
            fields[key.strip()] = value.strip()
    return fields


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "cfg" / "config.yaml"
    path.parent.mkdir()
    path.write_text("server:\n  port: 8765\n", encoding="utf-8")
    return path


def test_install_writes_systemd_user_unit(tmp_path: Path, config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    home = tmp_path / "home"
    assert run_cli("--config", str(config), "service", "install", "--home", str(home), "--platform", "linux") == 0
    unit = home / ".config" / "systemd" / "user" / "privchat.service"
    fields = unit_fields(unit.read_text())
    exec_start = fields["ExecStart"].split()
    assert Path(exec_start[0]).is_absolute() and Path(exec_start[0]).name == "privchat"
    assert exec_start[1:] == ["--config", str(config), "serve"]
    assert fields["Restart"] == "on-failure"
    assert fields["RestartSec"] == "5"
    assert fields["WantedBy"] == "default.target"
    assert "PRIVCHAT_PASSPHRASE" not in "".join(f"{k}={v}" for k, v in fields.items())
    out = capsys.readouterr().out
    assert "systemctl --user daemon-reload && systemctl --user enable --now privchat.service" in out
    assert "loginctl enable-linger $USER" in out


def test_dry_run_writes_nothing(tmp_path: Path, config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    home = tmp_path / "home"
    assert run_cli("--config", str(config), "service", "install", "--dry-run", "--json", "--home", str(home), "--platform", "linux") == 0
    result = json.loads(capsys.readouterr().out)
    assert result["status"] == "would-create" and "ExecStart=" in result["content"]
    assert not home.exists()


def test_install_is_idempotent(tmp_path: Path, config: Path) -> None:
    first = install(config_path=config, platform="linux", unit_dir=tmp_path / "units")
    second = install(config_path=config, platform="linux", unit_dir=tmp_path / "units")
    assert (first.status, second.status) == ("created", "unchanged")
    assert [p.name for p in (tmp_path / "units").iterdir()] == ["privchat.service"]


def test_xdg_config_home_is_honoured(tmp_path: Path, config: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    result = install(config_path=config, platform="linux")
    assert Path(result.path) == tmp_path / "xdg" / "systemd" / "user" / "privchat.service"
    assert uninstall(platform="linux").status == "removed"


def test_systemd_analyze_verify(tmp_path: Path, config: Path) -> None:
    tool = shutil.which("systemd-analyze")
    if tool is None:
        pytest.skip("systemd-analyze is not installed here, so the unit cannot be checked by systemd itself")
    result = install(config_path=config, platform="linux", unit_dir=tmp_path / "units")
    proc = subprocess.run([tool, "verify", result.path], capture_output=True, text=True, timeout=60)
    if "Failed to initialize manager" in proc.stderr or "Failed to setup manager" in proc.stderr:
        pytest.skip(f"systemd-analyze cannot start a manager in this environment: {proc.stderr.strip()}")
    problems = [line for line in proc.stderr.splitlines() if "privchat.service" in line]
    assert proc.returncode == 0 and not problems, proc.stderr


def test_unit_quotes_paths_with_spaces(tmp_path: Path) -> None:
    text = render_systemd_unit(Path("/opt/my apps/bin/privchat"), Path("/home/me/100% conf/config.yaml"))
    assert 'ExecStart="/opt/my apps/bin/privchat" --config "/home/me/100%% conf/config.yaml" serve' in text


def test_launchd_plist(tmp_path: Path) -> None:
    text = render_launchd_plist(Path("/usr/local/bin/privchat"), Path("/Users/me/.config/privchat/config.yaml"),
                                tmp_path / "Logs" / "privchat")
    plist = plistlib.loads(text.encode("utf-8"))
    assert plist["Label"] == "dev.privchat.serve"
    assert plist["RunAtLoad"] is True
    assert plist["KeepAlive"] == {"SuccessfulExit": False}
    assert plist["ProgramArguments"] == ["/usr/local/bin/privchat", "--config", "/Users/me/.config/privchat/config.yaml", "serve"]
    assert plist["StandardOutPath"].startswith(str(tmp_path / "Logs" / "privchat"))
    assert plist["StandardErrorPath"].startswith(str(tmp_path / "Logs" / "privchat"))
    assert "EnvironmentVariables" not in plist


def test_macos_install_into_home(tmp_path: Path, config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    home = tmp_path / "home"
    assert run_cli("--config", str(config), "service", "install", "--home", str(home), "--platform", "macos") == 0
    agent = home / "Library" / "LaunchAgents" / "dev.privchat.serve.plist"
    assert plistlib.loads(agent.read_bytes())["ProgramArguments"][-1] == "serve"
    assert (home / "Library" / "Logs" / "privchat").is_dir()
    assert f"launchctl bootstrap gui/$(id -u) {agent}" in capsys.readouterr().out
    assert run_cli("service", "uninstall", "--home", str(home), "--platform", "macos") == 0
    assert not agent.exists()


def test_uninstall_removes_unit_and_enable_link(tmp_path: Path, config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    home = tmp_path / "home"
    assert run_cli("--config", str(config), "service", "install", "--home", str(home), "--platform", "linux") == 0
    unit = home / ".config" / "systemd" / "user" / "privchat.service"
    wants = unit.parent / "default.target.wants"
    wants.mkdir()
    (wants / "privchat.service").symlink_to(unit)
    capsys.readouterr()
    assert run_cli("service", "uninstall", "--home", str(home), "--platform", "linux") == 0
    assert not unit.exists() and not (wants / "privchat.service").is_symlink()
    assert "systemctl --user stop privchat.service" in capsys.readouterr().out
    assert uninstall(platform="linux", home=home).status == "absent"


def test_passphrase_mode_warns(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text("storage:\n  encryption: passphrase\n", encoding="utf-8")
    result = install(config_path=config, platform="linux", unit_dir=tmp_path / "units", dry_run=True)
    assert any("keyfile" in warning for warning in result.warnings)


def test_invalid_config_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "config.yaml"
    config.write_text("server:\n  host: 0.0.0.0\n", encoding="utf-8")
    assert run_cli("--config", str(config), "service", "install", "--unit-dir", str(tmp_path / "u"), "--platform", "linux") == 2
    assert "server.host" in capsys.readouterr().err
    assert not (tmp_path / "u").exists()
