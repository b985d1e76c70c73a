"""The server's end-to-end key pairs: made on first start, stored sealed, rotated with a grace period.

Each private key is stored in ``e2e_keys`` sealed with the data key (the key-encryption key wraps
the data key), so a copied database alone gives no way to read sealed traffic. The newest key is
the current one, published by ``GET /api/health``; ``privchat e2e rotate`` adds a newer one and
marks the old one retired, and a retired key keeps opening requests for
``e2e.rotation_grace_hours`` so a paired page can fetch the new key through a request sealed to
the old one (``GET /api/e2e/key``) without pairing again.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from pyhpke import KEMKey, KEMKeyInterface

from ..jwk import b64url_encode, short_fingerprint, thumbprint
from ..storage.db import Database
from ..errors import E2E_KEY_UNKNOWN
from .errors import E2EError

TABLE = "e2e_keys"


@dataclass(frozen=True)
class ServerKey:
    kid: str
    private_key: KEMKeyInterface
    public_jwk: dict[str, str]
    created_at: float
    retired_at: float | None

    @property
    def fingerprint(self) -> str:
        return short_fingerprint(self.kid)

    def to_json(self) -> dict[str, Any]:
        return {"kid": self.kid, "jwk": self.public_jwk, "fingerprint": self.fingerprint}


def public_jwk_of(private_key: ec.EllipticCurvePrivateKey) -> dict[str, str]:
    numbers = private_key.public_key().public_numbers()
    return {"crv": "P-256", "kty": "EC", "x": b64url_encode(numbers.x.to_bytes(32, "big")),
            "y": b64url_encode(numbers.y.to_bytes(32, "big"))}


def _server_key(private_pem: str, created_at: float, retired_at: float | None) -> ServerKey:
    private = serialization.load_pem_private_key(private_pem.encode("ascii"), password=None)
    if not isinstance(private, ec.EllipticCurvePrivateKey) or not isinstance(private.curve, ec.SECP256R1):
        raise ValueError("a stored end-to-end key is not a P-256 key")
    jwk = public_jwk_of(private)
    return ServerKey(kid=thumbprint(jwk), private_key=KEMKey.from_pyca_cryptography_key(private), public_jwk=jwk,
                     created_at=created_at, retired_at=retired_at)


class E2EKeyStore:
    """The key pairs, loaded once and kept in memory; rotation writes through the database."""

    def __init__(self, database: Database, grace_seconds: float) -> None:
        self.database = database
        self.grace_seconds = grace_seconds
        self._keys: dict[str, ServerKey] = {}
        self._current: ServerKey | None = None

    async def load(self) -> ServerKey:
        """Read every key (making the first one if there is none); returns the current key."""
        keys = await ensure_keys(self.database)
        self._keys = {key.kid: key for key in keys}
        self._current = current_of(keys)
        return self._current

    @property
    def current(self) -> ServerKey:
        if self._current is None:
            raise RuntimeError("the end-to-end keys are not loaded yet")
        return self._current

    async def accepted(self, kid: str, now: float | None = None) -> ServerKey:
        """The key a request names, if it may still open requests; else E2EError(E2E_KEY_UNKNOWN).

        The current key is read from the database first (one indexed SELECT): ``privchat e2e rotate``
        may have run while the server was up, and from that moment the old key's grace runs.
        """
        await self.published()
        key = self._keys.get(kid)
        if key is None:
            raise E2EError(E2E_KEY_UNKNOWN)
        if key.retired_at is not None and (now or time.time()) > key.retired_at + self.grace_seconds:
            raise E2EError(E2E_KEY_UNKNOWN)
        return key

    async def published(self) -> ServerKey:
        """The current key as the database has it now: ``privchat e2e rotate`` may have run while
        the server was up, and health must then publish the new key at once."""
        async with self.database.conn.execute(
                f"SELECT kid FROM {TABLE} WHERE retired_at IS NULL ORDER BY created_at DESC LIMIT 1") as cursor:
            row = await cursor.fetchone()
        if row is None or self._current is None or row["kid"] != self._current.kid:
            return await self.load()
        return self._current


async def read_keys(database: Database) -> list[ServerKey]:
    async with database.conn.execute(f"SELECT * FROM {TABLE} ORDER BY created_at") as cursor:
        rows = await cursor.fetchall()
    return [_server_key(database.cipher.open(row["private_key"], table=TABLE, column="private_key", row_id=row["kid"]),
                        row["created_at"], row["retired_at"]) for row in rows]


async def _insert_new_key(conn: Any, database: Database, now: float) -> str:
    private = ec.generate_private_key(ec.SECP256R1())
    kid = thumbprint(public_jwk_of(private))
    pem = private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption()).decode("ascii")
    sealed = database.cipher.seal(pem, table=TABLE, column="private_key", row_id=kid)
    await conn.execute(f"INSERT INTO {TABLE} (kid, private_key, created_at) VALUES (?, ?, ?)", (kid, sealed, now))
    return kid


def current_of(keys: list[ServerKey]) -> ServerKey:
    """The newest key not retired (``keys`` in creation order, as ``read_keys`` gives them)."""
    return next(key for key in reversed(keys) if key.retired_at is None)


async def ensure_keys(database: Database) -> list[ServerKey]:
    """Every key, oldest first, after making the first one (in one transaction, so two processes
    agree) if there is no current key."""
    async with database.transaction() as conn:
        async with conn.execute(f"SELECT kid FROM {TABLE} WHERE retired_at IS NULL ORDER BY created_at DESC LIMIT 1") as cursor:
            row = await cursor.fetchone()
        if row is None:
            await _insert_new_key(conn, database, time.time())
    return await read_keys(database)


async def rotate(database: Database, *, revoke_old: bool = False) -> tuple[ServerKey, list[ServerKey]]:
    """Make a new current key and retire the others (their grace period starts now); with
    ``revoke_old``, delete them instead (a key that leaked): from then on nothing sealed to them
    opens, not even the key route, and their devices pair again."""
    now = time.time()
    async with database.transaction() as conn:
        if revoke_old:
            await conn.execute(f"DELETE FROM {TABLE}")
        else:
            await conn.execute(f"UPDATE {TABLE} SET retired_at = ? WHERE retired_at IS NULL", (now,))
        kid = await _insert_new_key(conn, database, now)
    keys = await read_keys(database)
    return next(key for key in keys if key.kid == kid), [key for key in keys if key.kid != kid]
