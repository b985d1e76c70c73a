"""`privchat doctor`: each check says what is wrong and how to fix it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from tests.support.server import run_cli, write_config


def _doctor(config: Path) -> tuple[int, dict]:
    result = run_cli(config, "doctor", "--json", check=False)
    return result.returncode, json.loads(result.stdout)


def test_a_fresh_setup_passes_and_changes_nothing(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    code, report = _doctor(config)
    assert code == 0 and report["ok"], report
    names = {c["name"] for c in report["checks"]}
    assert {"config", "llama-cpp-python", "model", "key file", "database"} <= names
    assert not (tmp_path / "data" / "privchat.sqlite3").exists()  # doctor only looks
    assert not (tmp_path / "keys" / "privchat.key").exists()


def test_problems_are_named_with_a_fix(server_factory, tmp_path: Path) -> None:
    server = server_factory(name="doctor")
    port_check = next(c for c in _doctor(server.config_path)[1]["checks"] if c["name"] == "server")
    assert port_check["ok"] and "model ready" in port_check["detail"]
    server.stop()
    config = server.config
    config["model"] = {"path": str(tmp_path / "missing.gguf")}
    server.config_path.write_text(yaml.safe_dump(config))
    (server.folder / "keys" / "privchat.key").chmod(0o644)
    code, report = _doctor(server.config_path)
    assert code == 1 and not report["ok"]
    failed = {c["name"]: c for c in report["checks"] if not c["ok"]}
    assert "does not exist" in failed["model"]["detail"] and "model.path" in failed["model"]["fix"]
    assert "chmod 600" in failed["key file"]["fix"]
    text = run_cli(server.config_path, "doctor", check=False).stdout
    assert "[FAIL] model" in text and "fix:" in text


def test_a_broken_config_is_reported(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("server:\n  port: not-a-port\n")
    code, report = _doctor(bad)
    assert code == 1 and report["checks"][0]["name"] == "config"
    assert "server.port" in report["checks"][0]["detail"]


@pytest.mark.slow  # seconds of subprocesses or real waits: not in the --fast loop
def test_tunnel_port_taken_by_another_program_is_named(tmp_path: Path) -> None:
    import socket

    config = write_config(tmp_path, {"access": {"team_domain": "https://myteam.cloudflareaccess.com", "aud": ["a" * 64],
                                                "public_hostnames": ["chat-api.example.com"]}})
    port = yaml.safe_load(config.read_text())["tunnel"]["port"]
    free = next(c for c in _doctor(config)[1]["checks"] if c["name"] == "tunnel port")
    assert free["ok"] and f"tunnel port {port} is free" in free["detail"]  # the control
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", port))  # bound, not listening: another program holding the port
        taken = next(c for c in _doctor(config)[1]["checks"] if c["name"] == "tunnel port")
    assert not taken["ok"] and f"tunnel port {port} is taken" in taken["detail"] and "tunnel.port" in taken["fix"]


def _placement(config: Path, home: Path) -> dict:
    result = run_cli(config, "doctor", "--json", check=False, env={"HOME": str(home)})
    return next(c for c in json.loads(result.stdout)["checks"] if c["name"] == "key placement")


@pytest.mark.slow  # seconds of subprocesses or real waits: not in the --fast loop
def test_doctor_warns_when_the_key_file_would_share_a_backup_with_the_database(tmp_path: Path) -> None:
    """Negative control: before the change doctor had no "key placement" check
    (StopIteration here), and nothing told the owner that one home backup held key and data."""
    import os
    import uuid

    home = tmp_path / "home"
    config = write_config(home)  # data and key file both under this home folder
    beside = _placement(config, home)
    data = yaml.safe_load(config.read_text())["storage"]
    assert beside["ok"] and beside["warning"], beside
    assert data["key_file"] in beside["detail"] and str(Path(data["data_dir"]) / "privchat.sqlite3") in beside["detail"]
    assert "home folder" in beside["detail"] and "same backup" in beside["detail"], beside
    assert "storage.key_file" in beside["fix"] and "passphrase" in beside["fix"], beside
    text = run_cli(config, "doctor", check=False, env={"HOME": str(home)}).stdout
    assert "[note] key placement" in text and "fix: " in text.split("[note] key placement", 1)[1], text

    # Outside the home folder but on the same filesystem: still one backup of that disk.
    outside = write_config(tmp_path / "elsewhere")
    same_disk = _placement(outside, home)
    assert same_disk["warning"] and "same filesystem" in same_disk["detail"], same_disk

    # The key file on another volume: no warning.
    other_volume = Path("/dev/shm")
    if not other_volume.is_dir() or os.stat(other_volume).st_dev == os.stat(tmp_path).st_dev:
        pytest.skip("no second filesystem to put the key file on")
    key_dir = other_volume / f"privchat-test-{uuid.uuid4().hex}"
    settings = yaml.safe_load(outside.read_text())
    settings["storage"]["key_file"] = str(key_dir / "privchat.key")
    outside.write_text(yaml.safe_dump(settings))
    apart = _placement(outside, home)
    assert apart["ok"] and not apart["warning"] and "another filesystem" in apart["detail"], apart


def test_doctor_says_the_passphrase_key_is_stored_nowhere(tmp_path: Path) -> None:
    config = write_config(tmp_path, {"storage": {"encryption": "passphrase"}})
    placement = _placement(config, tmp_path)
    assert placement["ok"] and not placement["warning"] and "passphrase" in placement["detail"], placement


# --- a remotely-managed tunnel: cloudflared run with a token ----------------------

TOKEN = "eyJhIjoiYWNjb3VudCIsInQiOiJ0dW5uZWwiLCJzIjoic2VjcmV0In0="


def _fake_proc(root: Path, processes: dict[int, list[str]]) -> Path:
    for pid, argv in processes.items():
        (root / str(pid)).mkdir(parents=True)
        (root / str(pid) / "cmdline").write_bytes(b"\0".join(a.encode() for a in argv) + b"\0")
    (root / "self").mkdir(parents=True, exist_ok=True)  # not a pid: skipped
    return root


def test_token_run_cloudflared_is_found_in_proc_and_its_token_never_shown(tmp_path: Path) -> None:
    from privchat.commands.doctor import token_tunnel_processes

    proc = _fake_proc(tmp_path / "proc", {
        12: ["/usr/bin/python3", "-m", "privchat", "serve"],
        34: ["/usr/local/bin/cloudflared", "--no-autoupdate", "tunnel", "run", "--token", TOKEN],
        56: ["cloudflared", "--config", "/home/me/.cloudflared/config.yml", "tunnel", "run"],  # locally managed
        78: ["/usr/bin/cloudflared", "tunnel", "run", f"--token={TOKEN}"],
        90: ["/usr/bin/vim", "notes about cloudflared tunnel run --token"],
    })
    found = token_tunnel_processes(proc)
    assert found == ["pid 34: cloudflared --no-autoupdate tunnel run --token …", "pid 78: cloudflared tunnel run --token=…"]
    assert not any(TOKEN in line for line in found)
    assert token_tunnel_processes(tmp_path / "no-proc") == []


def test_token_run_cloudflared_service_is_found(tmp_path: Path) -> None:
    from privchat.commands.doctor import token_tunnel_units

    units = tmp_path / "systemd"
    units.mkdir()
    (units / "cloudflared.service").write_text(
        f"[Service]\nExecStart=/usr/bin/cloudflared --no-autoupdate tunnel run --token {TOKEN}\n")
    (units / "cloudflared-local.service").write_text("[Service]\nExecStart=/usr/bin/cloudflared --config /etc/cloudflared/config.yml tunnel run\n")
    (units / "other.service").write_text(f"ExecStart=/usr/bin/cloudflared tunnel run --token {TOKEN}\n")
    assert token_tunnel_units((units, tmp_path / "missing")) == [str(units / "cloudflared.service")]


def _doctor_in_process(config: Path, monkeypatch: pytest.MonkeyPatch, proc: Path, unit_dirs: tuple[Path, ...]) -> dict:
    import argparse
    import asyncio

    from privchat.commands import doctor

    monkeypatch.setattr(doctor, "PROC_ROOT", proc)
    monkeypatch.setattr(doctor, "UNIT_DIRS", unit_dirs)
    checks = asyncio.run(doctor.run_checks(argparse.Namespace(config=str(config))))
    return {c.name: c for c in checks}


ACCESS = {"team_domain": "https://myteam.cloudflareaccess.com", "aud": ["a" * 64], "public_hostnames": ["chat-api.example.com"]}


def test_doctor_recognises_a_token_run_tunnel_and_says_what_it_cannot_check(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = write_config(tmp_path, {"access": ACCESS})
    tunnel_port = yaml.safe_load(config.read_text())["tunnel"]["port"]
    proc = _fake_proc(tmp_path / "proc", {34: ["/usr/bin/cloudflared", "tunnel", "run", "--token", TOKEN]})
    checks = _doctor_in_process(config, monkeypatch, proc, ())
    remote = checks["remote tunnel"]
    assert remote.ok and remote.warning
    assert "remotely-managed tunnel" in remote.detail and "pid 34" in remote.detail and TOKEN not in remote.detail
    assert "cannot check from here" in remote.detail
    assert f"chat-api.example.com goes to http://127.0.0.1:{tunnel_port}" in remote.detail
    assert "team https://myteam.cloudflareaccess.com" in remote.detail and "a" * 64 in remote.detail
    assert "privchat tunnel setup --remote" in remote.fix
    # No cloudflared config file is expected for it: the "tunnel config" check does not fail.
    assert "tunnel config" not in checks or checks["tunnel config"].ok


def test_doctor_without_any_tunnel_names_both_ways_to_set_one_up(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = write_config(tmp_path, {"access": ACCESS})
    checks = _doctor_in_process(config, monkeypatch, _fake_proc(tmp_path / "proc", {}), ())
    assert "remote tunnel" not in checks
    failed = checks["tunnel config"]
    assert not failed.ok and "no cloudflared runs with a token" in failed.detail
    assert "privchat tunnel setup --remote" in failed.fix


def test_doctor_says_a_token_tunnel_cannot_reach_privchat_without_access_settings(tmp_path: Path,
                                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    units = tmp_path / "units"
    units.mkdir()
    (units / "cloudflared.service").write_text(f"ExecStart=/usr/bin/cloudflared tunnel run --token {TOKEN}\n")
    checks = _doctor_in_process(write_config(tmp_path), monkeypatch, _fake_proc(tmp_path / "proc", {}), (units,))
    remote = checks["remote tunnel"]
    assert not remote.ok and str(units / "cloudflared.service") in remote.detail and TOKEN not in remote.detail
    assert "privchat tunnel setup --remote" in remote.fix
