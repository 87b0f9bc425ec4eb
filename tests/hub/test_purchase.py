"""The purchase end to end: sandbox, gateway, hub and SimBoards on real pseudo-terminals."""

from __future__ import annotations

from edge_hub.simboard import PurchaseState, VendPlan
from edge_hub.vend import VendState
from tests.hub.conftest import Site, eventually


async def test_full_purchase(site: Site) -> None:
    await site.start_hub()
    board = await site.add_board(1)
    await board.wait_connected(5)
    p = await board.request("espresso", ["extra-shot"])
    assert p.state is PurchaseState.SHOWING_QR, p
    order = await site.order(p.order_ref)
    assert order["amount"] == 3500 and order["state"] == "payment_pending"
    await site.pay(order)
    await board.wait_closed(p, 10)
    assert p.state is PurchaseState.VENDED
    assert board.dispensed(p.order_ref) == 1
    await eventually(lambda: _state(site, p.order_ref, "fulfilled"), 10, "order fulfilled")
    assert site.hub is not None
    rows = await site.hub.view.orders()
    assert rows[0]["state"] == VendState.DONE
    assert [a["to"] for a in rows[0]["audit"]] == ["ordering", "awaiting_payment", "approved",
                                                   "vending", "done"]


async def _state(site: Site, order_id: str, want: str) -> bool:
    return (await site.order(order_id))["state"] == want


async def test_vend_failure_is_refunded(site: Site) -> None:
    await site.start_hub()
    board = await site.add_board(2)
    await board.wait_connected(5)
    p = await board.request("latte", plan=VendPlan.jam())
    order = await site.order(p.order_ref)
    paid = await site.pay(order)
    assert paid["payments"][0]["amount"] == 3500
    await board.wait_closed(p, 10)
    assert p.state is PurchaseState.FAILED
    # The gateway has the failure and refunds it in full at Razorpay (the sandbox).
    await eventually(lambda: _state(site, p.order_ref, "refunded"), 10, "refund")
    ledger = await site.ledger()
    assert [r["amount"] for r in ledger["refunds"]] == [3500]
    assert site.hub is not None
    assert (await site.hub.view.orders())[0]["state"] == VendState.FAILED
