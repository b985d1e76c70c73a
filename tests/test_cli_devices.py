"""`privchat devices`: list, rename and revoke by id or by the fingerprint people read."""

from __future__ import annotations

import json
import re
import sqlite3
from pathlib import Path

from tests.support.server import LiveServer


def test_list_rename_revoke_by_fingerprint(shared_server: LiveServer) -> None:
    client = shared_server.pair(name="laptop")
    listed = json.loads(shared_server.cli("devices", "list", "--json").stdout)["devices"]
    mine = next(d for d in listed if d["device_id"] == client.device.device_id)
    assert mine["name"] == "laptop" and mine["status"] == "active"
    assert client.get("/api/auth/device").json()["fingerprint"] == mine["fingerprint"]
    prefix = mine["fingerprint"][:9]  # "ABCD EF01": what a person types from the screen
    renamed = json.loads(shared_server.cli("devices", "rename", prefix, "work laptop", "--json").stdout)
    assert renamed["name"] == "work laptop"
    assert client.get("/api/auth/device").json()["name"] == "work laptop"
    text = shared_server.cli("devices", "list").stdout
    assert "work laptop" in text and mine["fingerprint"] in text
    missing = shared_server.cli("devices", "revoke", "0000 0000 0000", check=False)
    assert missing.returncode == 1 and "no device has the id or fingerprint" in missing.stderr
    assert shared_server.cli("devices", "rename", prefix, "   ", check=False).returncode == 1
    revoked = json.loads(shared_server.cli("devices", "revoke", mine["device_id"], "--json").stdout)
    assert revoked["status"] == "revoked"
    response = client.get("/api/auth/device")
    assert response.status_code == 403 and response.json()["error"]["code"] == "device_revoked"


def test_a_device_id_starting_with_a_dash_is_read_as_an_id() -> None:
    from privchat.commands.cli import _shield_device_ids, build_parser

    device_id = "-" + "A" * 42
    args = build_parser().parse_args(_shield_device_ids(["devices", "revoke", device_id]))
    assert args.device.strip() == device_id
    assert _shield_device_ids(["--json"]) == ["--json"]


def test_rename_refuses_control_and_bidi_characters(shared_server: LiveServer) -> None:
    """Negative control: before the change both renames succeeded."""
    client = shared_server.pair(name="phone")
    for name in ("\x1b[31mred", "phone\u202egnp.exe"):
        result = shared_server.cli("devices", "rename", client.device.device_id, name, check=False)
        assert result.returncode == 1 and "control or text-direction" in result.stderr, result
    assert client.get("/api/auth/device").json()["name"] == "phone"


def _store_name_directly(server: LiveServer, device_id: str, name: str) -> None:
    """A name stored by an older privchat, before names were checked."""
    database = Path(server.config["storage"]["data_dir"]) / "privchat.sqlite3"
    with sqlite3.connect(database, timeout=10) as conn:
        conn.execute("UPDATE devices SET name = ? WHERE id = ?", (name, device_id))


ODD = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def test_an_old_stored_name_cannot_rewrite_the_terminal(shared_server: LiveServer) -> None:
    """`devices list` (text and JSON) prints odd characters escaped. Negative control: before the
    change the ESC, CSI and RLO characters reached the terminal as they were."""
    client = shared_server.pair(name="to be spoofed")
    hostile = "\x1b[2K\rOwner laptop \x9b1m\u202egnp.exe"
    _store_name_directly(shared_server, client.device.device_id, hostile)
    text = shared_server.cli("devices", "list").stdout
    assert not ODD.search(text.replace("\n", "")), repr(text)
    assert "\\x1b[2K\\x0dOwner laptop" in text  # escaped, visible, and cut to the column's width
    listed = shared_server.cli("devices", "list", "--json").stdout
    assert not ODD.search(listed.replace("\n", "")), repr(listed)
    assert next(d for d in json.loads(listed)["devices"] if d["device_id"] == client.device.device_id)["name"] == hostile


def test_the_paired_line_escapes_the_name(tmp_path: Path, capsys) -> None:
    """`privchat pair --wait` prints "Paired: <name>  fingerprint ..." for the owner to compare."""
    import asyncio
    import time

    from privchat.commands.cli import _wait_for_device
    from privchat.config import config_from_dict
    from privchat.storage.db import Database
    from tests.support.signing import TestDevice

    async def scenario() -> int:
        config = config_from_dict({"storage": {"data_dir": str(tmp_path / "d"), "key_file": str(tmp_path / "k")}})
        database = await Database.open(config)
        try:
            device = TestDevice()
            await database.conn.execute(
                "INSERT INTO devices (id, name, public_jwk, created_at) VALUES (?, ?, ?, ?)",
                (device.device_id, "\x1b[1A\x1b[2KPaired: Owner\u202e", json.dumps(device.public_jwk), time.time() + 1))
            return await _wait_for_device(database, time.time() + 5, quiet=False)
        finally:
            await database.close()

    assert asyncio.run(scenario()) == 0
    out = capsys.readouterr().out
    assert out.startswith("Paired: \\x1b[1A\\x1b[2KPaired: Owner\\u202e  fingerprint"), repr(out)
    assert not ODD.search(out.replace("\n", "")), repr(out)


def test_every_refusal_is_reported_once_by_the_cli(tmp_path, capsys) -> None:
    """One root error, one report: a refused command prints its sentence under its own name and exits
    non-zero; with --json the same sentence comes as {"ok": false, "error"} on stdout."""
    import json as _json

    import pytest as _pytest

    from privchat.commands.cli import main

    bad = tmp_path / "bad.yaml"
    bad.write_text("server:\n  port: not-a-port\n", encoding="utf-8")
    with _pytest.raises(SystemExit) as exited:
        main(["--config", str(bad), "tunnel", "validate", str(tmp_path / "none.yml")])
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("privchat tunnel validate: server.port") and err.count("\n") == 1, err
    with _pytest.raises(SystemExit) as exited:
        main(["--config", str(bad), "service", "install", "--json", "--unit-dir", str(tmp_path / "u"), "--platform", "linux"])
    report = _json.loads(capsys.readouterr().out)
    assert exited.value.code == 2 and report["ok"] is False and "server.port" in report["error"]
