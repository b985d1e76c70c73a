"""The SQLite database: connection settings, numbered migrations, and unlocking the data key.

The server and the CLI each open their own connection; WAL mode and a busy timeout let the CLI pair,
revoke or export while the server streams, without "database is locked" failures.
"""

from __future__ import annotations

import asyncio
import base64
import getpass
import os
import secrets
import sqlite3
import sys
from pathlib import Path
from typing import Callable

import aiosqlite

from ..config import ENV_PASSPHRASE, Config
from .crypto import (
    SCRYPT_N,
    SCRYPT_P,
    SCRYPT_R,
    Cipher,
    CryptoError,
    WrongKeyError,
    create_key_file,
    derive_kek_from_passphrase,
    new_data_key,
    read_key_file,
    unwrap_data_key,
    wrap_data_key,
)

BUSY_TIMEOUT_MS = 10_000

# Each entry moves the schema from version i to i + 1. Never edit a released entry; append.
MIGRATIONS: list[str] = [
    # 1: the first schema.
    """
    CREATE TABLE meta (
        key TEXT PRIMARY KEY,
        value TEXT NOT NULL
    );
    CREATE TABLE conversations (
        id TEXT PRIMARY KEY,
        title BLOB NOT NULL,
        created_at REAL NOT NULL,
        updated_at REAL NOT NULL
    );
    CREATE INDEX conversations_by_update ON conversations (updated_at DESC, id DESC);
    CREATE TABLE messages (
        id TEXT PRIMARY KEY,
        conversation_id TEXT NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
        seq INTEGER NOT NULL,
        role TEXT NOT NULL CHECK (role IN ('system', 'user', 'assistant')),
        content BLOB NOT NULL,
        status TEXT NOT NULL CHECK (status IN ('complete', 'streaming', 'cancelled', 'interrupted', 'error')),
        created_at REAL NOT NULL,
        completed_at REAL,
        prompt_tokens INTEGER,
        completion_tokens INTEGER,
        UNIQUE (conversation_id, seq)
    );
    CREATE TABLE settings (
        key TEXT PRIMARY KEY,
        value BLOB NOT NULL,
        updated_at REAL NOT NULL
    );
    CREATE TABLE devices (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        public_jwk TEXT NOT NULL,
        created_at REAL NOT NULL,
        last_seen_at REAL,
        revoked_at REAL
    );
    CREATE TABLE pairing_codes (
        code_hash TEXT PRIMARY KEY,
        created_at REAL NOT NULL,
        expires_at REAL NOT NULL,
        used_at REAL,
        voided_at REAL
    );
    CREATE TABLE pairing_failures (
        at REAL NOT NULL
    );
    CREATE TABLE seen_nonces (
        key_id TEXT NOT NULL,
        nonce TEXT NOT NULL,
        expires_at REAL NOT NULL,
        PRIMARY KEY (key_id, nonce)
    ) WITHOUT ROWID;
    CREATE INDEX seen_nonces_expiry ON seen_nonces (expires_at);
    """,
]


class DatabaseError(Exception):
    """The database cannot be used; the sentence says why and what to do."""


PassphraseSource = Callable[[], str]


def passphrase_from_env_or_prompt() -> str:
    value = os.environ.get(ENV_PASSPHRASE)
    if value:
        return value
    if not sys.stdin.isatty():
        raise DatabaseError(
            f"storage.encryption is 'passphrase' but {ENV_PASSPHRASE} is not set and there is no terminal to ask on"
        )
    return getpass.getpass("privchat passphrase: ")


async def connect(path: Path) -> aiosqlite.Connection:
    path.parent.mkdir(parents=True, exist_ok=True)
    db = await aiosqlite.connect(path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None)
    db.row_factory = aiosqlite.Row
    try:
        await db.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        await db.execute("PRAGMA journal_mode = WAL")
        await db.execute("PRAGMA synchronous = NORMAL")
        await db.execute("PRAGMA foreign_keys = ON")
    except BaseException:
        await db.close()  # its worker thread would otherwise keep the process from exiting
        raise
    try:
        os.chmod(path, 0o600)
    except OSError:
        pass
    return db


async def migrate(db: aiosqlite.Connection) -> int:
    """Apply pending migrations in one transaction each; returns the schema version."""
    async with db.execute("PRAGMA user_version") as cursor:
        row = await cursor.fetchone()
    version = int(row[0])
    if version > len(MIGRATIONS):
        raise DatabaseError(
            f"the database has schema version {version}, newer than this privchat knows ({len(MIGRATIONS)}); upgrade privchat"
        )
    for index in range(version, len(MIGRATIONS)):
        await db.execute("BEGIN IMMEDIATE")
        try:
            for statement in _split_sql(MIGRATIONS[index]):
                await db.execute(statement)
            await db.execute(f"PRAGMA user_version = {index + 1}")
            await db.execute("COMMIT")
        except Exception:
            await db.execute("ROLLBACK")
            raise
    return len(MIGRATIONS)


def _split_sql(script: str) -> list[str]:
    return [part.strip() for part in script.split(";") if part.strip()]


async def _get_meta(db: aiosqlite.Connection, key: str) -> str | None:
    async with db.execute("SELECT value FROM meta WHERE key = ?", (key,)) as cursor:
        row = await cursor.fetchone()
    return None if row is None else str(row[0])


