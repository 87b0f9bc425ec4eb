"""The uplink against the real gateway: slow gateway, long-poll push, token refresh, duplicate
order requests."""

from __future__ import annotations

import asyncio
import time

from edge_hub.clock import Clock
from edge_hub.simboard import PurchaseState
from edge_hub.uplink.client import GatewayClient
from protocol import OrderRequest, RejectReason
from tests.hub.conftest import HUB_ID, HUB_SECRET, Site, eventually


async def test_slow_gateway_rejects_offline_within_the_limit_and_no_unknown_qr(
        site: Site) -> None:
    await site.start_hub(order_timeout_s=0.6)
    board = await site.add_board(1)
    await board.wait_connected(5)
    async with site.http.post(f"{site.sandbox_url}/_sim/faults",
                              json={"api_slow_next": 5, "api_slow_s": 1.5}) as r:
        assert r.status == 200, await r.text()
    t0 = time.monotonic()
    p = await board.request("water", timeout_s=3)
    assert p.state is PurchaseState.REJECTED and p.reject_reason == RejectReason.OFFLINE
    assert time.monotonic() - t0 <= 0.6 + 0.25
    await asyncio.sleep(1.5)  # the gateway's late answer must not turn into a QR
    assert p.state is PurchaseState.REJECTED and board.counters.qrs_received == 0
    assert site.hub is not None
    sessions = await site.hub.store.list_sessions(board_uid=None, state=None, limit=5)
    assert [s.state for s, _ in sessions] == ["rejected"]
    assert sessions[0][0].idempotency_key  # chosen and stored before the request went out


async def test_long_poll_push_delivers_the_payment(site: Site) -> None:
    hub = await site.start_hub_with(gateway={"push": "long-poll"})
    board = await site.add_board(1)
    await board.wait_connected(5)
    p = await board.request("water")
    await site.pay(await site.order(p.order_ref))
    await board.wait_closed(p, 10)
    assert p.state is PurchaseState.VENDED
    assert hub.push is not None and hub.push.state == "long-poll"


async def test_same_order_request_twice_makes_one_order(site: Site) -> None:
    await site.start_hub()
    board = await site.add_board(1)
    await board.wait_connected(5)
    p = await board.request("water")
    assert p.state is PurchaseState.SHOWING_QR
    board.inject(OrderRequest(request_id=p.request_id, product="water", options=(),
                              quantity=1))
    await asyncio.sleep(0.3)
    assert site.hub is not None
    sessions = await site.hub.store.list_sessions(board_uid=None, state=None, limit=5)
    assert len(sessions) == 1 and sessions[0][0].state == "awaiting_payment"


async def test_token_is_refreshed_before_expiry_and_teaches_the_clock(site: Site) -> None:
    clock = Clock("b")
    client = GatewayClient(site.gateway_url, HUB_ID, HUB_SECRET, clock, request_timeout_s=2,
                           refresh_margin_s=900 - 0.2)  # gateway tokens live 900 s
    await client.start()
    try:
        first = await client.token()
        assert clock.offset_s is not None and abs(clock.offset_s) < 2 and clock.synced
        assert await client.token() == first  # still fresh: cached
        await eventually(lambda: _fresh_token(client, first), 3, "a refreshed token")
    finally:
        await client.close()


async def _fresh_token(client: GatewayClient, old: str) -> bool:
    await asyncio.sleep(0.25)
    return await client.token() != old
