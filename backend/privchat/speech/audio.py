"""A recording, decoded from memory to 16 kHz mono samples: what Whisper listens to.

The bytes never touch the disk. PyAV (FFmpeg) reads them from a ``BytesIO`` through its own I/O
callbacks, so FFmpeg sees no file name and opens nothing; the samples are a numpy array in RAM.
The container is the one the page's MIME type names (the demuxer is forced, so FFmpeg does not
probe a stranger's bytes with every format it knows), and only the audio codecs a browser's
MediaRecorder (or a WAV file) produces are decoded.

A recording is refused as soon as its decoded length passes the limit: a small file that claims or
holds hours of audio costs at most ``max_seconds`` of decoding and memory, whatever its header says.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np

from . import errors

SAMPLE_RATE = 16_000  # Whisper's

# MIME type (without parameters) -> FFmpeg demuxer. MediaRecorder writes Opus in WebM (Chromium,
# Firefox) or Ogg (Firefox), AAC in MP4 (Safari); WAV for tests and scripts.
CONTAINERS = {
    "audio/webm": "webm",
    "audio/ogg": "ogg",
    "audio/mp4": "mp4",
    "audio/wav": "wav",
    "audio/x-wav": "wav",
    "audio/wave": "wav",
}
ALLOWED_TYPES = list(CONTAINERS)
CODECS = {"opus", "vorbis", "aac", "mp3", "flac", "pcm_s16le", "pcm_s24le", "pcm_s32le", "pcm_f32le", "pcm_f64le",
          "pcm_u8", "pcm_mulaw", "pcm_alaw"}
# Below this peak (about -54 dBFS) a recording holds nothing a microphone picked up: silence.
SILENCE_PEAK = 0.002
GRACE_SECONDS = 1.0


@dataclass(frozen=True)
class Decoded:
    samples: np.ndarray  # float32, mono, SAMPLE_RATE

    @property
    def seconds(self) -> float:
        return len(self.samples) / SAMPLE_RATE


def container_for(mime: str) -> str:
    """The demuxer for a MIME type such as ``audio/webm;codecs=opus``; refuses any other."""
    base = (mime or "").split(";", 1)[0].strip().lower()
    if base not in CONTAINERS:
        raise errors.audio_type_not_allowed(mime, ALLOWED_TYPES)
    return CONTAINERS[base]


def decode(data: bytes, mime: str, *, max_seconds: float) -> Decoded:
    """Decode ``data`` (a whole recording) in memory; refuses undecodable, too long and silent audio."""
    import av  # PyAV, installed with faster-whisper; imported on first use

    container_format = container_for(mime)
    if not data:
        raise errors.audio_undecodable("it is empty")
    # A second of grace: a recording the page stopped at the limit carries its encoder's padding.
    limit = int((max_seconds + GRACE_SECONDS) * SAMPLE_RATE)
    chunks: list[np.ndarray] = []
    total = 0
    try:
        with av.open(io.BytesIO(data), mode="r", format=container_format) as container:
            if not container.streams.audio:
                raise errors.audio_undecodable("it holds no audio")
            stream = container.streams.audio[0]
            codec = stream.codec_context.name
            if codec not in CODECS:
                raise errors.audio_undecodable(f"its codec {codec} is not one a browser records")
            resampler = av.AudioResampler(format="s16", layout="mono", rate=SAMPLE_RATE)
            frames = container.decode(stream)
            for frame in _with_flush(frames):
                for out in resampler.resample(frame):
                    array = out.to_ndarray().reshape(-1)
                    total += len(array)
                    if total > limit:
                        raise errors.audio_too_long(max_seconds)
                    chunks.append(array)
    except errors.SpeechError:
        raise
    except Exception as exc:  # FFmpeg's errors, and whatever else a stranger's bytes make PyAV raise
        raise errors.audio_undecodable(f"it is not {container_format} audio") from exc
    if not chunks:
        raise errors.audio_undecodable("it holds no audio samples")
    samples = np.concatenate(chunks).astype(np.float32) / 32768.0
    if float(np.abs(samples).max()) < SILENCE_PEAK:
        raise errors.audio_silent()
    return Decoded(samples)


def _with_flush(frames):  # type: ignore[no-untyped-def]
    """The decoded frames, then ``None``, which flushes what the resampler holds back."""
    yield from frames
    yield None
