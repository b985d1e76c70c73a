"""The SQLite database: connection settings, numbered migrations, and unlocking the data key.

The server and the CLI each open their own connection; WAL mode and a busy timeout let the CLI pair,
revoke or export while the server streams, without "database is locked" failures. Every connection
turns ``secure_delete`` on itself (many SQLite builds default it to off), so deleted rows are
overwritten with zeros, and a delete of history is followed by a WAL checkpoint that truncates the
WAL file (``Database.checkpoint``), where the deleted pages' old copies would otherwise remain.
"""

from __future__ import annotations

import asyncio
import base64
import getpass
import logging
import os
import secrets
import sqlite3
import sys
from pathlib import Path
from typing import Any, Awaitable, Callable, Iterable, TypeVar

import aiosqlite

from ..config import ENV_PASSPHRASE, Config
from ..errors import PrivchatError
from .crypto import (
    Cipher,
    CryptoError,
    WrongKeyError,
    create_key_file,
    new_data_key,
    read_key_file,
    unwrap_data_key,
    wrap_data_key,
)
from .kdf import CURRENT, LEGACY_SCRYPT, SALT_BYTES, KdfParams
from .reseal import reseal_schema_1_values
from .tree_migration import messages_become_a_tree

log = logging.getLogger(__name__)
T = TypeVar("T")

BUSY_TIMEOUT_MS = 10_000

# A migration step that needs the data key: it runs after unlocking, in the migration's transaction.
KeyedStep = Callable[[aiosqlite.Connection, Cipher], Awaitable[None]]

# Each entry moves the schema from version i to i + 1. Never edit a released entry; append.
MIGRATIONS: list[str | KeyedStep] = [
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
    # 2: bind every value to what gives it its meaning (conversation, role, position; a settings
    #    version) and re-seal what version 1 wrote (reseal.py). Needs the key.
    reseal_schema_1_values,
    # 3: how a reply ended and how fast it came, so a reply loaded from history shows what the
    #    live one showed (its token count, speed and "stopped at the token limit").
    """
    ALTER TABLE messages ADD COLUMN finish_reason TEXT;
    ALTER TABLE messages ADD COLUMN ttft_ms REAL;
    ALTER TABLE messages ADD COLUMN tokens_per_second REAL;
    """,
    # 4: end-to-end encryption (e2e/). The server's HPKE key pairs, each private key sealed with the
    #    data key; and each pairing code kept sealed, not only hashed, because the page proves it
    #    knows the code with an HMAC keyed by the code (docs/E2E.md) instead of sending it.
    """
    CREATE TABLE e2e_keys (
        kid TEXT PRIMARY KEY,
        private_key BLOB NOT NULL,
        created_at REAL NOT NULL,
        retired_at REAL
    );
    ALTER TABLE pairing_codes ADD COLUMN code_sealed BLOB;
    """,
    # 5: messages form a tree (regenerate, edit): parent_id, the conversation's current leaf and who
    #    set its title; every message re-sealed bound to its parent too (tree_migration.py). Needs the key.
    messages_become_a_tree,
    # 6 (models): which model wrote a reply (a name from models.list), shown with the reply.
    #    Not sealed: a config name, like finish_reason, not the owner's text.
    """
    ALTER TABLE messages ADD COLUMN model TEXT;
    """,
    # 7 (attachments): files attached to a message (documents, images). The file, its
    #    extracted text and its name are sealed, bound to the row, its conversation and message, its
    #    kind, type and size (bindings.attachment_binding); uploaded before the message is sent
    #    (message_id NULL, "pending") and re-sealed bound to the message when it is sent. Deleted with
    #    their conversation or message (secure_delete and the WAL checkpoint hold for them too).
    #    A reply's attachments_seen: how much of each document the model saw (numbers only).
    """
    CREATE TABLE attachments (
        id TEXT PRIMARY KEY,
        conversation_id TEXT REFERENCES conversations (id) ON DELETE CASCADE,
        message_id TEXT REFERENCES messages (id) ON DELETE CASCADE,
        kind TEXT NOT NULL CHECK (kind IN ('document', 'image')),
        mime TEXT NOT NULL,
        size INTEGER NOT NULL,
        pages INTEGER,
        name BLOB NOT NULL,
        content BLOB,
        data BLOB NOT NULL,
        created_at REAL NOT NULL,
        position INTEGER NOT NULL DEFAULT 0
    );
    CREATE INDEX attachments_by_message ON attachments (message_id, position);
    CREATE INDEX attachments_by_conversation ON attachments (conversation_id);
    ALTER TABLE messages ADD COLUMN attachments_seen TEXT;
    """,
]


