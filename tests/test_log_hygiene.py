"""Logs never contain message text, keys, pairing codes or signatures."""

from __future__ import annotations

import json

from tests.support.server import SignedClient
from tests.support.signing import TestDevice

SECRET = "the vault combination is 31-41-59 and my dog is Bartholomew"


def test_server_and_cli_output_hold_no_secrets(server_factory) -> None:
    server = server_factory(name="logs")
    pairing = json.loads(server.cli("pair", "--json").stdout)
    device = TestDevice()
    client = SignedClient(server.url, device)
    assert client.register(pairing["code"], "log test").status_code == 201
    signed = device.sign("GET", "/api/history")
    events = client.chat(SECRET, max_tokens=24)
    reply = "".join(data["text"] for kind, data in events if kind == "token")
    assert client.put("/api/settings", {"system_prompt": SECRET + " prompt"}).status_code == 200
    # Failures get logged too: a bad signature, a wrong code, a broken body.
    assert client.register("WRONG-CODE1", "x").status_code in (403, 409)
    assert client.get("/api/history", sign={"tag": "other"}).status_code == 401
    server.stop()
    log = server.log()
    assert "listening on" in log  # control: the log was captured
    key = (server.folder / "keys" / "privchat.key").read_text().strip()
    for needle in (SECRET, "Bartholomew", reply.strip()[:30], pairing["code"], pairing["code"].replace("-", ""),
                   key, signed["Signature"][6:40], device.public_jwk["x"]):
        assert needle and needle not in log, f"{needle!r} appears in the server log"
