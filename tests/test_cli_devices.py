"""`privchat devices`: list, rename and revoke by id or by the fingerprint people read."""

from __future__ import annotations

import json

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
    from privchat.cli import _shield_device_ids, build_parser

    device_id = "-" + "A" * 42
    args = build_parser().parse_args(_shield_device_ids(["devices", "revoke", device_id]))
    assert args.device.strip() == device_id
    assert _shield_device_ids(["--json"]) == ["--json"]
