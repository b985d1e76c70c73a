"""Voice input: a recording from the page, transcribed on the owner's machine.

``audio.py`` decodes the recording from memory (PyAV on a ``BytesIO``; nothing is written to disk,
not even a temporary file), ``transcriber.py`` runs faster-whisper on it, one recording at a time,
and ``errors.py`` holds the refusals, each with its code and sentence. The route is
``api/transcribe.py``.
"""
