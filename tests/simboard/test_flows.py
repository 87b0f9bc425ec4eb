"""Cancel, expiry, rejection, vend failure and repeated approvals, against the minimal hub."""

from __future__ import annotations

import pytest

from edge_hub.simboard import BoardError, PurchaseState, VendPlan
from protocol import (
    BoardState,
    Cancel,
    CancelReason,
    RejectReason,
    VendOutcome,
    VendResult,
)


async def test_customer_cancel_closes_the_order_on_the_hub(make_pair) -> None:
    board, hub = await make_pair()
    p = await board.request("espresso")
    await board.cancel(p)
    cancel = await hub.expect(Cancel)
    assert (cancel.order_ref, cancel.reason) == (p.order_ref, CancelReason.CUSTOMER)
    assert p.state is PurchaseState.CANCELLED and board.state is BoardState.IDLE
    hub.approve(p.order_ref)  # a payment that raced the cancel must not dispense
    result = await hub.expect(VendResult)
    assert result.outcome is VendOutcome.NOT_STARTED and result.dispensed == 0
    assert board.ledger == {}
    with pytest.raises(BoardError):
        await board.cancel(p)


async def test_hub_cancel_clears_the_display(make_pair) -> None:
    board, hub = await make_pair()
    p = await board.request("espresso")
    hub.cancel(p.order_ref, CancelReason.PAYMENT_FAILED)
    await board.wait_closed(p, 3.0)
    assert p.state is PurchaseState.CANCELLED
    assert p.cancel_reason == CancelReason.PAYMENT_FAILED
    assert board.state is BoardState.IDLE


async def test_qr_expiry_cancels_and_refuses_a_late_approval(make_pair) -> None:
    board, hub = await make_pair(expires_in_s=1)
    p = await board.request("latte")
    await board.wait_closed(p, 3.0)
    assert p.state is PurchaseState.EXPIRED
    cancel = await hub.expect(Cancel)
    assert (cancel.order_ref, cancel.reason) == (p.order_ref, CancelReason.EXPIRED)
    hub.approve(p.order_ref)
    late = await hub.expect(VendResult)
    assert late.order_ref == p.order_ref
    assert late.outcome is VendOutcome.NOT_STARTED and late.dispensed == 0
    assert board.dispensed(p.order_ref) == 0


async def test_rejected_order(make_pair) -> None:
    board, _hub = await make_pair(reject=RejectReason.OFFLINE)
    p = await board.request("espresso")
    assert p.state is PurchaseState.REJECTED
    assert p.reject_reason == RejectReason.OFFLINE
    assert board.state is BoardState.IDLE


async def test_no_answer_gives_up_after_the_order_timeout(make_pair) -> None:
    board, _hub = await make_pair(auto_qr=False)
    p = await board.request("espresso", timeout_s=0.3)
    assert p.state is PurchaseState.UNDELIVERED
    assert board.state is BoardState.IDLE


@pytest.mark.parametrize(("quantity", "drops"), [(1, 0), (3, 1)])
async def test_vend_failure_reports_what_dropped(make_pair, quantity: int, drops: int) -> None:
    board, hub = await make_pair()
    p = await board.request("water", quantity=quantity, plan=VendPlan.jam(drops))
    hub.approve(p.order_ref, quantity=quantity)
    await board.wait_closed(p, 3.0)
    result = await hub.expect(VendResult)
    assert result.outcome is VendOutcome.FAILED
    assert result.dispensed == drops == board.dispensed(p.order_ref) == p.dispensed
    assert result.reason != 0
    assert p.state is PurchaseState.FAILED


async def test_double_approval_dispenses_once(make_pair) -> None:
    board, hub = await make_pair()
    p = await board.request("espresso", plan=VendPlan(item_time_s=0.05))
    auth = hub.approve(p.order_ref)
    hub.approve(p.order_ref)  # a second, different approval for the same order, mid-vend
    await board.wait_closed(p, 3.0)
    hub.approve(p.order_ref, auth=auth)  # the first one replayed after the vend
    hub.approve(p.order_ref)  # and yet another one
    await hub.until(lambda: len(hub.messages(VendResult)) >= 3)
    results = hub.messages(VendResult)
    assert {(r.order_ref, r.outcome, r.dispensed) for r in results} == {
        (p.order_ref, VendOutcome.SUCCESS, 1)}
    assert board.ledger[p.order_ref].dispensed == 1
    assert board.counters.approvals_accepted == 1
    assert board.counters.approvals_refused == 3


async def test_used_auth_is_refused_for_another_order(make_pair) -> None:
    board, hub = await make_pair()
    first = await board.request("espresso")
    auth = hub.approve(first.order_ref)
    await board.wait_closed(first, 3.0)
    second = await board.request("espresso")
    hub.approve(second.order_ref, auth=auth)  # one-time auth reused: never dispense
    result = await hub.expect(VendResult, lambda r: r.order_ref == second.order_ref)
    assert result.outcome is VendOutcome.NOT_STARTED
    assert board.dispensed(second.order_ref) == 0
    assert second.state is PurchaseState.SHOWING_QR  # still waiting for a real payment


async def test_approval_for_more_than_ordered_is_refused(make_pair) -> None:
    board, hub = await make_pair()
    p = await board.request("water", quantity=1)
    hub.approve(p.order_ref, quantity=2)
    result = await hub.expect(VendResult)
    assert result.outcome is VendOutcome.NOT_STARTED
    assert board.ledger == {}


async def test_out_of_service_board_takes_no_order(make_pair) -> None:
    board, _hub = await make_pair(in_service=False)
    assert board.state is BoardState.OUT_OF_SERVICE
    with pytest.raises(BoardError):
        await board.request("espresso")
