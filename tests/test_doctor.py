"""`privchat doctor`: each check says what is wrong and how to fix it."""

from __future__ import annotations

import json
from pathlib import Path

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
