"""Every refund case of INVARIANTS rule 3, once each (rule 4), checked in the sandbox's ledger."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest

from cloud_gateway.keys import METRICS, RAZORPAY
from cloud_gateway.money import REFUNDS, refund_key

from .conftest import PRICE, WEBHOOK_SECRET, Gateway
from .test_webhooks import sign


async def paid(gw: Gateway, key: str = "o1", quantity: int = 1) -> tuple[dict[str, Any], str]:
    order = await gw.paying_order(key, quantity)
    result = await gw.sandbox.pay(order["payment"]["qr_id"])
    await gw.settle()
    assert (await gw.order(order["order_id"]))["state"] == "paid"
    return order, result["payments"][0]["id"]


def only_refund(ledger: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    [refund] = ledger["refunds"]
    return refund


async def test_vend_failed_is_refunded_in_full(gw: Gateway) -> None:
    order, payment_id = await paid(gw)
    await gw.call("POST", f"/orders/{order['order_id']}/fail", {"reason": "motor jam",
                                                                 "dispensed": 0})
    await gw.settle()
    assert (await gw.order(order["order_id"]))["state"] == "refunded"
    refund = only_refund(await gw.sandbox.ledger())
    assert refund["payment_id"] == payment_id and refund["amount"] == PRICE
    assert refund["status"] == "processed"
    assert refund["notes"]["refund_key"] == refund_key(payment_id, 1)
    [row] = gw.refunds()
    assert row["state"] == "processed" and row["reason"] == "vend_failed"
    assert row["refund_id"] == refund["id"] and row["idempotency_key"] == refund_key(payment_id, 1)
    states = [r["to_state"] for r in gw.q(
        "SELECT to_state FROM order_audit WHERE order_id = ? ORDER BY id", (order["order_id"],))]
    assert states[-3:] == ["failed", "refund_pending", "refunded"]


async def test_vend_never_started_is_refunded(gw: Gateway) -> None:
    order, payment_id = await paid(gw)
    result = await gw.call("POST", "/hub/events", {"events": [{
        "id": "ev-not-vended-1", "type": "vend_result", "board_uid": order["board_uid"],
        "order_id": order["order_id"], "at": {"wall": gw.clock(), "synced": True},
        "data": {"outcome": "not_vended", "dispensed": 0, "reason": "deadline passed"}}]})
    assert result["results"][0]["status"] == "applied", result
    await gw.settle()
    assert (await gw.order(order["order_id"]))["state"] == "refunded"
    assert only_refund(await gw.sandbox.ledger())["payment_id"] == payment_id


async def test_partial_vend_refunds_the_units_not_dispensed(gw: Gateway) -> None:
    order, _ = await paid(gw, quantity=2)
    await gw.call("POST", f"/orders/{order['order_id']}/fail", {"reason": "ran out",
                                                                 "dispensed": 1})
    await gw.settle()
    refund = only_refund(await gw.sandbox.ledger())
    assert refund["amount"] == order["amount"] // 2 == PRICE
    assert (await gw.order(order["order_id"]))["state"] == "refunded"


async def test_paid_after_expiry_is_refunded_and_the_hub_told(gw: Gateway) -> None:
    order = await gw.paying_order()
    qr_id = order["payment"]["qr_id"]
    gw.clock.now = order["payment"]["close_by"] + 1
    report = await gw.reconcile()
    assert report.expired == 1
    assert (await gw.order(order["order_id"]))["state"] == "expired"
    [cmd] = await gw.commands()
    assert cmd["type"] == "order_cancelled" and cmd["data"] == {"reason": "expired"}
    ledger_qr = gw.sandbox.runtime.store.qr(qr_id)
    assert ledger_qr["status"] == "closed" and ledger_qr["close_reason"] == "on_demand"
    # the customer's app still pays the closed QR: a late webhook
    late = await gw.sandbox.pay(qr_id)
    await gw.settle()
    refund = only_refund(await gw.sandbox.ledger())
    assert refund["payment_id"] == late["payments"][0]["id"] and refund["amount"] == PRICE
    assert gw.payments()[0]["disposition"] == "refund_late"
    assert (await gw.order(order["order_id"]))["state"] == "expired"
    assert len(await gw.commands()) == 1  # no payment_confirmed: no vend


async def test_paid_after_cancel_is_refunded(gw: Gateway) -> None:
    order = await gw.paying_order()
    await gw.call("POST", f"/orders/{order['order_id']}/cancel", {"reason": "customer"})
    await gw.settle()
    late = await gw.sandbox.pay(order["payment"]["qr_id"])
    await gw.settle()
    assert only_refund(await gw.sandbox.ledger())["payment_id"] == late["payments"][0]["id"]
    assert (await gw.order(order["order_id"]))["state"] == "cancelled"
    assert await gw.commands() == []


async def test_double_payment_keeps_one_and_refunds_the_other(gw: Gateway) -> None:
    order = await gw.paying_order()
    result = await gw.sandbox.pay(order["payment"]["qr_id"], times=2)
    first, second = (p["id"] for p in result["payments"])
    await gw.settle()
    fresh = await gw.order(order["order_id"])
    assert fresh["state"] == "paid"
    dispositions = {p["payment_id"]: p["disposition"] for p in gw.payments()}
    assert dispositions == {first: "applied", second: "refund_duplicate"}
    ledger = await gw.sandbox.ledger()
    assert only_refund(ledger)["payment_id"] == second
    assert {p["id"]: p["status"] for p in ledger["payments"]} == {first: "captured",
                                                                 second: "refunded"}
    assert [c["type"] for c in await gw.commands()] == ["payment_confirmed"]
    assert (await gw.call("POST", f"/orders/{order['order_id']}/dispense"))["state"] == \
        "dispensing"


async def test_wrong_amount_is_refunded_and_never_vended(gw: Gateway) -> None:
    order = await gw.paying_order()
    result = await gw.sandbox.pay(order["payment"]["qr_id"], amount=PRICE - 1)
    await gw.settle()
    refund = only_refund(await gw.sandbox.ledger())
    assert refund["payment_id"] == result["payments"][0]["id"] and refund["amount"] == PRICE - 1
    assert gw.payments()[0]["disposition"] == "refund_amount_mismatch"
    assert (await gw.order(order["order_id"]))["state"] == "cancelled"
    [cmd] = await gw.commands()
    assert cmd["type"] == "order_cancelled" and cmd["data"] == {"reason": "payment_failed"}
    await gw.call("POST", f"/orders/{order['order_id']}/dispense", expect=409)


async def test_refund_processed_webhook_finishes_a_pending_refund(gw: Gateway) -> None:
    gw.sandbox.runtime.reconfigure({"refund_process_after_s": 0.2})
    order, _ = await paid(gw)
    await gw.call("POST", f"/orders/{order['order_id']}/fail", {"reason": "jam",
                                                                 "dispensed": 0})
    await gw.app[REFUNDS].idle()
    assert [r["state"] for r in gw.refunds()] == ["pending"]  # Razorpay has it, not yet done
    assert (await gw.order(order["order_id"]))["state"] == "refund_pending"
    await gw.settle()
    assert (await gw.order(order["order_id"]))["state"] == "refunded"
    events = [r["event"] for r in gw.q("SELECT event FROM webhook_inbox ORDER BY id")]
    assert events[-1] == "refund.processed"
    [row] = gw.refunds()
    assert row["state"] == "processed"
    assert only_refund(await gw.sandbox.ledger())["status"] == "processed"


async def test_refund_razorpay_refuses_is_alerted_not_retried(
        gw: Gateway, caplog: pytest.LogCaptureFixture) -> None:
    order, payment_id = await paid(gw)
    # an operator already refunded part of it in the Dashboard: a full refund is refused
    await gw.app[RAZORPAY].refund(payment_id, amount=100, idempotency_key="by-the-operator-1")
    with caplog.at_level(logging.ERROR):
        await gw.call("POST", f"/orders/{order['order_id']}/fail", {"reason": "jam",
                                                                     "dispensed": 0})
        await gw.settle()
    [row] = gw.refunds()
    assert row["state"] == "refused" and "greater than" in row["last_error"]
    assert any(r.getMessage().startswith("ALERT") and payment_id in r.getMessage()
               for r in caplog.records)
    gw.clock.now += 7200
    assert (await gw.reconcile()).refunds_tried == 0  # refused is final: an operator decides
    assert [r["amount"] for r in (await gw.sandbox.ledger())["refunds"]] == [100]
    assert gw.state(order["order_id"]) == "refund_pending"
    assert gw.app[METRICS].value("gateway_refunds_total", {"result": "refused"}) == 1
    assert gw.app[METRICS].value("gateway_refunds_total", {"result": "error_refused"}) == 1


async def test_wrong_currency_is_refunded_never_paid(gw: Gateway) -> None:
    order = await gw.paying_order()
    entity = {"id": "pay_WrongCurrency1", "entity": "payment", "amount": PRICE,
              "currency": "USD", "status": "captured", "method": "upi",
              "notes": {"order_id": order["order_id"]}}
    raw = json.dumps({"entity": "event", "event": "payment.captured", "contains": ["payment"],
                      "payload": {"payment": {"entity": entity}}}).encode()
    resp = await gw.client.post("/webhooks/razorpay", data=raw, headers={
        "X-Razorpay-Event-Id": "evt_wrongcurrency", "X-Razorpay-Signature": sign(
            WEBHOOK_SECRET, raw)})
    assert resp.status == 200 and (await resp.json())["status"] == "refund_amount_mismatch"
    await gw.settle()
    assert gw.state(order["order_id"]) == "cancelled"
    assert [c["type"] for c in await gw.commands()] == ["order_cancelled"]
    [row] = gw.refunds()
    assert row["reason"] == "amount_mismatch" and row["payment_id"] == "pay_WrongCurrency1"


async def test_refund_failed_report_then_processed_is_one_refund(
        gw: Gateway) -> None:
    gw.sandbox.runtime.reconfigure({"refund_process_after_s": 0.3})
    order, payment_id = await paid(gw)
    await gw.call("POST", f"/orders/{order['order_id']}/fail", {"reason": "jam",
                                                                 "dispensed": 0})
    await gw.app[REFUNDS].idle()
    [row] = gw.refunds()
    assert row["state"] == "pending"
    # a (wrong or out-of-order) refund.failed arrives, then Razorpay processes the refund
    refund = dict(gw.sandbox.runtime.store.refunds[row["refund_id"]], status="failed")
    raw = json.dumps({"entity": "event", "event": "refund.failed", "contains": ["refund"],
                      "payload": {"refund": {"entity": refund}}}).encode()
    resp = await gw.client.post("/webhooks/razorpay", data=raw, headers={
        "X-Razorpay-Event-Id": "evt_refundfailed1", "X-Razorpay-Signature": sign(
            WEBHOOK_SECRET, raw)})
    assert (await resp.json())["status"] == "refund_updated"
    assert gw.refunds()[0]["state"] == "failed"  # retried only after the backoff
    await gw.settle()
    [row] = gw.refunds()
    assert row["state"] == "processed" and row["idempotency_key"] == refund_key(payment_id, 1)
    assert len((await gw.sandbox.ledger())["refunds"]) == 1
    assert gw.state(order["order_id"]) == "refunded"


async def test_payment_made_after_close_by_is_late_even_before_the_reconciler(
        gw: Gateway) -> None:
    gw.sandbox.runtime.store.clock = gw.clock  # Razorpay and the gateway share the fake time
    order = await gw.paying_order()
    gw.clock.now = order["payment"]["close_by"] + 5  # no reconciler pass has expired it yet
    late = await gw.sandbox.pay(order["payment"]["qr_id"])
    assert late["payments"][0]["created_at"] > order["payment"]["close_by"]
    await gw.settle()
    assert gw.state(order["order_id"]) == "expired"
    assert gw.payments()[0]["disposition"] == "refund_late"
    refund = only_refund(await gw.sandbox.ledger())
    assert refund["payment_id"] == late["payments"][0]["id"] and refund["status"] == "processed"
    assert [c["type"] for c in gw.q("SELECT type FROM commands")] == ["order_cancelled"]
