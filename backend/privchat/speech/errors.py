"""The refusals of voice input: each an entry of ``errors.py``'s catalogue, with the numbers said in words here."""

from __future__ import annotations

from ..errors import (AUDIO_SILENT, AUDIO_TOO_LARGE, AUDIO_TOO_LONG, AUDIO_TYPE_NOT_ALLOWED, AUDIO_UNDECODABLE,
                      SPEECH_BUSY, SPEECH_DISABLED, SPEECH_UNAVAILABLE, CodedError)


class SpeechError(CodedError):
    """A recording that cannot be transcribed, or speech that is not available (speech_*, audio_*)."""


def speech_disabled() -> SpeechError:
    return SpeechError(SPEECH_DISABLED)


def speech_unavailable(reason: str) -> SpeechError:
    return SpeechError(SPEECH_UNAVAILABLE, reason=reason)


def speech_busy() -> SpeechError:
    return SpeechError(SPEECH_BUSY)


def audio_type_not_allowed(mime: str, allowed: list[str]) -> SpeechError:
    return SpeechError(AUDIO_TYPE_NOT_ALLOWED, mime=mime[:80] or "none", allowed=", ".join(allowed))


def audio_too_large(size: int, limit: int) -> SpeechError:
    return SpeechError(AUDIO_TOO_LARGE, size=f"{size / 1048576:.1f} MiB", most=f"{limit / 1048576:.1f} MiB")


def audio_too_long(limit_seconds: float) -> SpeechError:
    return SpeechError(AUDIO_TOO_LONG, most=_duration(limit_seconds))


def audio_undecodable(detail: str) -> SpeechError:
    return SpeechError(AUDIO_UNDECODABLE, detail=detail)


def audio_silent() -> SpeechError:
    return SpeechError(AUDIO_SILENT)


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    if seconds % 60 == 0 and seconds >= 60:
        minutes = seconds // 60
        return f"{minutes} minute{'s' if minutes != 1 else ''}"
    return f"{seconds} seconds"
