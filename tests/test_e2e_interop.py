"""Python and the page agree on end-to-end encryption, byte for byte (docs/E2E.md).

Two independent implementations meet here: the backend (pyhpke, cryptography's HKDF and AES-GCM)
and the page (@hpke/core, WebCrypto), driven through ``pages/test/e2e-interop.mjs``. For random
payloads (hypothesis), what the page seals the backend opens, and what the backend seals the page
opens, one-chunk answers and streams; the pairing proof and key confirmation come out the same.
Then a request sealed and signed by the page's code goes to a live app and its answer is opened by
the page's code. Each direction has a control that must fail: a changed byte, another key.
"""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pyhpke import KEMKey

from privchat.jwk import b64url_encode, thumbprint
from privchat.auth.pairing import key_confirmation, pairing_proof
from privchat.e2e.header import parse_header
from privchat.e2e.keys import public_jwk_of
from privchat.e2e.frames import FrameShaper
from privchat.e2e.padding import sealed_size
from privchat.e2e.sealing import ResponseSealer, open_request
from privchat.e2e.suite import request_info
from privchat.e2e.errors import E2EError
from tests.support.e2e import b64url_decode
from tests.support.inprocess import InProcessServer

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "pages" / "test" / "e2e-interop.mjs"
NODE = shutil.which("node")

pytestmark = pytest.mark.skipif(NODE is None or not (REPO / "pages" / "node_modules" / "@hpke").exists(),
                                reason="needs node and the page's node_modules (cd pages && npm ci)")

PRIVATE = ec.generate_private_key(ec.SECP256R1())
SERVER_JWK = public_jwk_of(PRIVATE)
SERVER_KID = thumbprint(SERVER_JWK)
SERVER_KEY = KEMKey.from_pyca_cryptography_key(PRIVATE)


def node(command: str, payload: dict[str, Any]) -> dict[str, Any]:
    done = subprocess.run([NODE, str(SCRIPT), command], input=json.dumps(payload), capture_output=True, text=True,
                          timeout=60, cwd=REPO / "pages")
    answer = json.loads(done.stdout or "{}")
    if done.returncode != 0 and "items" not in payload:
        return {"error": answer.get("error", "failed"), "stderr": done.stderr}
    return answer


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def unb64(text: str) -> bytes:
    return base64.b64decode(text)


payloads = st.one_of(st.binary(min_size=1, max_size=2048), st.text(min_size=1, max_size=500).map(lambda t: t.encode("utf-8")))
targets = st.sampled_from(["/api/chat", "/api/settings", "/api/history?limit=50&before=12.5", "/api/auth/device"])


@pytest.mark.slow
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(items=st.lists(st.tuples(payloads, targets, st.sampled_from(["POST", "PUT", "PATCH"])), min_size=1, max_size=8))
def test_what_the_page_seals_the_backend_opens(items: list[tuple[bytes, str, str]]) -> None:
    batch = node("seal", {"items": [{"server_jwk": SERVER_JWK, "method": method, "target": target, "device_id": "dev-1",
                                     "body_b64": b64(body)} for body, target, method in items]})
    for (body, target, method), sealed in zip(items, batch["results"]):
        header = parse_header(sealed["header"])
        assert header.kid == SERVER_KID and header.enc == unb64(sealed["enc_b64"])
        opened = open_request(SERVER_KEY, header.enc, request_info(method, target, "dev-1"), unb64(sealed["body_b64"]))
        assert opened.plaintext == body  # unpadded: the page padded it as the contract says
        assert len(unb64(sealed["body_b64"])) == sealed_size(len(body))
        # Both ends export the same response secret from the context.
        assert opened.sealer.secret == unb64(sealed["secret_b64"])
        # Control: another target in info, or one changed byte, does not open.
        with pytest.raises(E2EError, match="did not open"):
            open_request(SERVER_KEY, header.enc, request_info(method, target + "x", "dev-1"), unb64(sealed["body_b64"]))
        spoiled = bytearray(unb64(sealed["body_b64"]))
        spoiled[-1] ^= 1
        with pytest.raises(E2EError, match="did not open"):
            open_request(SERVER_KEY, header.enc, request_info(method, target, "dev-1"), bytes(spoiled))


META = b'{"status":200,"kid":"interop","headers":{}}\n'
event_texts = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=300)


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tokens=st.lists(event_texts, max_size=40), idle=st.lists(st.integers(0, 3), min_size=1, max_size=10),
       single=payloads, final=st.sampled_from(["done", "error"]))