class DatabaseError(PrivchatError):
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
        await db.execute("PRAGMA secure_delete = ON")
        async with db.execute("PRAGMA secure_delete") as cursor:
            if (await cursor.fetchone())[0] != 1:
                raise DatabaseError("this SQLite cannot turn secure_delete on, so deleted history would stay in the file; "
                                    "use a Python whose sqlite3 module supports PRAGMA secure_delete")
    except BaseException:
        await db.close()  # its worker thread would otherwise keep the process from exiting
        raise
    try:
        os.chmod(path, 0o600)
    except OSError:
        pass
    return db


async def _user_version(db: aiosqlite.Connection) -> int:
    async with db.execute("PRAGMA user_version") as cursor:
        row = await cursor.fetchone()
    return int(row[0])


async def migrate(db: aiosqlite.Connection, cipher: Cipher | None = None) -> int:
    """Apply pending migrations in order, one transaction each; returns the schema version reached.

    Without ``cipher`` it stops before the first step that needs the data key: ``Database.open``
    migrates once for the tables that unlocking reads, unlocks, then migrates again with the key.
    The version is read again inside each transaction, so two processes opening the same old
    database (the server and the CLI) apply each step once.
    """
    version = await _user_version(db)
    if version > len(MIGRATIONS):
        raise DatabaseError(
            f"the database has schema version {version}, newer than this privchat knows ({len(MIGRATIONS)}); upgrade privchat"
        )
    for index in range(version, len(MIGRATIONS)):
        step = MIGRATIONS[index]
        if not isinstance(step, str) and cipher is None:
            return index
        await db.execute("BEGIN IMMEDIATE")
        try:
            if await _user_version(db) <= index:
                if isinstance(step, str):
                    for statement in _split_sql(step):
                        await db.execute(statement)
                else:
                    await step(db, cipher)  # type: ignore[arg-type]
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
    mode = config.storage.encryption
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
    if wrapped_b64 is None:
        salt = secrets.token_bytes(SALT_BYTES)
        kek = await asyncio.to_thread(CURRENT.derive, passphrase, salt)
        return await _initialise(db, kek, mode, key_version, extra=_kdf_meta(CURRENT, salt))
    recorded = await _recorded_kdf(db)
    kek = await asyncio.to_thread(recorded.derive, passphrase, base64.b64decode(await _get_meta(db, "kdf_salt") or ""))
    try:
        data_key = unwrap_data_key(kek, base64.b64decode(wrapped_b64), key_version)
    except WrongKeyError as exc:
        raise DatabaseError("the passphrase does not open this database; nothing was changed") from exc
    if recorded != CURRENT:
        await _rewrap(db, passphrase, data_key, key_version)
    return Cipher(data_key, key_version)


async def _recorded_kdf(db: aiosqlite.Connection) -> KdfParams:
    """The KDF the wrapped key was made with; databases from before Argon2id say scrypt."""
    name = await _get_meta(db, "kdf") or LEGACY_SCRYPT.name
    params = await _get_meta(db, "kdf_params") or (LEGACY_SCRYPT.params if name == LEGACY_SCRYPT.name else "")
    return KdfParams(name, params)


def _kdf_meta(kdf: KdfParams, salt: bytes) -> dict[str, str]:
    return {"kdf": kdf.name, "kdf_params": kdf.params, "kdf_salt": base64.b64encode(salt).decode()}


async def _rewrap(db: aiosqlite.Connection, passphrase: str, data_key: bytes, key_version: int) -> None:
    """The same data key wrapped under a KEK from the current KDF and a fresh salt; no value changes."""
    salt = secrets.token_bytes(SALT_BYTES)
    kek = await asyncio.to_thread(CURRENT.derive, passphrase, salt)
    await _set_meta(db, {"wrapped_data_key": base64.b64encode(wrap_data_key(kek, data_key, key_version)).decode(),
                         **_kdf_meta(CURRENT, salt)}, replace=True)
    log.info("the passphrase now unlocks through %s (%s); the old wrapped key is gone", CURRENT.name, CURRENT.params)


async def _initialise(db: aiosqlite.Connection, kek: bytes, mode: str, key_version: int, extra: dict[str, str]) -> Cipher:
    data_key = new_data_key()
    wrapped = wrap_data_key(kek, data_key, key_version)
    await _set_meta(db, {"encryption": mode, "key_version": str(key_version),
                         "wrapped_data_key": base64.b64encode(wrapped).decode(), **extra})
    return Cipher(data_key, key_version)


