"""INVARIANTS rules 1, 7 and 11 at the hub: what a payment must match before a vend is approved,
and what happens when vend records cannot be stored."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

from edge_hub.simboard import PurchaseState
from edge_hub.store import Lane
from edge_hub.vend import VendState
from protocol import RejectReason
from protocol.hub_api import EventType
from tests.hub.conftest import Site, eventually


def confirmed(seq: int, order_id: str, **data: Any) -> Any:
    body = {"amount": 1000, "currency": "INR", "payment_id": "pay_test", "vend_deadline_in_s": 60}
    body.update(data)
    return {"seq": seq, "type": "payment_confirmed", "order_id": order_id, "created_at": 0,
            "data": body}


async def outbox_events(site: Site, order_id: str) -> list[dict[str, Any]]:
    assert site.hub is not None
    async with site.hub.store.db.execute("SELECT body FROM outbox ORDER BY id") as cur:
        rows = [json.loads(r[0]) for r in await cur.fetchall()]
    return [r for r in rows if r.get("order_id") == order_id]


async def start_with_qr(site: Site) -> tuple[Any, Any]:
    await site.start_hub()
    board = await site.add_board(1)
    await board.wait_connected(5)
    p = await board.request("water")
    assert p.state is PurchaseState.SHOWING_QR
    # Keep the hub's vend results in its outbox so the test can read what it reports.
    await site.stop_gateway()
    return board, p


async def test_wrong_amount_is_never_approved(site: Site) -> None:
    board, p = await start_with_qr(site)
    assert site.hub is not None
    await site.hub.hub.apply_command(confirmed(1000, p.order_ref, amount=999))
    await board.wait_closed(p, 5)
    assert p.state is not PurchaseState.VENDED and board.dispensed(p.order_ref) == 0
    assert board.counters.approvals_accepted == 0
    events = await outbox_events(site, p.order_ref)
    assert [e["data"]["outcome"] for e in events if e["type"] == EventType.VEND_RESULT] == [
        "not_vended"]
    assert await site.hub.store.cursor() == 1000  # applied and committed: safe to ack


async def test_wrong_currency_is_never_approved(site: Site) -> None:
    board, p = await start_with_qr(site)
    assert site.hub is not None
    await site.hub.hub.apply_command(confirmed(7, p.order_ref, currency="USD"))
    await asyncio.sleep(0.3)
    assert board.counters.approvals_accepted == 0
    s = (await site.hub.store.list_sessions(board_uid=None, state=None, limit=1))[0][0]
    assert s.state is VendState.NOT_VENDED


async def test_payment_past_the_vend_deadline_is_reported_not_vended(site: Site) -> None:
    board, p = await start_with_qr(site)
    assert site.hub is not None
    await site.hub.hub.apply_command(confirmed(3, p.order_ref, vend_deadline_in_s=0))
    await asyncio.sleep(0.3)
    assert board.counters.approvals_accepted == 0
    events = await outbox_events(site, p.order_ref)
    assert events[-1]["type"] == EventType.VEND_RESULT
    assert events[-1]["data"]["outcome"] == "not_vended"


async def test_payment_after_expiry_is_reported_not_vended(site: Site) -> None:
    board, p = await start_with_qr(site)
    assert site.hub is not None
    site.session(p.order_ref).qr_expires_mono = time.monotonic()
    await board.wait_closed(p, 5)
    assert p.state is PurchaseState.EXPIRED
    await site.hub.hub.apply_command(confirmed(4, p.order_ref))
    events = await outbox_events(site, p.order_ref)
    assert [e["type"] for e in events] == [EventType.ORDER_CANCELLED, EventType.VEND_RESULT]
    assert events[-1]["data"]["outcome"] == "not_vended"
    assert board.counters.approvals_accepted == 0


async def test_approval_only_before_the_monotonic_deadline(site: Site) -> None:
    board, p = await start_with_qr(site)
    assert site.hub is not None
    await site.hub.hub.apply_command(confirmed(5, p.order_ref, vend_deadline_in_s=30))
    await board.wait_closed(p, 5)
    assert p.state is PurchaseState.VENDED
    s = (await site.hub.store.list_sessions(board_uid=None, state=None, limit=1))[0][0]
    assert s.vend_deadline_mono is not None
    assert 25 < s.vend_deadline_mono - time.monotonic() <= 30


async def test_full_outbox_stops_new_orders_and_says_why(site: Site) -> None:
    await site.start_hub(outbox_max_rows=20)
    board = await site.add_board(1)
    await board.wait_connected(5)
    await site.stop_gateway()
    assert site.hub is not None
    store = site.hub.store
    for i in range(20):  # vend records the gateway has not taken yet
        async with store.transaction() as tx:
            await store.add_event(tx, EventType.VEND_RESULT, board.uid.hex(),
                                  {"outcome": "success", "dispensed": 1}, f"ord_{i}")
    await eventually(lambda: not site.hub or not site.hub.view.overview()["taking_orders"], 3)
    ov = site.hub.view.overview()
    assert "outbox full" in ov["not_taking_orders_reason"]
    p = await board.request("water")
    assert p.state is PurchaseState.REJECTED
    assert p.reject_reason == RejectReason.STORAGE_FULL
    assert store.outbox.lanes[Lane.MONEY].rows == 20  # nothing was dropped to make room


async def test_failed_vend_record_write_stops_orders_and_says_why(site: Site) -> None:
    await site.start_hub()
    board = await site.add_board(1)
    await board.wait_connected(5)
    assert site.hub is not None
    db = site.hub.store.db
    await db.execute("CREATE TRIGGER no_space BEFORE INSERT ON sessions "
                     "BEGIN SELECT RAISE(FAIL, 'database or disk is full'); END")
    p = await board.request("water")
    assert p.state is PurchaseState.REJECTED and p.reject_reason == RejectReason.STORAGE_FULL
    ov = site.hub.view.overview()
    assert ov["taking_orders"] is False
    assert "disk is full" in ov["not_taking_orders_reason"]
    p2 = await board.request("water")  # still refused: nothing was stored since
    assert p2.reject_reason == RejectReason.STORAGE_FULL
    await db.execute("DROP TRIGGER no_space")
    await site.hub.store.set_in_service(board.uid.hex(), True, None)  # any durable write
    assert site.hub.view.overview()["taking_orders"] is True
    p3 = await board.request("water")
    assert p3.state is PurchaseState.SHOWING_QR
