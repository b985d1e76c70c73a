"""Voice input: ``POST /api/transcribe`` ``{audio: base64, mime}`` -> ``{text, seconds}``.

The recording arrives sealed and padded like every other body (docs/E2E.md) and is opened in
memory; it is decoded and transcribed on this machine (speech/), one recording at a time, and
never written to disk. The text goes back to the page, which puts it in the message box for the
owner to check: this route sends nothing to the model and stores nothing.
"""

from __future__ import annotations

import base64
import binascii

from quart import Blueprint, current_app
from quart_schema import validate_request, validate_response

from ..speech import errors
from .schemas import TranscribeRequest, TranscribeResult

blueprint = Blueprint("transcribe", __name__)


@blueprint.post("/api/transcribe")
@validate_request(TranscribeRequest)
@validate_response(TranscribeResult)
async def transcribe(data: TranscribeRequest) -> TranscribeResult:
    speech = current_app.extensions["privchat"].speech
    if not speech.enabled:
        raise errors.speech_disabled()
    try:
        audio = base64.b64decode(data.audio, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise errors.audio_undecodable("it is not base64") from exc
    transcript = await speech.transcribe(audio, data.mime)
    return TranscribeResult(text=transcript.text, seconds=transcript.seconds)