async def _set_meta(db: aiosqlite.Connection, values: dict[str, str], *, replace: bool = False) -> None:
    """One transaction. Without ``replace`` an existing key fails the insert: two processes creating
    a database at once cannot overwrite each other's wrapped key."""
    sql = "INSERT INTO meta (key, value) VALUES (?, ?)"
    if replace:
        sql += " ON CONFLICT (key) DO UPDATE SET value = excluded.value"
    await db.execute("BEGIN IMMEDIATE")
    try:
        for key, value in values.items():
            await db.execute(sql, (key, value))
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
            await migrate(conn, cipher)
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

    async def rows_by_id(self, table: str, ids: Iterable[str]) -> dict[str, Any]:
        """Rows of ``table`` by their ``id``, asked 500 at a time (under SQLite's variable limit)."""
        ids = list(dict.fromkeys(ids))
        rows: dict[str, Any] = {}
        for start in range(0, len(ids), 500):
            chunk = ids[start:start + 500]
            async with self.conn.execute(f"SELECT * FROM {table} WHERE id IN ({','.join('?' * len(chunk))})", chunk) as cursor:
                rows.update({r["id"]: r for r in await cursor.fetchall()})
        return rows

    async def data_version(self) -> int:
        """SQLite's counter of commits by other connections to this database (this one's own do not
        count): what tells the search index that the CLI wrote meanwhile."""
        async with self.conn.execute("PRAGMA data_version") as cursor:
            return (await cursor.fetchone())[0]

    async def checkpoint(self) -> bool:
        """Copy the WAL into the database file and truncate the WAL to zero bytes.

        Called after history is deleted: secure_delete zeroes the rows in the new page images, but
        the WAL still holds the old images until it is checkpointed and truncated. Returns False
        when another connection's open read kept it from finishing (it is then logged; SQLite's
        next automatic checkpoint overwrites those frames later).
        """
        async with self._write_lock:
            async with self.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)") as cursor:
                busy, _frames, _copied = await cursor.fetchone()
        if busy:
            log.warning("the WAL of %s could not be truncated after a delete: another connection was reading", self.path)
        return not busy

    async def close(self) -> None:
        await self.conn.close()


async def _to_the_end(statement: Awaitable[T]) -> T:
    """Await a statement until SQLite has run it, even when the caller is cancelled meanwhile.

    aiosqlite runs statements on the connection's thread, in the order they were sent, and a
    cancelled ``await`` does not stop one: it runs later anyway. A transaction's BEGIN, COMMIT or
    ROLLBACK that ran after its owner gave up would leave the shared connection inside a
    transaction nobody owns (every later BEGIN then fails and every later single write stays
    uncommitted), so these three are waited for, and the cancel is raised once they ran.
    """
    task = asyncio.ensure_future(statement)
    cancelled: asyncio.CancelledError | None = None
    while True:
        try:
            result = await asyncio.shield(task)
        except asyncio.CancelledError as exc:
            if task.done():  # the statement itself was cancelled, not its caller
                raise
            cancelled = exc  # this caller was: let the statement finish first
            continue
        except BaseException:
            if cancelled is not None:
                raise cancelled
            raise
        break
    if cancelled is not None:
        raise cancelled
    return result


class _Transaction:
    """BEGIN IMMEDIATE under the write lock; COMMIT, or ROLLBACK on any exception or cancel.

    The lock is let go only once the connection is out of the transaction (``_to_the_end``).
    Statements of the body that a cancel interrupted still run before the ROLLBACK (aiosqlite keeps
    their order), so they are rolled back too.
    """

    def __init__(self, database: Database) -> None:
        self.database = database

    async def __aenter__(self) -> aiosqlite.Connection:
        await self.database._write_lock.acquire()
        try:
            await _to_the_end(self.database.conn.execute("BEGIN IMMEDIATE"))
        except BaseException:
            try:
                await self._roll_back()
            finally:
                self.database._write_lock.release()
            raise
        return self.database.conn

    async def __aexit__(self, exc_type, exc, tb) -> None:
        try:
            if exc_type is None:
                try:
                    await _to_the_end(self.database.conn.execute("COMMIT"))
                except BaseException:
                    await self._roll_back()
                    raise
            else:
                await self._roll_back()
        finally:
            self.database._write_lock.release()

    async def _roll_back(self) -> None:
        if self.database.conn.in_transaction:
            await _to_the_end(self.database.conn.execute("ROLLBACK"))
