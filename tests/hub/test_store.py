"""Store: pragmas, migrations, corrupt files, the transition table, the outbox's limits."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from edge_hub.clock import Clock
from edge_hub.store import Lane, StaleTransition, Store, open_database
from edge_hub.store.db import MIGRATIONS, StoreError
from edge_hub.vend import TRANSITIONS, InvalidTransition, VendState
from protocol.hub_api import EventType


async def make_store(tmp_path: Path, **limits: float) -> Store:
    return await Store.open(tmp_path / "hub.db", Clock("boot-1"), "hub-1",
                            max_rows=int(limits.get("rows", 1000)),
                            max_bytes=int(limits.get("bytes", 10**9)),
                            max_age_s=limits.get("age", 10**9))


async def test_pragmas_and_schema_version(tmp_path: Path) -> None:
    db = await open_database(tmp_path / "hub.db")
    try:
        for pragma, want in [("journal_mode", "wal"), ("synchronous", 2), ("foreign_keys", 1),
                             ("user_version", len(MIGRATIONS))]:
            async with db.execute(f"PRAGMA {pragma}") as cur:
                row = await cur.fetchone()
            assert row is not None and row[0] == want, pragma
    finally:
        await db.close()


def corrupt_copies(d: Path) -> list[bytes]:
    return [p.read_bytes() for p in d.glob("hub.db.corrupt-*")]


async def test_corrupt_file_is_moved_aside_and_replaced(tmp_path: Path,
                                                        caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "hub.db"
    path.write_bytes(b"this is not a database" * 100)
    db = await open_database(path)
    await db.close()
    aside = corrupt_copies(tmp_path)
    assert len(aside) == 1 and aside[0].startswith(b"this is not")
    assert any(r.levelname == "CRITICAL" and "moved aside" in r.message for r in caplog.records)


async def test_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "hub.db"
    con = sqlite3.connect(path)
    con.execute(f"PRAGMA user_version={len(MIGRATIONS) + 1}")
    con.close()
    with pytest.raises(StoreError, match="newer"):
        await open_database(path)


async def test_transition_commits_audit_and_event_together(tmp_path: Path) -> None:
    store = await make_store(tmp_path)
    try:
        async with store.transaction() as tx:
            await store.upsert_board(tx, "b1", port="/dev/x", addr=0, firmware="1",
                                     protocol_version=1, products=["cola"])
        s = await store.create_session(board_uid="b1", request_id=1, board_epoch=7,
                                       product="cola", options=[], quantity=1)
        await store.transition(s, VendState.AWAITING_PAYMENT, "qr", order_id="o1", amount=2000,
                               currency="INR")
        with pytest.raises(InvalidTransition):
            await store.transition(s, VendState.DONE, "skip the payment")
        await store.transition(s, VendState.CANCELLED, "customer",
                               event_data={"reason": "customer"})
        assert s.state is VendState.CANCELLED
        async with store.db.execute("SELECT body FROM outbox") as cur:
            bodies = [json.loads(r[0]) for r in await cur.fetchall()]
        assert [b["type"] for b in bodies] == [EventType.ORDER_CANCELLED]
        assert bodies[0]["order_id"] == "o1" and bodies[0]["at"]["boot_id"] == "boot-1"
        rows = await store.list_sessions(board_uid="b1", state=None, limit=10)
        assert [a["to"] for a in rows[0][1]] == ["ordering", "awaiting_payment", "cancelled"]
        # A stale snapshot loses cleanly instead of overwriting the newer state.
        stale = rows[0][0]
        stale.state = VendState.AWAITING_PAYMENT
        with pytest.raises(StaleTransition):
            await store.transition(stale, VendState.EXPIRED, "late timer")
        assert store.outbox.depth == 1
    finally:
        await store.close()


async def test_failed_transaction_leaves_no_event(tmp_path: Path) -> None:
    store = await make_store(tmp_path)
    try:
        with pytest.raises(RuntimeError):
            async with store.transaction() as tx:
                await store.add_event(tx, EventType.VEND_RESULT, "b1", {"outcome": "success"},
                                      "o1")
                raise RuntimeError("crash between the event and the state change")
        assert store.outbox.depth == 0
        async with store.db.execute("SELECT COUNT(*) FROM outbox") as cur:
            assert tuple(await cur.fetchone() or ()) == (0,)
    finally:
        await store.close()


def test_final_states_have_no_way_out() -> None:
    for state in (VendState.DONE, VendState.FAILED, VendState.UNKNOWN, VendState.NOT_VENDED):
        assert TRANSITIONS[state] == frozenset()
    # No path reaches "approved" except from "awaiting_payment" (paid): rule 1.
    assert [s for s, t in TRANSITIONS.items() if VendState.APPROVED in t] == [
        VendState.AWAITING_PAYMENT]


async def test_outbox_drops_oldest_telemetry_never_money(tmp_path: Path) -> None:
    store = await make_store(tmp_path, rows=10)
    try:
        for i in range(4):
            async with store.transaction() as tx:
                await store.add_event(tx, EventType.VEND_RESULT, "b1", {"n": i}, f"o{i}")
        for i in range(10):
            await store.add_telemetry(EventType.TELEMETRY, "b1", {"n": i})
        await store.outbox.flush_telemetry()
        assert store.outbox.depth == 10
        assert store.outbox.dropped[Lane.TELEMETRY] == 4
        async with store.db.execute("SELECT lane, body FROM outbox ORDER BY id") as cur:
            rows = [(r[0], json.loads(r[1])["data"]["n"]) for r in await cur.fetchall()]
        assert [n for lane, n in rows if lane == "money"] == [0, 1, 2, 3]
        assert [n for lane, n in rows if lane == "telemetry"] == [4, 5, 6, 7, 8, 9]
        assert store.outbox.full_reason is None
        # Money alone at the limit: still stored, and the outbox says it is full.
        for i in range(4, 12):
            async with store.transaction() as tx:
                await store.add_event(tx, EventType.VEND_RESULT, "b1", {"n": i}, f"o{i}")
        await store.outbox.enforce_limits()
        assert store.outbox.lanes[Lane.MONEY].rows == 12
        assert store.outbox.lanes[Lane.TELEMETRY].rows == 0
        assert store.outbox.full_reason is not None and "outbox full" in store.outbox.full_reason
        assert store.outbox.stats()["dropped"] == {"telemetry": 10}
    finally:
        await store.close()
    # The dropped counter survives a restart.
    store = await make_store(tmp_path, rows=10)
    try:
        assert store.outbox.dropped[Lane.TELEMETRY] == 10
        assert store.outbox.full_reason is not None
    finally:
        await store.close()


async def test_outbox_drops_telemetry_by_age(tmp_path: Path) -> None:
    store = await make_store(tmp_path, age=60)
    try:
        for i in range(3):
            await store.add_telemetry(EventType.TELEMETRY, "b1", {"n": i})
        await store.outbox.flush_telemetry()
        await store.db.execute("UPDATE outbox SET created_wall = created_wall - 3600 "
                               "WHERE id <= 2")
        await store.outbox.load()
        assert await store.outbox.enforce_limits() == 2
        assert store.outbox.depth == 1
    finally:
        await store.close()


async def test_next_batch_keeps_an_orders_events_in_one_flight(tmp_path: Path) -> None:
    store = await make_store(tmp_path)
    try:
        async with store.transaction() as tx:
            for oid in ("o1", "o2", "o1", "o3"):
                await store.add_event(tx, EventType.VEND_STARTED, "b1", {}, oid)
        first = await store.outbox.next_batch(Lane.MONEY, 0, 2, set())
        assert [r.order_key for r in first] == ["o1", "o2"]
        second = await store.outbox.next_batch(Lane.MONEY, first[-1].id, 10, {"o1", "o2"})
        assert second == []  # the next o1 event waits until the first batch is acknowledged
        await store.outbox.delete(first)
        rest = await store.outbox.next_batch(Lane.MONEY, 0, 10, set())
        assert [r.order_key for r in rest] == ["o1", "o3"]
        assert store.outbox.depth == 2
    finally:
        await store.close()


async def test_failed_migration_rolls_back_and_is_loud(tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    import edge_hub.store.db as dbmod
    db = await open_database(tmp_path / "hub.db")
    await db.close()
    broken = (*MIGRATIONS, "CREATE TABLE extra (x INTEGER); INSERT INTO nowhere VALUES (1)")
    monkeypatch.setattr(dbmod, "MIGRATIONS", broken)
    with pytest.raises(StoreError, match="migration to schema version 2 failed"):
        await dbmod.open_database(tmp_path / "hub.db")
    con = sqlite3.connect(tmp_path / "hub.db")
    try:
        assert con.execute("PRAGMA user_version").fetchone() == (1,)
        tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master")}
        assert "extra" not in tables  # the whole step rolled back
    finally:
        con.close()


async def test_outbox_drops_telemetry_over_the_byte_limit(tmp_path: Path) -> None:
    store = await make_store(tmp_path, bytes=4000)
    try:
        for i in range(40):
            await store.add_telemetry(EventType.TELEMETRY, "b1", {"n": i, "pad": "x" * 50})
        await store.outbox.flush_telemetry()
        assert store.outbox.size_bytes <= 4000
        assert store.outbox.dropped[Lane.TELEMETRY] > 0
        async with store.db.execute("SELECT body FROM outbox ORDER BY id") as cur:
            kept = [json.loads(r[0])["data"]["n"] for r in await cur.fetchall()]
        assert kept == list(range(40 - len(kept), 40))  # the newest are kept
    finally:
        await store.close()


async def test_old_finished_sessions_are_pruned_unless_unreported_or_flagged(
        tmp_path: Path) -> None:
    store = await make_store(tmp_path)
    try:
        async with store.transaction() as tx:
            await store.upsert_board(tx, "b1", port="/dev/x", addr=0, firmware="1",
                                     protocol_version=1, products=[])
        sessions = []
        for i in range(4):
            s = await store.create_session(board_uid="b1", request_id=i, board_epoch=1,
                                           product="water", options=[], quantity=1)
            await store.transition(s, VendState.AWAITING_PAYMENT, "qr", order_id=f"o{i}",
                                   amount=1000, currency="INR")
            sessions.append(s)
        await store.transition(sessions[0], VendState.CANCELLED, "customer",
                               event_data={"reason": "customer"})  # event still unsent
        await store.transition(sessions[1], VendState.EXPIRED, "expired",
                               event_data={"reason": "expired"})
        await store.transition(sessions[2], VendState.APPROVED, "paid")
        await store.transition(sessions[2], VendState.CHECKING, "lost")
        await store.transition(sessions[2], VendState.UNKNOWN, "nobody knows")  # attention
        rows = await store.outbox.next_batch(Lane.MONEY, 0, 100, set())
        await store.outbox.delete([r for r in rows if r.order_key in ("o1", "o2")])
        await store.db.execute("UPDATE sessions SET updated_at = updated_at - 1000")
        assert await store.prune_sessions(500) == 1  # o1: final, reported, not flagged
        left = {s.order_id for s, _ in await store.list_sessions(board_uid=None, state=None,
                                                                 limit=10)}
        assert left == {"o0", "o2", "o3"}
        async with store.db.execute("SELECT COUNT(*) FROM session_audit WHERE session_id = ?",
                                    (sessions[1].id,)) as cur:
            assert tuple(await cur.fetchone() or ()) == (0,)  # its audit went with it
    finally:
        await store.close()


async def test_idempotency_key_fits_the_gateway_whatever_the_hub_id(tmp_path: Path) -> None:
    import re
    store = await Store.open(tmp_path / "hub.db", Clock("b"), "h" * 64, max_rows=10,
                             max_bytes=10**6, max_age_s=60)
    try:
        async with store.transaction() as tx:
            await store.upsert_board(tx, "ab" * 12, port="", addr=0, firmware="",
                                     protocol_version=1, products=[])
        keys = {(await store.create_session(board_uid="ab" * 12, request_id=i, board_epoch=1,
                                            product="water", options=[], quantity=1)
                 ).idempotency_key for i in range(3)}
        assert len(keys) == 3
        assert all(re.fullmatch(r"[A-Za-z0-9_.:-]{1,64}", k) for k in keys)
    finally:
        await store.close()


async def test_a_cancelled_writer_never_leaves_a_transaction_open(tmp_path: Path) -> None:
    import asyncio
    store = await make_store(tmp_path)

    async def writer(durable: bool) -> None:
        async with store.transaction(durable=durable) as tx:
            await store.add_event(tx, EventType.VEND_RESULT, "b1", {}, "o1")
            await asyncio.sleep(10)

    try:
        for steps in range(8):  # cancel at every await point: pragma, BEGIN, insert, body
            for durable in (True, False):
                task = asyncio.create_task(writer(durable))
                for _ in range(steps):
                    await asyncio.sleep(0)
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
                async with store.transaction(durable=False) as tx:  # the next writer works
                    await tx.execute("SELECT 1")
        async with store.db.execute("SELECT COUNT(*) FROM outbox") as cur:
            assert tuple(await cur.fetchone() or ()) == (0,)  # nothing half-written survived
        async with store.db.execute("PRAGMA synchronous") as cur:
            assert tuple(await cur.fetchone() or ()) == (2,)  # back to FULL
    finally:
        await store.close()
