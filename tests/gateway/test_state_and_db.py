"""The order transition table, and the storage rules: migrations, integrity check, group commit,
units that fail roll back alone, conditional transitions that lose races cleanly."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest

from cloud_gateway.db import Database, DatabaseCorrupt, DatabaseError, Tx
from cloud_gateway.errors import InvalidTransition
from cloud_gateway.orders.state import TRANSITIONS, check_transition
from cloud_gateway.schema import MIGRATIONS
from protocol.hub_api import FINAL_ORDER_STATES, OrderState


def test_table_covers_every_state_and_only_flagged_final_state_has_exits() -> None:
    assert set(TRANSITIONS) == set(OrderState)
    for state in FINAL_ORDER_STATES - {OrderState.FLAGGED}:
        assert TRANSITIONS[state] == frozenset(), state
    # money rules in the table: nothing is dispensed before paid, refunds follow failure
    assert OrderState.DISPENSING not in TRANSITIONS[OrderState.PAYMENT_PENDING]
    assert OrderState.DISPENSING not in TRANSITIONS[OrderState.CREATED]
    assert OrderState.FULFILLED not in TRANSITIONS[OrderState.PAYMENT_PENDING]
    assert TRANSITIONS[OrderState.FAILED] == {OrderState.REFUND_PENDING}


def test_every_pair_outside_the_table_raises() -> None:
    for src in OrderState:
        for dst in OrderState:
            if dst in TRANSITIONS[src]:
                assert check_transition("o", src, dst) == src
            else:
                with pytest.raises(InvalidTransition) as err:
                    check_transition("o", src, dst)
                assert err.value.details["state"] == src and err.value.status == 409


async def test_migrations_set_user_version_and_reopen_cleanly(tmp_path: Path) -> None:
    path = tmp_path / "g.sqlite3"
    for _ in range(2):
        db = Database(path, checkpoint_interval_s=0.05)
        await db.open()
        assert db.query_one("PRAGMA user_version")[0] == len(MIGRATIONS)
        assert db.query_one("PRAGMA journal_mode")[0] == "wal"
        await db.close()


async def test_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "g.sqlite3"
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version = {len(MIGRATIONS) + 1}")
    conn.close()
    with pytest.raises(DatabaseError, match="newer than this gateway"):
        await Database(path).open()


async def test_corrupt_file_is_refused_loudly(tmp_path: Path) -> None:
    path = tmp_path / "g.sqlite3"
    path.write_bytes(b"this is not a database" * 100)
    with pytest.raises(DatabaseCorrupt, match=str(path)):
        await Database(path).open()


async def test_group_commit_and_failing_unit_rolls_back_alone(tmp_path: Path) -> None:
    db = Database(tmp_path / "g.sqlite3")
    await db.open()
    try:
        def insert(n: int) -> object:
            def unit(tx: Tx) -> int:
                tx.execute("INSERT INTO hubs (hub_id, site, secret_hash, created_at) "
                           "VALUES (?, 's', 'h', 0)", (f"h{n}",))
                if n == 7:
                    raise ValueError("unit 7 fails after its insert")
                return n
            return db.write(unit)

        results = await asyncio.gather(*(insert(n) for n in range(50)),
                                       return_exceptions=True)
        assert [r for r in results if isinstance(r, ValueError)] == [results[7]]
        rows = {r[0] for r in db.query("SELECT hub_id FROM hubs")}
        assert len(rows) == 49 and "h7" not in rows
        assert db.commits < db.units  # many units shared one fsync
    finally:
        await db.close()


async def test_conditional_update_loses_a_race_cleanly(tmp_path: Path) -> None:
    db = Database(tmp_path / "g.sqlite3")
    await db.open()
    try:
        await db.write(lambda tx: tx.execute(
            "INSERT INTO hubs (hub_id, site, secret_hash, created_at) VALUES ('h', 's', 'x', 0)"))

        def bump(tx: Tx) -> int:
            return tx.execute("UPDATE hubs SET site = 'moved' WHERE hub_id = 'h' "
                              "AND site = 's'").rowcount

        assert sorted(await asyncio.gather(*(db.write(bump) for _ in range(5)))) == [0, 0, 0, 0,
                                                                                    1]
    finally:
        await db.close()
