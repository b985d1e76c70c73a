"""Pairing by a typed code: an OPAQUE login (auth/pake.py, docs/E2E.md "Pairing").

The code typed on a phone has no pin for the server key: the page seals to whatever key plain
health names. An edge that swaps the key reads what the page sends. Before, that was an HMAC keyed
by the code, so a capture was enough to search the code offline; now it is an OPAQUE transcript,
and the only thing the edge can do with a guess is try it online, where it counts.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import itertools
from typing import Any

import pytest
from opaquepy import lib as opaque

from privchat.auth.pairing import ALPHABET
from tests.support.e2e import SealError, ServerKey, code_mac
from tests.support.inprocess import InProcessServer
from tests.support.server import normalised_code, session_mac
from tests.support.signing import TestDevice


def test_a_typed_code_pairs_through_an_opaque_login(apps: Any) -> None:
    app = apps()
    code = app.pair_code()
    client = app.client(TestDevice())
    registered = client.register_typed(code, "phone")  # checks the key confirmation itself
    assert registered.status_code == 201, registered.text
    assert client.get("/api/settings").status_code == 200
    # The code is used: another typed pairing with it finds no open code.
    other = TestDevice()
    again = app.client(other).post("/api/auth/pairing", {"request": opaque.login_client(normalised_code(code))[0],
                                                          "public_key": other.public_jwk})
    assert again.status_code == 403 and again.json()["error"]["code"] == "pairing_used", again.text


def test_a_wrong_typed_code_fails_in_the_page_and_counts_as_a_wrong_try(apps: Any) -> None:
    app = apps({"auth": {"pairing_max_attempts": 3}})
    code = app.pair_code()
    wrong = ("Z" if code[0] != "Z" else "Y") + code[1:]
    for _ in range(3):
        with pytest.raises(SealError) as refused:
            app.client(TestDevice()).register_typed(wrong)
        assert refused.value.code == "pairing_invalid"
    # Three starts, none finished: the next one is refused, and the right code is void.
    device = TestDevice()
    locked = app.client(device).post("/api/auth/pairing", {"request": opaque.login_client(normalised_code(code))[0],
                                                            "public_key": device.public_jwk})
    assert locked.status_code == 423 and locked.json()["error"]["code"] == "pairing_locked", locked.text
    voided = app.client(TestDevice()).register(code)  # the same code by its link: void too
    assert voided.status_code == 423, voided.text
    assert app.client(TestDevice()).register_typed(app.pair_code()).status_code == 201  # the owner's new code works


def test_a_right_login_takes_back_the_try_its_start_counted(apps: Any) -> None:
    app = apps({"auth": {"pairing_max_attempts": 2}})
    for _ in range(4):  # more pairings than the limit: honest ones never lock anyone out
        client = app.client(TestDevice())
        assert client.register_typed(app.pair_code()).status_code == 201


def test_a_device_proof_made_for_another_key_is_refused_and_registers_nothing(apps: Any) -> None:
    """A key swapped on the path: the page seals to the edge's key and binds its proof to that kid;
    the edge relays the login to the real server, which finds the proof wrong (a wrong try), so the
    edge gains no device, and the page would refuse the confirmation anyway."""
    app = apps()
    code = normalised_code(app.pair_code())
    page = TestDevice()
    client = app.client(page)
    first, state = opaque.login_client(code)
    started = client.post("/api/auth/pairing", {"request": first, "public_key": page.public_jwk})
    finalization, session_key = opaque.login_client_finish(state, code, started.json()["response"])
    edge_kid = ServerKey.throwaway().kid
    body = {"pairing_id": started.json()["pairing_id"], "finalization": finalization,
            "device_proof": session_mac(b"privchat pairing device v2", session_key, page.device_id, edge_kid),
            "public_key": page.public_jwk, "name": "phone"}
    refused = client.post("/api/auth/device", body)
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "pairing_invalid", refused.text
    assert client.get("/api/settings").status_code == 401  # nothing registered


def candidates(code: str, unknown: int) -> list[str]:
    """The code with its last ``unknown`` characters unknown: what a test that knows the alphabet
    searches (2 characters: 1,024 candidates; the real code has 10, 2^50)."""
    return [code[: len(code) - unknown] + "".join(tail) for tail in itertools.product(ALPHABET, repeat=unknown)]


@pytest.mark.slow
def test_a_capture_of_a_typed_pairing_lets_no_candidate_be_checked_offline(apps: Any) -> None:
    """What the edge captures of a typed-code pairing through a swapped key (every message: it holds
    the key they were sealed to), searched with a code reduced to 1,024 candidates. The negative
    control: the version 1 proof, HMAC(code, device, kid), captured the same way, gives the code
    away at once. On the OPAQUE capture the search's checks mark no candidate, the right one
    included: the old HMAC check, the new device proof (keyed by a session key that comes only
    from the login), and a fresh login finished against the captured server message."""
    app = apps()
    code = app.pair_code().replace("-", "")
    page = TestDevice()
    edge_kid = ServerKey.throwaway().kid  # the swapped key the page sealed to
    search = candidates(code, 2)
    assert code in search and len(search) == 1024

    # The negative control: the old proof.
    old_proof = code_mac(b"privchat pairing proof v1", code, page.device_id, edge_kid)
    found = [c for c in search if code_mac(b"privchat pairing proof v1", c, page.device_id, edge_kid) == old_proof]
    assert found == [code]

    # The OPAQUE capture: the page's two messages, the server's answer, the device proof.
    client = app.client(page)
    first, state = opaque.login_client(normalised_code(code))
    started = client.post("/api/auth/pairing", {"request": first, "public_key": page.public_jwk}).json()
    finalization, session_key = opaque.login_client_finish(state, code, started["response"])
    proof = session_mac(b"privchat pairing device v2", session_key, page.device_id, edge_kid)
    capture = {"request": first, "response": started["response"], "finalization": finalization, "device_proof": proof}

    def marks(candidate: str) -> bool:
        if code_mac(b"privchat pairing proof v1", candidate, page.device_id, edge_kid) == capture["device_proof"]:
            return True
        # Key an HMAC with the candidate itself, or with anything derived from it without the login.
        for key in (candidate.encode(), hashlib.sha256(candidate.encode()).digest()):
            mac = hmac.new(key, b"\x00".join((b"privchat pairing device v2", page.device_id.encode(), edge_kid.encode())),
                           hashlib.sha256).digest()
            if base64.urlsafe_b64encode(mac).rstrip(b"=").decode() == capture["device_proof"]:
                return True
        # Finish a fresh login with the candidate against the captured server message (Argon2id each
        # time: done for the candidates that differ from the code in the last character only).
        if candidate[:-1] != code[:-1]:
            return False
        _first, fresh = opaque.login_client(candidate)
        try:
            opaque.login_client_finish(fresh, candidate, capture["response"])
        except ValueError:
            return False
        return True

    assert [c for c in search if marks(c)] == []


def test_a_typed_pairing_sealed_to_a_swapped_key_never_reaches_the_server(apps: Any) -> None:
    """The page sealed to a key the server does not hold: its start is refused before anything is
    opened, so the server counts nothing and the edge, which must relay under its own device key,
    gets one try per start (the test above shows a start gives it no offline search)."""
    app = apps()
    app.pair_code()
    client = app.client(TestDevice())
    refused = client.post("/api/auth/pairing", {"request": opaque.login_client("ABCDE12345")[0],
                                                 "public_key": client.device.public_jwk}, server_key=ServerKey.throwaway())
    assert refused.status_code == 400 and refused.json()["error"]["code"] == "e2e_key_unknown"


@pytest.fixture
def apps(tmp_path: Any) -> Any:
    started: list[InProcessServer] = []

    def make(overrides: dict | None = None) -> InProcessServer:
        server = InProcessServer(tmp_path / f"app{len(started)}", overrides)
        server.start()
        started.append(server)
        return server

    yield make
    for server in started:
        server.stop()


def test_pair_wait_says_each_refused_try(server_factory: Any) -> None:
    """`privchat pair --wait` tells the owner of a try that did not pair (here a typed login given up
    after its first step: the page found the code wrong), then of the device that did."""
    import os
    import subprocess
    import threading
    import time

    from tests.support.server import PRIVCHAT, REPO

    server = server_factory({"model": {"enabled": False}})
    waiting = subprocess.Popen([*PRIVCHAT, "--config", str(server.config_path), "pair", "--wait"], stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True, cwd=REPO, env=dict(os.environ))
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(iter(waiting.stdout.readline, "")), daemon=True)  # type: ignore[union-attr]
    reader.start()
    try:
        deadline = time.monotonic() + 60
        while not any(line.startswith("Pairing code:") for line in lines):
            assert time.monotonic() < deadline and waiting.poll() is None, lines
            time.sleep(0.05)
        code = next(line for line in lines if line.startswith("Pairing code:")).split()[2]
        wrong = ("Z" if code[0] != "Z" else "Y") + code[1:]
        with pytest.raises(SealError):
            SignedClientFor(server).register_typed(wrong)
        while not any("A pairing try was refused (1 of 5" in line for line in lines):
            assert time.monotonic() < deadline + 30, lines
            time.sleep(0.1)
        assert SignedClientFor(server).register_typed(code).status_code == 201
        assert waiting.wait(30) == 0
        reader.join(10)
        assert any(line.startswith("Paired:") for line in lines), lines
    finally:
        if waiting.poll() is None:
            waiting.kill()


def SignedClientFor(server: Any) -> Any:  # noqa: N802 - reads as the client it makes
    from tests.support.server import SignedClient

    return SignedClient(server.url, TestDevice())


@pytest.mark.slow  # seconds of subprocesses or real waits: not in the --fast loop
def test_the_pages_opaque_client_pairs_with_the_backend(apps: Any) -> None:
    """Two implementations of the same crate meet: the page's code (@serenity-kit/opaque, through
    pages/test/e2e-interop.mjs) logs in with a typed code against the backend (opaquepy), its device
    proof is accepted and the backend's key confirmation is the one the page's code computes. The
    control: a wrong code fails in the page's code, and nothing more is sent."""
    from tests.test_e2e_interop import NODE, node

    if NODE is None:
        pytest.skip("needs node and the page's node_modules (cd pages && npm ci)")
    app = apps()
    code = app.pair_code()
    page = TestDevice()
    client = app.client(page)
    first = node("pake-client", {"code": code})
    assert "error" not in first, first
    started = client.post("/api/auth/pairing", {"request": first["request"], "public_key": page.public_jwk})
    assert started.status_code == 200, started.text
    finished = node("pake-client", {"code": code, "state": first["state"], "response": started.json()["response"]})
    assert "error" not in finished, finished
    kid = client.server_key().kid
    macs = node("pake-macs", {"session_key": finished["session_key"], "device_id": page.device_id, "kid": kid})
    registered = client.post("/api/auth/device", {"pairing_id": started.json()["pairing_id"], "finalization": finished["finalization"],
                                                  "device_proof": macs["device_proof"], "public_key": page.public_jwk, "name": "node"})
    assert registered.status_code == 201, registered.text
    assert registered.json()["key_confirmation"] == macs["key_confirmation"]
    # The control: the same login with a wrong code fails in the page's code.
    other = TestDevice()
    wrong_code = ("Z" if code[0] != "Z" else "Y") + code[1:]
    again = app.client(other)
    first = node("pake-client", {"code": wrong_code})
    started = again.post("/api/auth/pairing", {"request": first["request"], "public_key": other.public_jwk})
    assert started.status_code == 403 and started.json()["error"]["code"] == "pairing_used"  # the code was used above
    fresh = app.pair_code()
    wrong_code = ("Z" if fresh[0] != "Z" else "Y") + fresh[1:]
    first = node("pake-client", {"code": wrong_code})
    started = again.post("/api/auth/pairing", {"request": first["request"], "public_key": other.public_jwk})
    assert started.status_code == 200, started.text
    refused = node("pake-client", {"code": wrong_code, "state": first["state"], "response": started.json()["response"]})
    assert refused.get("error") == "pairing_invalid", refused
