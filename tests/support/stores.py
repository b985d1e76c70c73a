"""A fresh encrypted database and its history store, for tests of storage logic without a server."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Awaitable, Callable

from privchat.config import Config, config_from_dict
from privchat.storage.db import Database
from privchat.storage.history import HistoryStore


def store_config(tmp_path: Path) -> Config:
    """The config of the database ``with_history`` opens: another connection to it opens with this."""
    return config_from_dict({"storage": {"data_dir": str(tmp_path / "d"), "key_file": str(tmp_path / "k")}})


def with_history(tmp_path: Path, scenario: Callable[[Database, HistoryStore], Awaitable[None]]) -> None:
    """Open a new database under ``tmp_path`` (key file beside it), run ``scenario``, close it."""
    async def main() -> None:
        database = await Database.open(store_config(tmp_path))
        try:
            await scenario(database, HistoryStore(database))
        finally:
            await database.close()

    asyncio.run(main())
