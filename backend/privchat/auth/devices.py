"""Registered devices: who may sign requests, and who was revoked.

Revocation is a row update that the server reads on every request (no cache), so a device revoked
from the CLI, server running or not, is refused on its very next request.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec

from ..errors import PrivchatError
from ..storage.db import Database
from .device_names import check_device_name
from ..jwk import parse_p256_public_jwk, short_fingerprint

# last_seen is written at most this often per device, so signed reads do not all become writes.
LAST_SEEN_RESOLUTION = 60.0


class DeviceLookupError(PrivchatError, LookupError):
    """No device, or more than one, matches what the owner typed."""


@dataclass
class Device:
    id: str
    name: str
    public_jwk: dict[str, str]
    created_at: float
    last_seen_at: float | None
    revoked_at: float | None

    @property
    def status(self) -> str:
        return "revoked" if self.revoked_at is not None else "active"

    @property
    def fingerprint(self) -> str:
        return short_fingerprint(self.id)

    def public_key(self) -> ec.EllipticCurvePublicKey:
        return parse_p256_public_jwk(self.public_jwk)[1]

    def to_json(self) -> dict[str, Any]:
        return {"device_id": self.id, "name": self.name, "fingerprint": self.fingerprint, "created_at": self.created_at,
                "last_seen_at": self.last_seen_at, "revoked_at": self.revoked_at, "status": self.status}


def _device(row: Any) -> Device:
    return Device(row["id"], row["name"], json.loads(row["public_jwk"]), row["created_at"], row["last_seen_at"], row["revoked_at"])


class DeviceStore:
    def __init__(self, database: Database) -> None:
        self.database = database
        # A device id is the thumbprint of its key, so an id's key can never change: caching the
        # parsed key is safe. Its *status* is never cached (see NonceStore.use_if_active).
        self._keys: dict[str, ec.EllipticCurvePublicKey] = {}
        self._touched: dict[str, float] = {}

    async def public_key(self, device_id: str) -> ec.EllipticCurvePublicKey | None:
        """The registered key for this id (revoked or not), or None for an unknown id."""
        key = self._keys.get(device_id)
        if key is None:
            device = await self.get(device_id)
            if device is None:
                return None
            key = self._keys[device_id] = device.public_key()
        return key

    async def get(self, device_id: str) -> Device | None:
        async with self.database.conn.execute("SELECT * FROM devices WHERE id = ?", (device_id,)) as cursor:
            row = await cursor.fetchone()
        return None if row is None else _device(row)

    async def list(self) -> list[Device]:
        async with self.database.conn.execute("SELECT * FROM devices ORDER BY created_at") as cursor:
            return [_device(r) for r in await cursor.fetchall()]

    async def registered(self, conn: Any, device_id: str) -> bool:
        """Inside the caller's transaction: is this key registered (revoked or not)?"""
        async with conn.execute("SELECT 1 FROM devices WHERE id = ?", (device_id,)) as cursor:
            return await cursor.fetchone() is not None

    async def add(self, conn: Any, device_id: str, name: str, public_jwk: dict[str, str]) -> Device:
        """Insert inside the caller's transaction (pairing redeems the code in the same one)."""
        now = time.time()
        await conn.execute(
            "INSERT INTO devices (id, name, public_jwk, created_at, last_seen_at) VALUES (?, ?, ?, ?, ?)",
            (device_id, name, json.dumps(public_jwk, sort_keys=True), now, now),
        )
        return Device(device_id, name, public_jwk, now, now, None)

    async def find(self, id_or_fingerprint: str) -> Device:
        """Match a full device id, or a fingerprint or its prefix as shown by `devices list`."""
        wanted = id_or_fingerprint.strip()
        devices = await self.list()
        exact = [d for d in devices if d.id == wanted]
        if exact:
            return exact[0]
        compact = wanted.replace(" ", "").replace("-", "").upper()
        matches = [d for d in devices if compact and d.fingerprint.replace(" ", "").startswith(compact)]
        if not matches:
            raise DeviceLookupError(f"no device has the id or fingerprint {wanted!r}; see `privchat devices list`")
        if len(matches) > 1:
            raise DeviceLookupError(f"{wanted!r} matches {len(matches)} devices; type more of the fingerprint")
        return matches[0]

    async def revoke(self, device_id: str) -> Device:
        async with self.database.transaction() as conn:
            await conn.execute("UPDATE devices SET revoked_at = COALESCE(revoked_at, ?) WHERE id = ?", (time.time(), device_id))
        device = await self.get(device_id)
        if device is None:
            raise DeviceLookupError(f"no device {device_id}")
        return device

    async def rename(self, device_id: str, name: str) -> Device:
        """Refuses (invalid_device_name) a name the terminal could act on (see device_names.py)."""
        name = check_device_name(name)
        async with self.database.transaction() as conn:
            await conn.execute("UPDATE devices SET name = ? WHERE id = ?", (name, device_id))
        device = await self.get(device_id)
        if device is None:
            raise DeviceLookupError(f"no device {device_id}")
        return device

    async def touch(self, device_id: str) -> None:
        """Record last_seen at most once a minute per device (this process remembers when it did)."""
        now = time.time()
        if now - self._touched.get(device_id, 0.0) < LAST_SEEN_RESOLUTION:
            return
        self._touched[device_id] = now
        await self.database.write("UPDATE devices SET last_seen_at = ? WHERE id = ?", (now, device_id))
