"""The simulator against a minimal hub-side Link over a real pty: the normal purchase."""

from __future__ import annotations

from edge_hub.simboard import Behaviour, PurchaseState
from protocol import BoardState, Status, VendOutcome, VendResult, VendStarted


async def test_hello_names_the_board(make_pair) -> None:
    board, hub = await make_pair()
    assert hub.hello is not None
    assert hub.hello.uid == board.uid
    assert hub.hello.products == board.products
    assert hub.hello.proto_min <= 1 <= hub.hello.proto_max
    status = await hub.expect(Status)  # sent right after HELLO_ACK, MAC'd
    assert status.last_outcome is VendOutcome.NONE


async def test_order_qr_approve_result(make_pair) -> None:
    board, hub = await make_pair()
    p = await board.request("cappuccino", ["extra_shot"], 1)
    assert p.state is PurchaseState.SHOWING_QR
    assert p.qr is not None and p.qr.valid, p.qr
    assert p.qr.decoded == p.qr.upi_uri
    order = hub.orders[p.order_ref]
    assert order.request.product == "cappuccino"
    assert order.request.options == ("extra_shot",)
    hub.approve(p.order_ref)
    await board.wait_closed(p, 3.0)
    assert p.state is PurchaseState.VENDED
    started = await hub.expect(VendStarted)
    result = await hub.expect(VendResult)
    assert started.order_ref == result.order_ref == p.order_ref
    assert result.outcome is VendOutcome.SUCCESS and result.dispensed == 1
    assert board.dispensed(p.order_ref) == 1
    assert p.t_order_sent < p.t_qr < p.t_approved < p.t_result_sent


async def test_heartbeat_status_at_the_interval_the_hub_asked_for(make_pair) -> None:
    board, hub = await make_pair(heartbeat_s=1)  # HELLO_ACK.heartbeat_s
    await hub.until(lambda: len(hub.messages(Status)) >= 2, timeout_s=3.0)
    assert board.counters.status_requests == 0  # the second one was a heartbeat
    assert all(s.state is BoardState.IDLE for s in hub.messages(Status))
    _idle, quiet = await make_pair(heartbeat_s=0)  # 0 = no heartbeat: only the one after HELLO
    fast, chatty = await make_pair(Behaviour(heartbeat_s=0.05, hello_retry_s=0.2))
    await chatty.until(lambda: len(chatty.messages(Status)) >= 5)
    assert len(quiet.messages(Status)) == 1 and fast.counters.statuses_sent >= 5
