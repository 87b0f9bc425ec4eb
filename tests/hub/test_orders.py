"""Orders that end without a vend: cancel, expiry, offline, out of service, a rogue board."""

from __future__ import annotations

import time

from edge_hub.simboard import Behaviour, KeyMode, PurchaseState, SimBoard
from edge_hub.vend import VendState
from protocol import RejectReason, VendOutcome, VendResult
from tests.hub.conftest import Site, eventually


async def gw_state(site: Site, order_id: str) -> str:
    return str((await site.order(order_id))["state"])


async def test_customer_cancel_closes_the_order_on_both_sides(site: Site) -> None:
    await site.start_hub()
    board = await site.add_board(1)
    await board.wait_connected(5)
    p = await board.request("water")
    assert p.state is PurchaseState.SHOWING_QR
    await board.cancel(p)
    await eventually(lambda: _hub_is(site, p.order_ref, VendState.CANCELLED), 5)
    assert await eventually(lambda: _is(site, p.order_ref, "cancelled"), 5, "gateway cancel")


async def _is(site: Site, order_id: str, want: str) -> bool:
    return await gw_state(site, order_id) == want


async def _hub_is(site: Site, order_id: str, want: str) -> bool:
    return await _hub_state(site, order_id) == want


async def _hub_state(site: Site, order_id: str) -> str | None:
    assert site.hub is not None
    rows = await site.hub.view.orders()
    return next((r["state"] for r in rows if r["order_id"] == order_id), None)


async def test_qr_expiry_closes_the_order_on_both_sides(site: Site) -> None:
    await site.start_hub()
    board = await site.add_board(1)
    await board.wait_connected(5)
    p = await board.request("water")
    assert site.hub is not None
    s = site.session(p.order_ref)
    s.qr_expires_mono = time.monotonic()  # the QR's time is up now
    await board.wait_closed(p, 5)
    assert p.state is PurchaseState.EXPIRED
    assert await _hub_state(site, p.order_ref) == VendState.EXPIRED
    # The gateway records the hub's close (state cancelled, reason expired) or its own expiry.
    await eventually(lambda: _closed(site, p.order_ref), 5, "gateway expiry")


async def _closed(site: Site, order_id: str) -> bool:
    return await gw_state(site, order_id) in ("expired", "cancelled")


async def test_gateway_down_before_the_order_rejects_offline_within_the_limit(site: Site) -> None:
    await site.start_hub(order_timeout_s=0.5)
    board = await site.add_board(1)
    await board.wait_connected(5)
    await site.stop_gateway()
    t0 = time.monotonic()
    p = await board.request("water", timeout_s=3)
    elapsed = time.monotonic() - t0
    assert p.state is PurchaseState.REJECTED
    assert p.reject_reason == RejectReason.OFFLINE
    assert elapsed <= 0.5 + 0.25  # the configured limit plus the pty round trip
    assert site.hub is not None
    rows = await site.hub.view.orders()
    assert rows[0]["state"] == VendState.REJECTED and rows[0]["order_id"] is None


async def test_out_of_service_board_is_rejected(site: Site) -> None:
    await site.start_hub()
    board = await site.add_board(1)
    await board.wait_connected(5)
    assert site.hub is not None
    await site.hub.view.set_in_service(board.uid.hex(), False, "coin jam")
    p = await board.request("water")
    assert p.state is PurchaseState.REJECTED
    assert p.reject_reason == RejectReason.OUT_OF_SERVICE


async def test_rogue_board_without_key_cannot_report_a_failed_vend(site: Site) -> None:
    await site.start_hub()
    board = await site.add_board(1)
    await board.wait_connected(5)
    p = await board.request("water")
    assert site.hub is not None
    # A board without the key speaks on the same line and claims the vend failed.
    rogue_frames_before = site.hub.hub.counters["unauthenticated_dropped"]
    board.forge(VendResult(order_ref=p.order_ref, outcome=VendOutcome.FAILED, reason=5,
                           dispensed=0))
    await eventually(lambda: site.hub is not None and
                     site.hub.hub.counters["unauthenticated_dropped"] > rogue_frames_before, 3)
    s = site.session(p.order_ref)
    assert s is not None and s.state is VendState.AWAITING_PAYMENT
    assert site.hub.store.outbox.lanes  # nothing about this order was queued for the gateway
    assert await gw_state(site, p.order_ref) == "payment_pending"


async def test_board_without_key_gets_nothing(site: Site) -> None:
    await site.start_hub()
    board = await site.add_board(3, behaviour=Behaviour(key_mode=KeyMode.NONE, seed=3,
                                                        hello_retry_s=0.2))
    await eventually(lambda: site.hub is not None and board.uid.hex() in site.hub.hub.boards, 5)
    p = await board.request("water", timeout_s=1.5)
    assert p.state is not PurchaseState.SHOWING_QR
    assert site.hub is not None
    assert await site.hub.view.orders() == []


async def test_rogue_hello_with_a_real_uid_on_another_port_takes_nothing_over(
        site: Site) -> None:
    await site.start_hub()
    board = await site.add_board(1)
    await board.wait_connected(5)
    # A keyless board on another port introduces itself with the real board's uid.
    rogue = SimBoard(board.uid, None, link_path=site.tmp / "tty-02",
                     behaviour=Behaviour(key_mode=KeyMode.NONE, seed=9, hello_retry_s=0.2))
    await rogue.start()
    site.boards.append(rogue)
    assert site.hub is not None
    uid = board.uid.hex()
    await eventually(lambda: (site.hub is not None and site.hub.hub.counters[
        "unauthenticated_dropped"] > 0) or rogue.counters.hellos_sent > 1, 5, "rogue heard")
    assert site.hub.hub.boards[uid].port == str(site.tmp / "tty-01")
    p = await board.request("water")
    await site.pay(await site.order(p.order_ref))
    await board.wait_closed(p, 10)
    assert p.state is PurchaseState.VENDED  # the approval went to the real board
    assert site.hub.hub.boards[uid].port == str(site.tmp / "tty-01")
