"""A board's STATUS while it is still vending never decides the vend's outcome.

The board writes NOT_STARTED to flash when it accepts the approval, before the motor runs, so a
heartbeat sent while it says VENDING carries last_outcome NOT_STARTED: "in progress". Taking it
as final reported "not vended" and the gateway refunded goods that were dispensed (bench/chaos.py
found five such orders).
"""

from __future__ import annotations

from edge_hub.simboard import PurchaseState, VendPlan
from edge_hub.vend import VendState
from protocol import BoardState, Status, VendOutcome
from tests.hub.conftest import Site, eventually


async def test_heartbeat_saying_not_started_while_vending_is_not_an_outcome(site: Site) -> None:
    await site.start_hub()
    board = await site.add_board(7)
    await board.wait_connected(5)
    p = await board.request("espresso", plan=VendPlan.ok(item_time_s=0.6))
    assert p.order_ref is not None
    order = await site.order(p.order_ref)
    await site.pay(order)
    await eventually(lambda: p.state is PurchaseState.VENDING, 10, "board vending")
    # what a board's heartbeat says between accepting the approval and the first item dropping
    board.inject(Status(state=BoardState.VENDING, error_code=0, uptime_s=1, vends_ok=0,
                        vends_failed=0, last_order=p.order_ref,
                        last_outcome=VendOutcome.NOT_STARTED, last_dispensed=0))
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
