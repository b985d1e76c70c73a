"""A database that refuses writes, in words: disk full, read-only, failing disk.

SQLite says why only in its message text. Both places that meet such an error, a request (the API
answers 507/503 with a code) and a reply being saved (the stream ends with an error event), read it
here, so they never disagree about what the owner should do.
"""

from __future__ import annotations

import sqlite3

from ..errors import STORAGE_FULL, STORAGE_UNAVAILABLE, Code, CodedError


class StorageFailure(CodedError):
    """A write the database refused; ``reason`` is a short phrase for a longer sentence ("the disk is full")."""

    def __init__(self, entry: Code, sentence: str | None, reason: str) -> None:
        super().__init__(entry, sentence)
        self.reason = reason


def storage_failure(error: BaseException) -> StorageFailure | None:
    """What a refused write means, or None when the error is not the database refusing a write."""
    if not isinstance(error, sqlite3.DatabaseError):
        return None
    text = str(error).lower()
    if "full" in text:
        return StorageFailure(STORAGE_FULL, None, "the disk is full")
    if "readonly" in text or "read-only" in text:
        return StorageFailure(STORAGE_UNAVAILABLE, "The server's database is read-only, so nothing could be saved; "
                              "check the data folder.", "the database is read-only")
    if "disk i/o" in text or "unable to open" in text:
        return StorageFailure(STORAGE_UNAVAILABLE, None, "the disk refused the write")
    return None
