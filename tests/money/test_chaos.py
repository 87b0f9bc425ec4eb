"""Seeded chaos: many orders, every payment mishap, lossy webhooks and a flaky Razorpay API; in
the end every captured payment in the sandbox's ledger is either the one payment of a paid order
or refunded exactly once in full, and only paid orders were confirmed to the hub (rules 1-4)."""

from __future__ import annotations

import asyncio
import random
from collections import Counter

import pytest

from protocol.hub_api import OrderState

from .conftest import PRICE, Gateway

PLANS = ("pay", "pay_twice", "wrong_amount", "fail_first", "cancel_then_pay", "expire_then_pay",
         "never_pay")


@pytest.mark.parametrize("seed", [3, 11])
async def test_money_adds_up_under_chaos(gw: Gateway, seed: int) -> None:
    rng = random.Random(seed)
    orders = [await gw.paying_order(f"chaos-{i}") for i in range(14)]
    plans = {o["order_id"]: PLANS[i % len(PLANS)] for i, o in enumerate(orders)}
    await gw.sandbox.faults(seed=seed, webhook_duplicate_rate=0.3, webhook_reorder_rate=0.3,
                            webhook_drop_rate=0.25)
    for order in orders:
        plan, qr_id = plans[order["order_id"]], order["payment"]["qr_id"]
        if plan == "pay":
            await gw.sandbox.pay(qr_id)
        elif plan == "pay_twice":
            await gw.sandbox.pay(qr_id, times=2)
        elif plan == "wrong_amount":
            await gw.sandbox.pay(qr_id, amount=PRICE - rng.randint(1, 100))
        elif plan == "fail_first":
            await gw.sandbox.pay(qr_id, fail_first=True)
        elif plan == "cancel_then_pay":
            await gw.call("POST", f"/orders/{order['order_id']}/cancel", {"reason": "customer"})
            await gw.sandbox.pay(qr_id)
    await gw.settle()
    # the QRs expire while Razorpay's API fails a fifth of the calls
    gw.clock.now = max(o["payment"]["close_by"] for o in orders) + 1
    await gw.sandbox.faults(api_error_rate=0.2)
    await gw.reconcile()
    for order in orders:
        if plans[order["order_id"]] == "expire_then_pay":
            await gw.sandbox.pay(order["payment"]["qr_id"])
    await gw.settle()
    await gw.reconcile()
    # Razorpay recovers; the reconciler settles everything within a few passes
    await gw.sandbox.faults(api_error_rate=0.0, webhook_drop_rate=0.0)
    for _ in range(3):
        gw.clock.now += 3601  # past any refund backoff
        await gw.reconcile()
    await asyncio.sleep(0)

    ledger = await gw.sandbox.ledger()
    refunded = Counter(r["payment_id"] for r in ledger["refunds"] if r["status"] == "processed")
    assert all(n == 1 for n in refunded.values()), refunded  # at most once (rule 4)
    ours = {o["order_id"]: o for o in gw.q("SELECT * FROM orders")}
    confirmed = Counter(c["order_id"] for c in gw.q(
        "SELECT order_id FROM commands WHERE type = 'payment_confirmed'"))
    for payment in ledger["payments"]:
        order = ours[payment["notes"]["order_id"]]
        if refunded[payment["id"]]:
            assert payment["amount_refunded"] == payment["amount"]  # in full
            assert order["payment_id"] != payment["id"]
        else:  # kept: it must be the one payment of a paid order of exactly its amount
            assert order["payment_id"] == payment["id"], (plans[order["order_id"]], payment)
            assert order["state"] == OrderState.PAID and payment["amount"] == order["amount"]
    for order_id, order in ours.items():
        plan = plans[order_id]
        paid = order["state"] == OrderState.PAID
        assert confirmed[order_id] == (1 if paid else 0), (plan, order["state"])
        if plan in ("pay", "pay_twice", "fail_first"):
            assert paid, (plan, order["state"])
        else:
            assert not paid and order["state"] in (OrderState.CANCELLED, OrderState.EXPIRED), (
                plan, gw.q("SELECT * FROM order_audit WHERE order_id = ?", (order_id,)))
    assert gw.q("SELECT * FROM refunds WHERE state != 'processed'") == []
    assert gw.q("SELECT * FROM webhook_inbox WHERE processed_ts IS NULL") == []
