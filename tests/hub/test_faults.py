"""Faults: duplicate pushes, gateway outages, hub and board restarts mid-vend, unplugged ports,
the outbox draining after an outage."""

from __future__ import annotations

import asyncio
import logging

import pytest

from edge_hub.simboard import PurchaseState, RebootStage, VendPlan
from edge_hub.vend import VendState
from protocol.hub_api import EventType
from tests.hub.conftest import Site, eventually


async def gw_state(site: Site, order_id: str) -> str:
    return str((await site.order(order_id))["state"])


async def gw_is(site: Site, order_id: str, *states: str) -> bool:
    return await gw_state(site, order_id) in states


async def hub_state(site: Site, order_id: str) -> str | None:
    assert site.hub is not None
    rows = await site.hub.view.orders()
    return next((r["state"] for r in rows if r["order_id"] == order_id), None)


async def hub_is(site: Site, order_id: str, *states: str) -> bool:
    return await hub_state(site, order_id) in states


async def test_same_push_twice_vends_once(site: Site) -> None:
    await site.start_hub()
    board = await site.add_board(1)
    await board.wait_connected(5)
    p = await board.request("water")
    order = await site.order(p.order_ref)
    await site.pay(order)
    await board.wait_closed(p, 10)
    assert site.hub is not None and site.hub.push is not None
    cursor = await site.hub.store.cursor()
    assert cursor >= 1
    cmd = {"seq": cursor, "type": "payment_confirmed", "order_id": p.order_ref,
           "board_uid": board.uid.hex(), "created_at": 0,
           "data": {"amount": order["amount"], "currency": "INR", "payment_id": "pay_x",
                    "vend_deadline_in_s": 60}}
    assert await site.hub.push._handle(cmd) is True  # at the cursor: only acked again
    # The same payment under a new seq (a resend) has no effect either.
    await site.hub.hub.apply_command({**cmd, "seq": cursor + 1})
    await asyncio.sleep(0.2)
    assert board.dispensed(p.order_ref) == 1
    assert board.counters.approvals_accepted == 1 and board.counters.approvals_refused == 0
    assert await hub_state(site, p.order_ref) == VendState.DONE


async def test_gateway_down_during_payment(site: Site) -> None:
    await site.start_hub()
    board = await site.add_board(1)
    await board.wait_connected(5)
    p = await board.request("water")
    order = await site.order(p.order_ref)
    await site.stop_gateway()
    assert site.hub is not None
    await eventually(lambda: site.hub is not None and site.hub.push is not None
                     and site.hub.push.state == "down", 5, "push down")
    await site.start_gateway()  # same port and database: the hub reconnects on its own
    await site.pay(order)
    await board.wait_closed(p, 10)
    assert p.state is PurchaseState.VENDED
    await eventually(lambda: gw_is(site, p.order_ref, "fulfilled"), 10, "fulfilled")


async def test_gateway_down_during_the_vend(site: Site) -> None:
    await site.start_hub()
    board = await site.add_board(1)
    await board.wait_connected(5)
    p = await board.request("water", plan=VendPlan.ok(item_time_s=0.5))
    order = await site.order(p.order_ref)
    await site.pay(order)
    await eventually(lambda: p.state is PurchaseState.VENDING, 5, "vending")
    await site.stop_gateway()
    await board.wait_closed(p, 10)
    assert p.state is PurchaseState.VENDED
    assert site.hub is not None
    await eventually(lambda: hub_is(site, p.order_ref, VendState.DONE), 5)
    assert site.hub.store.outbox.depth >= 1  # the vend result waits in the outbox
    await site.start_gateway()
    await eventually(lambda: gw_is(site, p.order_ref, "fulfilled"), 10, "fulfilled")
    await eventually(lambda: site.hub is not None and site.hub.store.outbox.depth == 0, 5)


async def test_hub_killed_and_restarted_mid_vend(site: Site) -> None:
    await site.start_hub()
    board = await site.add_board(1)
    await board.wait_connected(5)
    p = await board.request("water", plan=VendPlan.ok(item_time_s=1.0))
    order = await site.order(p.order_ref)
    await site.pay(order)
    await eventually(lambda: p.state is PurchaseState.VENDING, 5, "vending")
    await site.stop_hub(abrupt=True)  # no cleanup: what a power cut leaves behind
    await board.wait_closed(p, 10)  # the machine finishes on its own
    await site.start_hub()
    # The resumed session asks the board, whose MAC'd STATUS names the order and its outcome.
    await eventually(lambda: hub_is(site, p.order_ref, VendState.DONE), 10, "hub done")
    await eventually(lambda: gw_is(site, p.order_ref, "fulfilled"), 10, "fulfilled")
    assert board.dispensed(p.order_ref) == 1


async def test_board_reboot_mid_vend_ends_known(site: Site) -> None:
    await site.start_hub()
    board = await site.add_board(1)
    await board.wait_connected(5)
    p = await board.request("water", quantity=2,
                            plan=VendPlan.reboot(RebootStage.DISPENSING))
    order = await site.order(p.order_ref)
    await site.pay(order)
    # The rebooted board's MAC'd STATUS (from its flash) names the order: failed, 1 of 2 out.
    await eventually(lambda: hub_is(site, p.order_ref, VendState.FAILED), 10, "failed")
    assert site.hub is not None
    rows = await site.hub.store.list_sessions(board_uid=None, state=None, limit=1)
    assert board.dispensed(p.order_ref) == 1
    assert rows[0][0].dispensed == 1
    assert [a["to"] for a in rows[0][1]][-2:] == ["checking", "failed"]
    await eventually(lambda: gw_is(site, p.order_ref, "failed", "refund_pending", "refunded"),
                     10, "the gateway has the failure")


async def test_port_unplugged_and_back_logged_once_each(site: Site,
                                                        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="edge_hub.ports")
    await site.start_hub()
    board = await site.add_board(1)
    await board.wait_connected(5)
    assert site.hub is not None
    uid = board.uid.hex()
    await board.unplug()
    await eventually(lambda: site.hub is not None and not site.hub.hub.boards[uid].link_up, 5)
    await asyncio.sleep(1.0)  # several retries with backoff
    await board.replug()
    await eventually(lambda: site.hub is not None and site.hub.hub.boards[uid].link_up, 5)
    await board.wait_connected(5)
    drops = [r for r in caplog.records if "unavailable" in r.getMessage()]
    backs = [r for r in caplog.records if "is back" in r.getMessage()]
    assert len(drops) == 1 and len(backs) == 1
    assert str(site.tmp / "tty-01") in drops[0].getMessage()
    p = await board.request("water")
    assert p.state is PurchaseState.SHOWING_QR


async def test_outbox_drains_after_an_outage(site: Site) -> None:
    await site.start_hub()
    board = await site.add_board(1)
    await board.wait_connected(5)
    assert site.hub is not None
    uid = board.uid.hex()
    await eventually(lambda: site.hub is not None and site.hub.hub.boards[uid].registered, 5)
    await eventually(lambda: site.hub is not None and site.hub.store.outbox.depth == 0, 5)
    await site.stop_gateway()
    store = site.hub.store
    for i in range(3000):
        await store.add_telemetry(EventType.TELEMETRY, uid, {"n": i})
    await eventually(lambda: store.outbox.depth >= 3000, 5, "backlog stored")
    await site.start_gateway()
    site.hub.sender.wake()
    await eventually(lambda: store.outbox.depth == 0, 20, "outbox drained")
    assert site.hub.sender.rejected == 0