async def unlock(db: aiosqlite.Connection, config: Config, passphrase_source: PassphraseSource | None = None) -> Cipher:
    """Return the cipher for this database, creating the key on first use.

    A wrong key or passphrase raises and writes nothing: the database and the key file are only
    written when neither held a key before.
    """
    mode = config.get("storage", "encryption")
    stored_mode = await _get_meta(db, "encryption")
    if stored_mode is not None and stored_mode != mode:
        raise DatabaseError(
            f"storage.encryption is '{mode}' but this database was created with '{stored_mode}'; "
            f"set storage.encryption: {stored_mode} (to change modes, export the history, start a new database, import)"
        )
    if mode == "off":
        if stored_mode is None:
            await _set_meta(db, {"encryption": "off"})
        return Cipher(None)

    key_version = int(await _get_meta(db, "key_version") or 1)
    wrapped_b64 = await _get_meta(db, "wrapped_data_key")
    if mode == "keyfile":
        key_path = config.key_file
        if wrapped_b64 is None:
            kek = read_key_file(key_path) if key_path.exists() else create_key_file(key_path)
            return await _initialise(db, kek, mode, key_version, extra={})
        if not key_path.exists():
            raise DatabaseError(
                f"the key file {key_path} is missing, and this database can only be opened with it; "
                "restore it from your backup (a new key would not open the stored history)"
            )
        try:
            kek = read_key_file(key_path)
        except CryptoError as exc:
            raise DatabaseError(str(exc)) from exc
        try:
            return Cipher(unwrap_data_key(kek, base64.b64decode(wrapped_b64), key_version), key_version)
        except WrongKeyError as exc:
            raise DatabaseError(f"the key file {key_path} does not open this database ({config.database_path}); nothing was changed") from exc

    # passphrase
    source = passphrase_source or passphrase_from_env_or_prompt
    passphrase = source()
    salt_b64 = await _get_meta(db, "kdf_salt")
    if wrapped_b64 is None:
        salt = secrets.token_bytes(16)
        kek = await asyncio.to_thread(derive_kek_from_passphrase, passphrase, salt)
        return await _initialise(db, kek, mode, key_version, extra={
            "kdf": "scrypt", "kdf_salt": base64.b64encode(salt).decode(),
            "kdf_params": f"{SCRYPT_N},{SCRYPT_R},{SCRYPT_P}",
        })
    n, r, p = (int(x) for x in (await _get_meta(db, "kdf_params") or f"{SCRYPT_N},{SCRYPT_R},{SCRYPT_P}").split(","))
    kek = await asyncio.to_thread(derive_kek_from_passphrase, passphrase, base64.b64decode(salt_b64 or ""), n, r, p)
    try:
        return Cipher(unwrap_data_key(kek, base64.b64decode(wrapped_b64), key_version), key_version)
    except WrongKeyError as exc:
        raise DatabaseError("the passphrase does not open this database; nothing was changed") from exc


async def _initialise(db: aiosqlite.Connection, kek: bytes, mode: str, key_version: int, extra: dict[str, str]) -> Cipher:
    data_key = new_data_key()
    wrapped = wrap_data_key(kek, data_key, key_version)
    await _set_meta(db, {"encryption": mode, "key_version": str(key_version),
                         "wrapped_data_key": base64.b64encode(wrapped).decode(), **extra})
    return Cipher(data_key, key_version)


async def _set_meta(db: aiosqlite.Connection, values: dict[str, str]) -> None:
    await db.execute("BEGIN IMMEDIATE")
    try:
        for key, value in values.items():
            await db.execute("INSERT INTO meta (key, value) VALUES (?, ?)", (key, value))
        await db.execute("COMMIT")
    except Exception:
        await db.execute("ROLLBACK")
        raise


def _cannot_open(path: Path, exc: BaseException) -> str:
    return (f"cannot open the database {path} for writing ({exc}); check that its folder exists, is writable "
            "(not on a read-only mount) and has free space")


class Database:
    """One open, migrated, unlocked database: the connection plus its cipher."""

    def __init__(self, conn: aiosqlite.Connection, cipher: Cipher, path: Path) -> None:
        self.conn = conn
        self.cipher = cipher
        self.path = path
        self._write_lock = asyncio.Lock()

    @classmethod
    async def open(cls, config: Config, passphrase_source: PassphraseSource | None = None) -> "Database":
        path = config.database_path
        try:
            conn = await connect(path)
        except (sqlite3.Error, OSError) as exc:
            raise DatabaseError(_cannot_open(path, exc)) from exc
        try:
            await migrate(conn)
            cipher = await unlock(conn, config, passphrase_source)
        except sqlite3.OperationalError as exc:
            await conn.close()
            raise DatabaseError(_cannot_open(path, exc)) from exc
        except BaseException:
            await conn.close()
            raise
        return cls(conn, cipher, path)

    async def write(self, sql: str, params: tuple = ()) -> int:
        """One statement committed on its own (autocommit): one round trip instead of three.

        Taken under the same lock as transactions, so it never lands inside another coroutine's
        open transaction on this shared connection. Returns the row count.
        """
        async with self._write_lock:
            cursor = await self.conn.execute(sql, params)
            return cursor.rowcount

    def transaction(self) -> "_Transaction":
        """``async with db.transaction():`` — one writer at a time in this process, BEGIN IMMEDIATE."""
        return _Transaction(self)

    async def close(self) -> None:
        await self.conn.close()


class _Transaction:
    def __init__(self, database: Database) -> None:
        self.database = database

    async def __aenter__(self) -> aiosqlite.Connection:
        await self.database._write_lock.acquire()
        try:
            await self.database.conn.execute("BEGIN IMMEDIATE")
        except BaseException:
            self.database._write_lock.release()
            raise
        return self.database.conn

    async def __aexit__(self, exc_type, exc, tb) -> None:
        conn = self.database.conn
        try:
            if exc_type is None:
                try:
                    await conn.execute("COMMIT")
                except BaseException:
                    if conn.in_transaction:
                        await conn.execute("ROLLBACK")
                    raise
            elif conn.in_transaction:
                await conn.execute("ROLLBACK")
        finally:
            self.database._write_lock.release()
