"""Replay protection: each (keyid, nonce) is accepted once while its signature could still be valid.

Kept in SQLite rather than memory, so restarting the server does not reopen the window.
"""

from __future__ import annotations

import sqlite3
import time

from ..storage.db import Database

PURGE_EVERY = 500


class NonceStore:
    def __init__(self, database: Database) -> None:
        self.database = database
        self._since_purge = 0

    async def use_if_active(self, key_id: str, nonce: str, valid_until: float) -> str:
        """Record the nonce if the device is active, in one statement: 'ok', 'replayed' or 'revoked'.

        The device's standing is read from the database on every request in the same round trip
        as the replay insert, so a revocation from the CLI (another process) counts at once.
        """
        self._since_purge += 1
        if self._since_purge >= PURGE_EVERY:
            self._since_purge = 0
            await self.database.write("DELETE FROM seen_nonces WHERE expires_at < ?", (time.time(),))
        try:
            inserted = await self.database.write(
                "INSERT INTO seen_nonces (key_id, nonce, expires_at) "
                "SELECT ?, ?, ? FROM devices WHERE id = ? AND revoked_at IS NULL",
                (key_id, nonce, valid_until, key_id))
        except sqlite3.IntegrityError:
            return "replayed"
        return "ok" if inserted == 1 else "revoked"

    async def use(self, key_id: str, nonce: str, valid_until: float) -> bool:
        """Record the nonce; False when it was seen before (a replay)."""
        self._since_purge += 1
        if self._since_purge >= PURGE_EVERY:
            self._since_purge = 0
            await self.database.write("DELETE FROM seen_nonces WHERE expires_at < ?", (time.time(),))
        try:
            await self.database.write("INSERT INTO seen_nonces (key_id, nonce, expires_at) VALUES (?, ?, ?)",
                                      (key_id, nonce, valid_until))
        except sqlite3.IntegrityError:
            return False
        return True
