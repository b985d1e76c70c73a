"""The owner's preferences, stored once for all devices and sealed like the messages.

The row carries a version that grows on every write and is bound into the sealed value
(``bindings.py``), so an older sealed value put back into the row does not open. Reading such a
value fails (the API answers ``integrity_failed``); saving settings again replaces it, starting
from the defaults, so the owner is not stuck with a row that can never be read.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

from ..config import Config
from .bindings import settings_binding
from .crypto import CryptoError
from .db import Database

log = logging.getLogger(__name__)

SETTINGS_ROW = "preferences"


def default_settings(config: Config, default_model: str | None = None) -> dict[str, Any]:
    """The config file's values; ``default_model`` is the config's default model (llm/specs.py
    decides it; None where no model list is known, e.g. storage tests)."""
    generation = config.generation
    return {
        "system_prompt": generation.system_prompt,
        "temperature": generation.temperature,
        "max_tokens": generation.max_tokens,
        "default_model": default_model,
    }


class SettingsStore:
    def __init__(self, database: Database, config: Config, *, default_model: str | None = None) -> None:
        self.database = database
        self.defaults = default_settings(config, default_model)

    async def get(self) -> dict[str, Any]:
        return await self._read(self.database.conn)

    async def _read(self, conn: Any) -> dict[str, Any]:
        async with conn.execute("SELECT value, version FROM settings WHERE key = ?", (SETTINGS_ROW,)) as cursor:
            row = await cursor.fetchone()
        if row is None:
            return dict(self.defaults)
        stored = json.loads(self.database.cipher.open(row[0], table="settings", column="value", row_id=SETTINGS_ROW,
                                                      bound=settings_binding(row[1])))
        return {**self.defaults, **{k: v for k, v in stored.items() if k in self.defaults}}

    async def put(self, values: dict[str, Any]) -> dict[str, Any]:
        """Read, merge and write in one transaction, so the version grows by exactly one per write."""
        async with self.database.transaction() as conn:
            try:
                current = await self._read(conn)
            except CryptoError as exc:
                log.warning("the stored settings failed their integrity check and are replaced, from the defaults: %s", exc)
                current = dict(self.defaults)
            merged = {**current, **values}
            async with conn.execute("SELECT COALESCE(MAX(version), 0) + 1 FROM settings WHERE key = ?", (SETTINGS_ROW,)) as cursor:
                version = int((await cursor.fetchone())[0])
            sealed = self.database.cipher.seal(json.dumps(merged), table="settings", column="value", row_id=SETTINGS_ROW,
                                               bound=settings_binding(version))
            await conn.execute(
                "INSERT INTO settings (key, value, version, updated_at) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (key) DO UPDATE SET value = excluded.value, version = excluded.version, "
                "updated_at = excluded.updated_at",
                (SETTINGS_ROW, sealed, version, time.time()),
            )
        return merged
