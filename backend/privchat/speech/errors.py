"""The refusals of voice input: each a stable code for the page (pages/src/lib/describe.js) and a sentence."""

from __future__ import annotations

from ..errors import CodedError


class SpeechError(CodedError):
    """A recording that cannot be transcribed, or speech that is not available."""


def speech_disabled() -> SpeechError:
    return SpeechError("speech_disabled", "Voice input is turned off on this computer (speech.enabled: false in the config).", 503)


def speech_unavailable(reason: str) -> SpeechError:
    return SpeechError("speech_unavailable", f"Voice input is not available on this computer: {reason}.", 503, retry_after=30)


def speech_busy() -> SpeechError:
    return SpeechError("speech_busy", "Other recordings are being transcribed; try again in a moment.", 503, retry_after=5)


def audio_type_not_allowed(mime: str, allowed: list[str]) -> SpeechError:
    shown = mime[:80] or "none"
    return SpeechError("audio_type_not_allowed",
                       f"A recording of type {shown!r} is not accepted; send one of {', '.join(allowed)}.", 415)


def audio_too_large(size: int, limit: int) -> SpeechError:
    return SpeechError("audio_too_large", f"The recording is {size / 1048576:.1f} MiB; at most {limit / 1048576:.1f} MiB is accepted.", 413)


def audio_too_long(limit_seconds: float) -> SpeechError:
    return SpeechError("audio_too_long", f"The recording is longer than {_duration(limit_seconds)}; record at most "
                                         f"{_duration(limit_seconds)} at a time.", 413)


def audio_undecodable(detail: str) -> SpeechError:
    return SpeechError("audio_undecodable", f"The recording could not be read as audio ({detail}).", 422)


def audio_silent() -> SpeechError:
    return SpeechError("audio_silent", "No speech was heard in the recording: check the microphone and speak a little closer.", 422)


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    if seconds % 60 == 0 and seconds >= 60:
        minutes = seconds // 60
        return f"{minutes} minute{'s' if minutes != 1 else ''}"
    return f"{seconds} seconds"
