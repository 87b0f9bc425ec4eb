"""Opening the hub's SQLite database: pragmas, integrity check, migrations.

One file, one writer connection (aiosqlite runs it in its own thread). The file holds vend
sessions and the outbox, so it runs with ``synchronous=FULL``: a commit is on the card before the
hub sends any frame that depends on it. Telemetry is batched by its writer instead (fewer commits).
A corrupt file is moved aside with a loud log and a fresh one is created: a crash loop on a
broken card helps nobody, and the moved file is kept for an operator.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Final

import aiosqlite

log = logging.getLogger(__name__)

BUSY_TIMEOUT_MS: Final = 5000

# One entry per schema version; each runs in one transaction and sets user_version.
MIGRATIONS: Final[Sequence[str]] = (
    # 1: the initial schema
    """
    CREATE TABLE boards (
        board_uid TEXT PRIMARY KEY,
        port TEXT NOT NULL DEFAULT '',
        addr INTEGER NOT NULL DEFAULT 0,
        firmware TEXT NOT NULL DEFAULT '',
        protocol_version INTEGER NOT NULL DEFAULT 0,
        products TEXT NOT NULL DEFAULT '[]',
        in_service INTEGER NOT NULL DEFAULT 1,
        out_of_service_reason TEXT,
        registered INTEGER NOT NULL DEFAULT 0,
        first_seen REAL NOT NULL,
        last_seen REAL NOT NULL
    );
    CREATE TABLE sessions (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        board_uid TEXT NOT NULL REFERENCES boards(board_uid),
        idempotency_key TEXT NOT NULL UNIQUE,
        request_id INTEGER NOT NULL,
        board_epoch INTEGER NOT NULL,
        state TEXT NOT NULL,
        order_id TEXT UNIQUE,
        product TEXT NOT NULL,
        options TEXT NOT NULL,
        quantity INTEGER NOT NULL,
        amount INTEGER,
        currency TEXT,
        upi_uri TEXT,
        qr_expires_wall REAL,
        qr_expires_mono REAL,
        payment_id TEXT,
        vend_deadline_mono REAL,
        vend_auth BLOB,
        outcome TEXT,
        dispensed INTEGER,
        boot_id TEXT NOT NULL,
        created_at REAL NOT NULL,
        updated_at REAL NOT NULL,
        needs_attention INTEGER NOT NULL DEFAULT 0
    );
    CREATE INDEX sessions_board_state ON sessions(board_uid, state);
    CREATE INDEX sessions_state ON sessions(state);
    CREATE TABLE session_audit (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        session_id INTEGER NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
        at REAL NOT NULL,
        from_state TEXT NOT NULL,
        to_state TEXT NOT NULL,
        reason TEXT NOT NULL
    );
    CREATE INDEX session_audit_session ON session_audit(session_id);
    CREATE TABLE outbox (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        event_id TEXT NOT NULL UNIQUE,
        lane TEXT NOT NULL CHECK (lane IN ('money', 'telemetry')),
        order_key TEXT,
        body TEXT NOT NULL,
        size INTEGER NOT NULL,
        created_mono REAL NOT NULL,
        created_wall REAL NOT NULL
    );
    CREATE INDEX outbox_lane ON outbox(lane, id);
    CREATE TABLE meta (
        key TEXT PRIMARY KEY,
        value TEXT NOT NULL
    );
    CREATE TABLE dropped (
        lane TEXT PRIMARY KEY,
        count INTEGER NOT NULL
    );
    """,
)


class StoreError(Exception):
    """The database cannot be used (schema from a newer hub, failed migration, ...)."""


def _move_aside(path: Path, why: str) -> Path:
    stamp = time.strftime("%Y%m%dT%H%M%S")
    target = path.with_name(f"{path.name}.corrupt-{stamp}")
    for suffix in ("", "-wal", "-shm"):
        src = Path(str(path) + suffix)
        if src.exists():
            src.rename(Path(str(target) + suffix))
    log.critical("database %s is corrupt (%s): moved aside to %s, starting with a fresh one",
                 path, why, target)
    return target


async def _configure(db: aiosqlite.Connection) -> None:
    await db.execute("PRAGMA journal_mode=WAL")
    await db.execute("PRAGMA synchronous=FULL")
    await db.execute("PRAGMA foreign_keys=ON")
    await db.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
    await db.execute("PRAGMA journal_size_limit=8388608")


async def _integrity_ok(db: aiosqlite.Connection) -> str | None:
    async with db.execute("PRAGMA integrity_check") as cur:
        rows = [r[0] for r in await cur.fetchall()]
    return None if rows == ["ok"] else "; ".join(str(r) for r in rows[:3])


async def _migrate(db: aiosqlite.Connection, path: Path) -> None:
    async with db.execute("PRAGMA user_version") as cur:
        row = await cur.fetchone()
    version = int(row[0]) if row else 0
    if version > len(MIGRATIONS):
        raise StoreError(f"{path}: schema version {version} is newer than this hub "
                         f"({len(MIGRATIONS)}); refusing to touch it")
    for target in range(version + 1, len(MIGRATIONS) + 1):
        script = MIGRATIONS[target - 1]
        try:
            await db.execute("BEGIN IMMEDIATE")
            for stmt in (s.strip() for s in script.split(";")):
                if stmt:
                    await db.execute(stmt)
            await db.execute(f"PRAGMA user_version={target}")
            await db.commit()
        except sqlite3.Error as e:
            await db.rollback()
            raise StoreError(f"{path}: migration to schema version {target} failed: {e}") from e
        log.info("database %s migrated to schema version %d", path, target)


async def open_database(path: Path) -> aiosqlite.Connection:
    """Open (creating if needed) the hub database, checked and migrated."""
    path.parent.mkdir(parents=True, exist_ok=True)
    for attempt in (1, 2):
        db = await aiosqlite.connect(path, isolation_level=None)
        try:
            await _configure(db)
            problem = await _integrity_ok(db)
        except sqlite3.DatabaseError as e:
            problem = str(e)
        if problem is None:
            break
        await db.close()
        if attempt == 2:
            raise StoreError(f"{path}: fresh database failed its integrity check: {problem}")
        _move_aside(path, problem)
    db.row_factory = aiosqlite.Row
    try:
        await _migrate(db, path)
    except BaseException:
        await db.close()
        raise
    return db


async def open_reader(path: Path) -> aiosqlite.Connection:
    """A second, read-only connection to a database ``open_database`` already prepared."""
    db = await aiosqlite.connect(path, isolation_level=None)
    try:
        await db.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        await db.execute("PRAGMA query_only=1")
    except BaseException:
        await db.close()
        raise
    db.row_factory = aiosqlite.Row
    return db
