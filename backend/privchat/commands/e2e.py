"""``privchat e2e show`` and ``privchat e2e rotate``: the server's end-to-end key, for the owner.

``show`` prints the current key's short fingerprint (what the page shows as "Server key") and any
retired key still in its grace period. ``rotate`` makes a new key; paired pages move to it on their
next health check through a request sealed to the old key, so nobody pairs again unless a device
stays away longer than ``e2e.rotation_grace_hours``.
"""

from __future__ import annotations

import argparse
import time
from datetime import datetime, timezone
from typing import Any

from ..config import Config
from ..e2e.keys import ServerKey, current_of, ensure_keys, rotate
from ..storage.db import Database
from .output import EXIT_OK, emit


def _iso(stamp: float) -> str:
    return datetime.fromtimestamp(stamp, tz=timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def _describe(key: ServerKey, grace_seconds: float) -> dict[str, Any]:
    record: dict[str, Any] = {**key.to_json(), "created_at": key.created_at, "retired_at": key.retired_at}
    if key.retired_at is not None:
        record["valid_until"] = key.retired_at + grace_seconds
    return record


def _report(current: ServerKey, others: list[ServerKey], grace_seconds: float, now: float) -> tuple[dict[str, Any], str]:
    still_valid = [k for k in others if k.retired_at is not None and k.retired_at + grace_seconds > now]
    payload = {"current": _describe(current, grace_seconds), "previous": [_describe(k, grace_seconds) for k in still_valid]}
    lines = [f"Server key: {current.fingerprint}   (kid {current.kid}, made {_iso(current.created_at)})"]
    for key in still_valid:
        lines.append(f"Previous:   {key.fingerprint}   still opens requests until {_iso(key.retired_at + grace_seconds)}")  # type: ignore[operator]
    return payload, "\n".join(lines)


async def show(args: argparse.Namespace, config: Config, database: Database) -> int:
    keys = await ensure_keys(database)
    current = current_of(keys)
    others = [k for k in keys if k.kid != current.kid]
    payload, text = _report(current, others, config.e2e.rotation_grace_hours * 3600, time.time())
    emit(args, payload, text)
    return EXIT_OK


async def rotate_key(args: argparse.Namespace, config: Config, database: Database) -> int:
    revoke_old = getattr(args, "revoke_old", False)
    current, others = await rotate(database, revoke_old=revoke_old)
    grace = config.e2e.rotation_grace_hours * 3600
    payload, text = _report(current, others, grace, time.time())
    if revoke_old:
        await database.checkpoint()  # the old private keys leave the WAL too (secure_delete is on)
        note = ("\nThe old keys are deleted: nothing sealed to them opens any more, so every paired device "
                "pairs again (`privchat pair`). A running server refuses them at once.")
    else:
        note = ("\nPaired pages move to the new key with their next answer; a running server publishes it at once. "
                "New pairing links carry the new key.")
    emit(args, {**payload, "revoked_old": revoke_old}, text + note)
    return EXIT_OK
