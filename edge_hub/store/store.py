"""The hub's durable state: boards, vend sessions (+ audit), the command cursor, the outbox.

One writer: every write goes through ``Store.transaction()`` (a lock around BEGIN IMMEDIATE ..
COMMIT). A vend state change, its audit row and the outbox event reporting it commit together.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiosqlite

from edge_hub.clock import Clock
from edge_hub.store.db import open_database, open_reader
from edge_hub.store.outbox import Lane, Outbox
from edge_hub.vend import (
    ACTIVE,
    EVENT_ON_ENTRY,
    NEEDS_ATTENTION,
    OUTCOME_OF,
    InvalidTransition,
    VendState,
    check_transition,
)
from protocol.hub_api import EventType, HubEvent

log = logging.getLogger(__name__)

CURSOR_KEY = "command_cursor"


class StaleTransition(Exception):
    """The session moved on before this transition committed (a race that lost cleanly)."""


class Tx:
    """One open write transaction; hooks run only once it committed."""

    def __init__(self, db: aiosqlite.Connection) -> None:
        self.db = db
        self._after: list[Callable[[], None]] = []

    async def execute(self, sql: str, params: Iterable[Any] = ()) -> aiosqlite.Cursor:
        return await self.db.execute(sql, tuple(params))

    def after_commit(self, fn: Callable[[], None]) -> None:
        self._after.append(fn)


@dataclass
class Session:
    """A snapshot of one sessions row. Only Store.transition changes ``state``."""

    id: int
    board_uid: str
    idempotency_key: str
    request_id: int
    board_epoch: int
    state: VendState
    product: str
    options: list[str]
    quantity: int
    boot_id: str
    created_at: float
    updated_at: float
    order_id: str | None = None
    amount: int | None = None
    currency: str | None = None
    upi_uri: str | None = None
    qr_expires_wall: float | None = None
    qr_expires_mono: float | None = None
    payment_id: str | None = None
    vend_deadline_mono: float | None = None
    vend_auth: bytes | None = None
    outcome: str | None = None
    dispensed: int | None = None
    needs_attention: bool = False
    extra: dict[str, Any] = field(default_factory=dict)  # in-memory only (timers, counters)

    @classmethod
    def from_row(cls, row: aiosqlite.Row) -> Session:
        d = dict(row)
        d["state"] = VendState(d["state"])
        d["options"] = json.loads(d["options"])
        d["needs_attention"] = bool(d["needs_attention"])
        return cls(**d)


MUTABLE_FIELDS = frozenset({
    "order_id", "amount", "currency", "upi_uri", "qr_expires_wall", "qr_expires_mono",
    "payment_id", "vend_deadline_mono", "vend_auth", "outcome", "dispensed", "boot_id",
})


class Store:
    def __init__(self, db: aiosqlite.Connection, clock: Clock, hub_id: str,
                 reader: aiosqlite.Connection | None = None) -> None:
        self.db = db
        # Bulk reads (outbox batches, the status page's order list) use their own connection and
        # thread, so a live purchase's writes never queue behind them (WAL: readers see the last
        # commit).
        self.reader = reader or db
        self.clock = clock
        self.hub_id = hub_id
        self._lock = asyncio.Lock()
        self.outbox = Outbox(self, max_rows=1 << 62, max_bytes=1 << 62, max_age_s=1e18)
        self.write_error: str | None = None

    @classmethod
    async def open(cls, path: Path, clock: Clock, hub_id: str, *, max_rows: int,
                   max_bytes: int, max_age_s: float) -> Store:
        db = await open_database(path)
        reader = await open_reader(path)
        store = cls(db, clock, hub_id, reader)
        store.outbox = Outbox(store, max_rows=max_rows, max_bytes=max_bytes, max_age_s=max_age_s)
        await store.outbox.load()
        return store

    async def close(self) -> None:
        await self.outbox.flush_telemetry()
        await self.close_connections()

    async def close_connections(self) -> None:
        if self.reader is not self.db:
            await self.reader.close()
        await self.db.close()

    @asynccontextmanager
    async def transaction(self, *, durable: bool = True) -> AsyncIterator[Tx]:
        """One write transaction. ``durable=False`` (synchronous=NORMAL for this commit) only for
        writes whose loss in a power cut is harmless: deleting acknowledged events (they are
        resent and the gateway answers "duplicate") and batched telemetry. The next durable
        commit syncs the WAL, and so everything before it, in order."""
        async with self._lock:
            tx = Tx(self.db)
            try:
                if not durable:
                    await self.db.execute("PRAGMA synchronous=NORMAL")
                await self.db.execute("BEGIN IMMEDIATE")
                yield tx
                # Shielded: a cancelled caller must not leave a half-known commit behind.
                await asyncio.shield(self.db.execute("COMMIT"))
                if durable:
                    self.write_error = None
            except BaseException as exc:
                if isinstance(exc, sqlite3.Error | OSError):
                    # Vend records cannot be stored: the hub stops taking orders until a
                    # durable write succeeds again (INVARIANTS rule 11).
                    self.write_error = f"{type(exc).__name__}: {exc}"
                # aiosqlite runs requests in order on its thread, even those whose await was
                # cancelled (a BEGIN, say): a ROLLBACK queued now runs after all of them, so no
                # transaction is ever left open for the next writer.
                await asyncio.shield(self._quietly("ROLLBACK"))
                raise
            finally:
                if not durable:
                    await asyncio.shield(self._quietly("PRAGMA synchronous=FULL"))
        for fn in tx._after:
            fn()

    async def _quietly(self, sql: str) -> None:
        try:
            await self.db.execute(sql)
        except (sqlite3.Error, ValueError) as e:  # nothing open / connection already closed
            log.debug("%s after an interrupted transaction: %s", sql, e)

    # --- events ------------------------------------------------------------------------------
    def event(self, type_: EventType, board_uid: str, data: dict[str, object],
              order_id: str | None = None) -> HubEvent:
        ev: HubEvent = {"id": f"{self.hub_id}-{uuid.uuid4().hex}", "type": type_.value,
                        "board_uid": board_uid, "at": self.clock.stamp(), "data": data}
        if order_id is not None:
            ev["order_id"] = order_id
        return ev

    async def add_event(self, tx: Tx, type_: EventType, board_uid: str,
                        data: dict[str, object], order_id: str | None = None) -> None:
        await self.outbox.add(tx, self.event(type_, board_uid, data, order_id), Lane.MONEY,
                              order_id or f"board:{board_uid}")

    async def add_telemetry(self, type_: EventType, board_uid: str,
                            data: dict[str, object]) -> None:
        """Buffer a telemetry event; a full buffer is committed now (the caller, e.g. a serial
        link under a flood of LOG frames, waits: back-pressure instead of memory)."""
        if self.outbox.buffer_telemetry(self.event(type_, board_uid, data)):
            await self.outbox.flush_telemetry()

    # --- boards ------------------------------------------------------------------------------
    async def upsert_board(self, tx: Tx, uid: str, *, port: str, addr: int, firmware: str,
                           protocol_version: int, products: list[str]) -> None:
        now = time.time()
        await tx.execute(
            "INSERT INTO boards (board_uid, port, addr, firmware, protocol_version, products, "
            "first_seen, last_seen) VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(board_uid) DO "
            "UPDATE SET port = excluded.port, addr = excluded.addr, firmware = excluded.firmware,"
            " protocol_version = excluded.protocol_version, products = excluded.products, "
            "last_seen = excluded.last_seen",
            (uid, port, addr, firmware, protocol_version, json.dumps(products), now, now))

    async def boards(self) -> list[dict[str, Any]]:
        async with self.db.execute("SELECT * FROM boards ORDER BY board_uid") as cur:
            return [dict(r) for r in await cur.fetchall()]

    async def set_in_service(self, uid: str, in_service: bool, reason: str | None) -> None:
        async with self.transaction() as tx:
            cur = await tx.execute(
                "UPDATE boards SET in_service = ?, out_of_service_reason = ? WHERE board_uid = ?",
                (int(in_service), None if in_service else reason, uid))
            if cur.rowcount == 0:
                raise KeyError(uid)

    async def set_registered(self, uid: str) -> None:
        async with self.transaction() as tx:
            await tx.execute("UPDATE boards SET registered = 1 WHERE board_uid = ?", (uid,))

    # --- meta --------------------------------------------------------------------------------
    async def get_meta(self, key: str, default: str | None = None) -> str | None:
        async with self.db.execute("SELECT value FROM meta WHERE key = ?", (key,)) as cur:
            row = await cur.fetchone()
        return default if row is None else str(row[0])

    async def set_meta(self, tx: Tx, key: str, value: str) -> None:
        await tx.execute("INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT(key) "
                         "DO UPDATE SET value = excluded.value", (key, value))

    async def cursor(self) -> int:
        return int(await self.get_meta(CURSOR_KEY, "0") or 0)

    # --- sessions ----------------------------------------------------------------------------
    async def create_session(self, *, board_uid: str, request_id: int, board_epoch: int,
                             product: str, options: list[str], quantity: int) -> Session:
        """A new session in ORDERING, with its idempotency key stored before any request."""
        now = time.time()
        # Unique on its own (the gateway scopes keys per hub); 57 characters whatever the hub id
        # (the gateway accepts [A-Za-z0-9_.:-]{1,64}).
        key = f"{board_uid}.{uuid.uuid4().hex}"
        async with self.transaction() as tx:
            cur = await tx.execute(
                "INSERT INTO sessions (board_uid, idempotency_key, request_id, board_epoch, "
                "state, product, options, quantity, boot_id, created_at, updated_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (board_uid, key, request_id, board_epoch, VendState.ORDERING.value, product,
                 json.dumps(options), quantity, self.clock.boot_id, now, now))
            sid = int(cur.lastrowid or 0)
            await self._audit(tx, sid, "-", VendState.ORDERING, f"order request {request_id}")
        return Session(id=sid, board_uid=board_uid, idempotency_key=key, request_id=request_id,
                       board_epoch=board_epoch, state=VendState.ORDERING, product=product,
                       options=options, quantity=quantity, boot_id=self.clock.boot_id,
                       created_at=now, updated_at=now)

    async def _audit(self, tx: Tx, sid: int, from_state: str, to_state: str, reason: str) -> None:
        await tx.execute("INSERT INTO session_audit (session_id, at, from_state, to_state, "
                         "reason) VALUES (?, ?, ?, ?, ?)",
                         (sid, time.time(), from_state, to_state, reason))

    async def transition(self, s: Session, target: VendState, reason: str, *,
                         event_data: dict[str, object] | None = None,
                         tx: Tx | None = None, **fields: Any) -> None:
        """Move a session along the table, with its audit row and outbox event, in one commit.

        Raises InvalidTransition (not in the table) or StaleTransition (lost a race)."""
        check_transition(s.id, s.state, target)
        bad = set(fields) - MUTABLE_FIELDS
        if bad:
            raise ValueError(f"not session fields: {sorted(bad)}")
        if tx is None:
            async with self.transaction() as own:
                await self._transition(own, s, target, reason, event_data, fields)
        else:
            await self._transition(tx, s, target, reason, event_data, fields)

    async def _transition(self, tx: Tx, s: Session, target: VendState, reason: str,
                          event_data: dict[str, object] | None, fields: dict[str, Any]) -> None:
        now = time.time()
        attention = target in NEEDS_ATTENTION
        if target in OUTCOME_OF:
            fields.setdefault("outcome", OUTCOME_OF[target].value)
        cols = "".join(f", {k} = ?" for k in fields)
        cur = await tx.execute(
            f"UPDATE sessions SET state = ?, updated_at = ?, needs_attention = ?{cols} "
            "WHERE id = ? AND state = ?",
            (target.value, now, int(attention), *fields.values(), s.id, s.state.value))
        if cur.rowcount != 1:
            raise StaleTransition(f"session {s.id} is no longer {s.state}")
        await self._audit(tx, s.id, s.state, target, reason)
        order_id = fields.get("order_id", s.order_id)
        ev_type = EVENT_ON_ENTRY.get(target)
        if ev_type is not None and order_id is not None:
            await self.add_event(tx, ev_type, s.board_uid, event_data or {}, order_id)
        previous = s.state

        def applied() -> None:
            for k, v in fields.items():
                setattr(s, k, v)
            s.state = target
            s.updated_at = now
            s.needs_attention = attention
            log.info("board %s order %s: %s -> %s (%s)", s.board_uid, order_id or "-",
                     previous, target, reason)

        tx.after_commit(applied)

    async def prune_sessions(self, older_than_s: float) -> int:
        """Delete finished sessions (audit rows cascade) not updated for ``older_than_s``, unless
        they need attention or an event about them is still in the outbox."""
        marks = ",".join("?" * len(ACTIVE))
        async with self.transaction(durable=False) as tx:
            cur = await tx.execute(
                f"DELETE FROM sessions WHERE state NOT IN ({marks}) AND needs_attention = 0 "
                "AND updated_at < ? AND (order_id IS NULL OR order_id NOT IN "
                "(SELECT order_key FROM outbox WHERE order_key IS NOT NULL))",
                (*(x.value for x in ACTIVE), time.time() - older_than_s))
            return int(cur.rowcount or 0)

    async def active_sessions(self) -> list[Session]:
        marks = ",".join("?" * len(ACTIVE))
        async with self.db.execute(f"SELECT * FROM sessions WHERE state IN ({marks}) ORDER BY id",
                                   tuple(x.value for x in ACTIVE)) as cur:
            return [Session.from_row(r) for r in await cur.fetchall()]

    async def session_by_order(self, order_id: str) -> Session | None:
        async with self.db.execute("SELECT * FROM sessions WHERE order_id = ?",
                                   (order_id,)) as cur:
            row = await cur.fetchone()
        return None if row is None else Session.from_row(row)

    async def list_sessions(self, *, board_uid: str | None, state: str | None,
                            limit: int) -> list[tuple[Session, list[dict[str, Any]]]]:
        where, params = [], []
        if board_uid:
            where.append("board_uid = ?")
            params.append(board_uid)
        if state:
            where.append("state = ?")
            params.append(state)
        db = self.reader
        sql = ("SELECT * FROM sessions" + (" WHERE " + " AND ".join(where) if where else "")
               + " ORDER BY needs_attention DESC, id DESC LIMIT ?")
        async with db.execute(sql, (*params, limit)) as cur:
            sessions = [Session.from_row(r) for r in await cur.fetchall()]
        out = []
        for s in sessions:
            async with db.execute("SELECT at, from_state, to_state, reason FROM "
                                       "session_audit WHERE session_id = ? ORDER BY id",
                                       (s.id,)) as cur:
                audit = [{"at": r[0], "from": r[1], "to": r[2], "reason": r[3]}
                         for r in await cur.fetchall()]
            out.append((s, audit))
        return out


__all__ = ["InvalidTransition", "Session", "StaleTransition", "Store", "Tx"]
