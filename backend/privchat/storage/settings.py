"""The owner's preferences, stored once for all devices and sealed like the messages."""

from __future__ import annotations

import json
import time
from typing import Any

from ..config import Config
from .db import Database

SETTINGS_ROW = "preferences"


def default_settings(config: Config) -> dict[str, Any]:
    generation = config.section("generation")
    return {
        "system_prompt": generation["system_prompt"],
        "temperature": generation["temperature"],
        "max_tokens": generation["max_tokens"],
    }


class SettingsStore:
    def __init__(self, database: Database, config: Config) -> None:
        self.database = database
        self.defaults = default_settings(config)

    async def get(self) -> dict[str, Any]:
        async with self.database.conn.execute("SELECT value FROM settings WHERE key = ?", (SETTINGS_ROW,)) as cursor:
            row = await cursor.fetchone()
        if row is None:
            return dict(self.defaults)
        stored = json.loads(self.database.cipher.open(row[0], table="settings", column="value", row_id=SETTINGS_ROW))
        return {**self.defaults, **{k: v for k, v in stored.items() if k in self.defaults}}

    async def put(self, values: dict[str, Any]) -> dict[str, Any]:
        merged = {**await self.get(), **values}
        sealed = self.database.cipher.seal(json.dumps(merged), table="settings", column="value", row_id=SETTINGS_ROW)
        async with self.database.transaction() as conn:
            await conn.execute(
                "INSERT INTO settings (key, value, updated_at) VALUES (?, ?, ?) "
                "ON CONFLICT (key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
                (SETTINGS_ROW, sealed, time.time()),
            )
        return merged
