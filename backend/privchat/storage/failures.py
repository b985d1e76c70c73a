"""A database that refuses writes, in words: disk full, read-only, failing disk.

SQLite says why only in its message text. Both places that meet such an error, a request (the API
answers 507/503 with a code) and a reply being saved (the stream ends with an error event), read it
here, so they never disagree about what the owner should do.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass


@dataclass(frozen=True)
class StorageFailure:
    status: int
    code: str
    message: str  # a sentence for the API answer
    reason: str  # a short phrase: "the disk is full"


def storage_failure(error: BaseException) -> StorageFailure | None:
    """What a refused write means, or None when the error is not the database refusing a write."""
    if not isinstance(error, sqlite3.DatabaseError):
        return None
    text = str(error).lower()
    if "full" in text:
        return StorageFailure(507, "storage_full", "The server's disk is full, so nothing could be saved; "
                              "free some space on the server and try again.", "the disk is full")
    if "readonly" in text or "read-only" in text:
        return StorageFailure(503, "storage_unavailable", "The server's database is read-only, so nothing could be saved; "
                              "check the data folder.", "the database is read-only")
    if "disk i/o" in text or "unable to open" in text:
        return StorageFailure(503, "storage_unavailable", "The server's disk refused the write (full, over a size limit, "
                              "or failing); nothing was saved. Check the server's disk and try again.", "the disk refused the write")
    return None
