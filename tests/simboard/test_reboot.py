"""A board reset mid-vend: new session epoch, flash survives, STATUS tells the truth."""

from __future__ import annotations

import pytest

from edge_hub.simboard import PurchaseState, RebootStage, VendPlan
from protocol import Hello, PeerRestarted, Status, StatusRequest, VendOutcome, VendResult

# stage -> (quantity, what flash must say after the reset: outcome, dispensed)
CASES = {
    RebootStage.APPROVED: (1, VendOutcome.NOT_STARTED, 0),
    RebootStage.STARTED: (1, VendOutcome.FAILED, 0),
    RebootStage.DISPENSING: (2, VendOutcome.FAILED, 1),
    RebootStage.DISPENSED: (2, VendOutcome.SUCCESS, 2),
}


@pytest.mark.parametrize("stage", list(RebootStage))
async def test_reboot_mid_vend_keeps_flash_and_answers_status(make_pair, stage) -> None:
    quantity, outcome, dispensed = CASES[stage]
    board, hub = await make_pair()
    epoch_before = board.link.epoch
    p = await board.request("water", quantity=quantity, plan=VendPlan.reboot(stage))
    hub.approve(p.order_ref, quantity=quantity)
    await board.wait_closed(p, 3.0)
    assert p.state is PurchaseState.INTERRUPTED
    assert board.link.epoch != epoch_before
    assert board.counters.boots == 2
    # The hub's link sees the new epoch, and the board introduces itself again.
    await hub.until(lambda: any(isinstance(e, PeerRestarted) for e in hub.events))
    await hub.until(lambda: len(hub.messages(Hello, authenticated=False)) >= 2)
    await board.wait_connected(3.0)
    hub.send(StatusRequest())
    await hub.until(lambda: board.counters.status_requests == 1)
    await hub.until(lambda: len(hub.messages(Status)) == board.counters.statuses_sent)
    status = hub.messages(Status)[-1]  # the answer to the request
    assert status.last_order == p.order_ref
    assert (status.last_outcome, status.last_dispensed) == (outcome, dispensed)
    assert board.dispensed(p.order_ref) == dispensed  # the ledger agrees with what flash says
    assert p.outcome is outcome
    assert hub.messages(VendResult) == []  # no result was sent before the reset
    # A late repeat of the approval after the reset never dispenses again.
    hub.approve(p.order_ref, quantity=quantity)
    repeat = await hub.expect(VendResult)
    assert (repeat.outcome, repeat.dispensed) == (outcome, dispensed)
    assert board.dispensed(p.order_ref) == dispensed


async def test_reboot_while_showing_qr_forgets_the_order(make_pair) -> None:
    board, hub = await make_pair()
    p = await board.request("espresso")
    await board.reboot()
    assert p.state is PurchaseState.CANCELLED
    await board.wait_connected(3.0)
    hub.approve(p.order_ref)  # paid after the reset: the board must not dispense
    result = await hub.expect(VendResult)
    assert result.outcome is VendOutcome.NOT_STARTED
    assert board.ledger == {}


async def test_status_counts_survive_reboots(make_pair) -> None:
    board, hub = await make_pair(auto_approve_s=0.0)
    ok = await board.buy("espresso", timeout_s=3.0)
    bad = await board.buy("espresso", plan=VendPlan.jam(), timeout_s=3.0)
    assert (ok.state, bad.state) == (PurchaseState.VENDED, PurchaseState.FAILED)
    await board.reboot()
    await board.wait_connected(3.0)
    hub.send(StatusRequest())
    status = await hub.expect(Status, lambda s: s.vends_failed == 1)
    assert status.vends_ok == 1
    assert status.last_order == bad.order_ref and status.last_outcome is VendOutcome.FAILED
