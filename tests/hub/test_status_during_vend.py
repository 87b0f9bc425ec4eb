"""A board's STATUS while it is still vending never decides the vend's outcome.

The board writes NOT_STARTED to flash when it accepts the approval, before the motor runs, so a
heartbeat sent while it says VENDING carries last_outcome NOT_STARTED: "in progress". Taking it
as final reported "not vended" and the gateway refunded goods that were dispensed (bench/chaos.py
found five such orders).
"""

from __future__ import annotations

from edge_hub.simboard import PurchaseState, VendPlan
from edge_hub.vend import VendState
from protocol import VendApproved
from tests.hub.conftest import Site, eventually


async def test_heartbeat_saying_not_started_while_vending_is_not_an_outcome(site: Site) -> None:
    await site.start_hub()
    board = await site.add_board(7)
    await board.wait_connected(5)
    # The board's heartbeat fires right after it accepted the approval, before VEND_STARTED:
    # flash then says last_order = this order, last_outcome = NOT_STARTED, state VENDING.
    accept = board._on_vend_approved

    def accept_then_heartbeat(msg: VendApproved) -> None:
        accept(msg)
        board._send_status()

    board._on_vend_approved = accept_then_heartbeat  # type: ignore[method-assign]
    p = await board.request("espresso", plan=VendPlan.ok(item_time_s=0.3))
    assert p.order_ref is not None
    await site.pay(await site.order(p.order_ref))
    await eventually(lambda: board.counters.statuses_sent > 0 and p.state is not
                     PurchaseState.SHOWING_QR, 10, "approval accepted")
    await board.wait_closed(p, 10)
    assert p.state is PurchaseState.VENDED and board.dispensed(p.order_ref) == 1

    async def fulfilled() -> bool:
        return (await site.order(p.order_ref or ""))["state"] == "fulfilled"

    await eventually(fulfilled, 10, "order fulfilled")
    assert (await site.ledger())["refunds"] == []
    assert site.hub is not None
    [row] = await site.hub.view.orders()
    assert row["state"] == VendState.DONE
    assert "not_vended" not in [a["to"] for a in row["audit"]]
