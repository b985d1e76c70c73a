"""the rough edges on the server's side (the page's are in pages/test/rough-edges.test.js)."""

from __future__ import annotations

import tomllib
from pathlib import Path

from tests.support.server import LiveServer, SignedClient, TestDevice

REPO = Path(__file__).resolve().parents[1]


def test_a_reply_read_back_from_history_keeps_its_tokens_speed_and_finish_reason(shared_client: SignedClient) -> None:
    events = shared_client.chat("Count from one to fifty, one number per line.", max_tokens=3)
    done = next(data for event, data in events if event == "done")
    assert done["finish_reason"] in ("stop", "length")
    conversation = shared_client.get(f"/api/history/{events[0][1]['conversation_id']}").json()
    reply = conversation["messages"][-1]
    assert reply["role"] == "assistant"
    assert reply["finish_reason"] == done["finish_reason"]
    assert reply["completion_tokens"] == done["usage"]["completion_tokens"] > 0
    assert reply["tokens_per_second"] == done["timings"]["tokens_per_second"]
    assert reply["ttft_ms"] == done["timings"]["ttft_ms"]
    # ... and an export carries them, so an import gives back the same line under the reply
    exported = shared_client.get("/api/history/export?format=json").json()
    stored = next(m for c in exported["conversations"] for m in c["messages"] if m["id"] == reply["id"])
    assert stored["finish_reason"] == done["finish_reason"] and stored["tokens_per_second"] == reply["tokens_per_second"]


def test_a_used_code_is_reported_as_used_and_is_not_a_wrong_try(shared_server: LiveServer) -> None:
    from tests.test_security_pairing import register

    code = shared_server.pair_code()
    assert register(shared_server, TestDevice(name="first"), code).status_code == 201
    for _ in range(6):  # more than the wrong-try limit: a used code locks nothing
        response = register(shared_server, TestDevice(name="again"), code)
        assert response.status_code == 403
        assert response.json()["error"]["code"] == "pairing_used"
        assert "already used" in response.json()["error"]["message"]
    assert register(shared_server, TestDevice(name="next"), shared_server.pair_code()).status_code == 201


def test_settings_carry_the_defaults_for_reset(shared_client: SignedClient) -> None:
    body = shared_client.get("/api/settings").json()
    assert set(body["defaults"]) == {"system_prompt", "temperature", "max_tokens", "default_model"}
    changed = shared_client.put("/api/settings", {"temperature": 1.3}).json()
    assert changed["temperature"] == 1.3 and changed["defaults"] == body["defaults"]
    shared_client.put("/api/settings", {"temperature": body["temperature"]})


def test_pair_says_where_the_fingerprint_is_shown(shared_server: LiveServer) -> None:
    out = shared_server.cli("pair").stdout
    assert "privchat pair --wait" in out and "fingerprint" in out


def test_the_licence_is_an_spdx_expression() -> None:
    """A `license = {text = …}` table makes setuptools print three deprecation warnings on install."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    assert project["project"]["license"] == "MIT"
    assert any(req.replace(" ", "").startswith("setuptools>=77") for req in project["build-system"]["requires"])
