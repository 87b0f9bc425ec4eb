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


REFUND_STATES = ("failed", "refund_pending", "refunded")


async def _state_in(site: Site, order_id: str, states: tuple[str, ...]) -> bool:
    return (await site.order(order_id))["state"] in states


async def _state(site: Site, order_id: str, want: str) -> bool:
    return (await site.order(order_id))["state"] == want


async def test_vend_failure_is_refunded(site: Site) -> None:
    await site.start_hub()
    board = await site.add_board(2)
    await board.wait_connected(5)
    p = await board.request("latte", plan=VendPlan.jam())
    order = await site.order(p.order_ref)
    await site.pay(order)
    await board.wait_closed(p, 10)
    assert p.state is PurchaseState.FAILED
    # The gateway has the failure (and refunds it: failed -> refund_pending -> refunded).
    await eventually(lambda: _state_in(site, p.order_ref, REFUND_STATES), 10, "refund")
    assert site.hub is not None
    assert (await site.hub.view.orders())[0]["state"] == VendState.FAILED