@pytest.mark.slow
def test_what_the_backend_seals_the_page_opens(tokens: list[str], idle: list[int], single: bytes, final: str) -> None:
    """The backend's shaper frames a random reply (empty frames between, events and characters cut
    anywhere, frames of every size) and the page's code reads back exactly its events; a padded
    one-chunk answer opens to its content."""
    secret, enc = bytes(range(16)), bytes([4]) + bytes(range(64))
    sealer = ResponseSealer(secret=secret, enc=enc)
    shaper = FrameShaper(sealer, META)
    events = [("r:0", "start", {"conversation_id": "c"})] + [(f"r:{i + 1}", "token", {"text": t}) for i, t in enumerate(tokens)]
    events.append((f"r:{len(tokens) + 1}", final, {"finish_reason": "stop"}))
    frames = []
    for index, event in enumerate(events):
        shaper.add(*event)
        for _ in range(idle[index % len(idle)]):
            if not shaper.finished:
                frames.append(shaper.next_frame())
    while not shaper.finished:
        frames.append(shaper.next_frame())
    stream = [frame.decode("ascii").split("data: ", 1)[1].strip() for frame in frames]
    base = {"secret_b64": b64(secret), "enc_b64": b64(enc), "nonce": b64url_encode(sealer.nonce)}
    opened = node("open", {**base, "frames": stream})
    assert opened.get("final") is True and opened.get("meta") == json.loads(META), opened
    assert [json.loads(line) for line in opened["events"]] == [{"id": i, "event": e, "data": d} for i, e, d in events]
    one = ResponseSealer(secret=secret, enc=enc)
    answer = node("open", {"secret_b64": b64(secret), "enc_b64": b64(enc), "nonce": b64url_encode(one.nonce),
                           "body_b64": b64(one.seal_body(META + single))})
    assert unb64(answer["plaintext_b64"]) == single and answer.get("meta") == json.loads(META), answer
    # Controls: the stream without its final frame, and in another order, do not open.
    if len(stream) > 1:
        assert node("open", {**base, "frames": stream[:-1]})["error"] == "e2e_truncated"
        assert node("open", {**base, "frames": stream[::-1]})["error"] == "e2e_event_invalid"


@pytest.mark.slow
@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(payloads=st.lists(st.tuples(st.binary(max_size=1200), st.sampled_from([1024, 4096, 16384])), min_size=1, max_size=6))
def test_frames_the_page_seals_the_python_reader_opens(payloads: list[tuple[bytes, int]]) -> None:
    """The other direction for frames: the page's test sealer builds frames around arbitrary payload
    bytes; the client reader written from the contract (tests/support/e2e.py) opens each, checks its
    size and padding and gets the same bytes back."""
    from tests.support.e2e import ChunkOpener, FrameReader

    secret, enc = bytes(range(16)), bytes([4]) + bytes(range(64))
    fitting = [(payload[: size - 18], size) for payload, size in payloads]
    sealed = node("seal-response", {"secret_b64": b64(secret), "enc_b64": b64(enc),
                                    "frames_b64": [[b64(payload), size] for payload, size in fitting]})
    assert "error" not in sealed, sealed
    reader = FrameReader(ChunkOpener(secret, enc, b64url_decode(sealed["nonce"])))
    seen = b""
    for index, frame in enumerate(sealed["frames"]):
        raw = b64url_decode(frame)
        assert len(raw) == fitting[index][1]
        plaintext, final = reader.opener.open(raw)
        assert final == (index == len(fitting) - 1)
        k = int.from_bytes(plaintext[:2], "big")
        assert not any(plaintext[2 + k:])
        seen += plaintext[2:2 + k]
    assert seen == b"".join(payload for payload, _ in fitting)


def test_the_pairing_macs_agree() -> None:
    for code in ("ABCDE-FGH12", "abcde fgh12", "0O1IL-XYZ99"):
        page = node("pairing", {"code": code, "device_id": "dev-7", "kid": SERVER_KID})
        assert page["pairing_proof"] == pairing_proof(code, "dev-7", SERVER_KID)
        assert page["key_confirmation"] == key_confirmation(code, "dev-7", SERVER_KID)
        assert page["pairing_proof"] != pairing_proof(code, "dev-7", SERVER_KID + "x")


def test_a_request_sealed_and_signed_by_the_page_code_is_answered_and_opened(tmp_path: Path) -> None:
    """The page's code seals and signs PUT /api/settings with a marker (its device registered the
    way pairing would); the app verifies, opens and answers sealed; the page's code opens the answer."""
    marker = "Interop-Ωmarker"
    with InProcessServer(tmp_path / "app") as app:
        jwk = app.http().get("/api/health").json()["e2e"]["jwk"]
        settings_body = json.dumps({"system_prompt": marker, "temperature": 0.5, "max_tokens": 64})
        sealed = node("seal", {"server_jwk": jwk, "method": "PUT", "target": "/api/settings", "sign": True,
                               "body": settings_body, "origin": app.base_url()})
        assert "error" not in sealed, sealed

        async def register() -> None:
            async with app.state.database.transaction() as conn:
                await app.state.devices.add(conn, sealed["device_id"], "node", sealed["public_jwk"])

        app.run(register())
        http = app.http()
        wire = unb64(sealed["body_b64"])
        assert marker.encode() not in wire
        response = http.put("/api/settings", content=wire, headers=sealed["headers"])
        assert response.status_code == 200, response.text
        assert marker.encode() not in response.content
        opened = node("open", {"secret_b64": sealed["secret_b64"], "enc_b64": sealed["enc_b64"],
                               "nonce": response.headers["Privchat-E2E-Nonce"], "body_b64": b64(response.content)})
        assert json.loads(opened["text"])["system_prompt"] == marker
        # Control: the same answer opened with another request's secret fails in the page's code.
        other = node("open", {"secret_b64": b64(bytes(16)), "enc_b64": sealed["enc_b64"],
                              "nonce": response.headers["Privchat-E2E-Nonce"], "body_b64": b64(response.content)})
        assert other.get("error") == "e2e_response_invalid", other
