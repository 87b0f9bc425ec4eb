"""The reconciler: lost webhooks, Razorpay faults during refunds, restarts, unknown outcomes."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest

from cloud_gateway.keys import DB, SETTINGS
from cloud_gateway.money import LEDGER, RECONCILER, REFUNDS, refund_key

from .conftest import BOARD, PRICE, WEBHOOK_SECRET, Gateway, GatewayFactory
from .test_webhooks import sign


async def late_payment(gw: Gateway, faults: dict[str, Any] | None = None,
                       **webhooks: Any) -> tuple[dict[str, Any], str]:
    """An order that expired, then a payment on its closed QR (a refund case); `faults` are
    set just before the payment, so the refund is the first Razorpay call they hit."""
    order = await gw.paying_order()
    gw.clock.now = order["payment"]["close_by"] + 1
    await gw.reconcile()
    assert (await gw.order(order["order_id"]))["state"] == "expired"
    body: dict[str, Any] = {"webhooks": webhooks} if webhooks else {}
    if faults:
        await gw.sandbox.faults(**faults)
    result = await gw.sandbox.pay(order["payment"]["qr_id"], **body)
    return order, result["payments"][0]["id"]


async def test_dropped_webhook_is_found_by_polling(gw: Gateway) -> None:
    order = await gw.paying_order()
    paid = await gw.sandbox.pay(order["payment"]["qr_id"], webhooks={"drop": True})
    await gw.settle()
    assert (await gw.order(order["order_id"]))["state"] == "payment_pending"
    report = await gw.reconcile()
    assert report.polled == 1 and report.payments_seen == 1
    assert (await gw.order(order["order_id"]))["state"] == "paid"
    [payment] = gw.payments()
    assert payment["payment_id"] == paid["payments"][0]["id"] and payment["source"] == "poll"
    assert [c["type"] for c in await gw.commands()] == ["payment_confirmed"]
    await gw.reconcile()  # polling again changes nothing
    assert len(await gw.commands()) == 1 and gw.refunds() == []


async def test_background_pass_finds_a_dropped_webhook(start_gateway: GatewayFactory) -> None:
    gw: Gateway = await start_gateway(reconcile_interval_s=0.05)
    order = await gw.paying_order()
    await gw.sandbox.pay(order["payment"]["qr_id"], webhooks={"drop": True})
    # the hub's long-poll answers as soon as the reconciler has made the order paid
    batch = await gw.call("GET", "/hub/commands?after=0&wait=5")
    assert [c["type"] for c in batch["commands"]] == ["payment_confirmed"]
    assert (await gw.order(order["order_id"]))["state"] == "paid"


async def test_late_payment_with_dropped_webhook_is_refunded_by_polling(gw: Gateway) -> None:
    _, payment_id = await late_payment(gw, drop=True)
    await gw.settle()
    assert gw.payments() == []
    await gw.reconcile()
    [refund] = (await gw.sandbox.ledger())["refunds"]
    assert refund["payment_id"] == payment_id and refund["amount"] == PRICE


async def test_5xx_during_refund_is_retried_with_the_same_key(gw: Gateway) -> None:
    _, payment_id = await late_payment(gw, dict(api_error_next=1, api_error_kind="server"))
    await gw.settle()
    [row] = gw.refunds()
    assert row["state"] == "unknown" and row["attempts"] == 1
    assert (await gw.sandbox.ledger())["refunds"] == []
    gw.clock.now += 10  # not due yet: the backoff holds
    assert (await gw.reconcile()).refunds_tried == 0
    gw.clock.now = row["next_attempt_at"]
    assert (await gw.reconcile()).refunds_tried == 1
    [refund] = (await gw.sandbox.ledger())["refunds"]
    assert refund["payment_id"] == payment_id
    assert refund["notes"]["refund_key"] == refund_key(payment_id, 1)
    [row] = gw.refunds()
    assert row["state"] == "processed" and row["idempotency_key"] == refund_key(payment_id, 1)
    await gw.reconcile()
    assert len((await gw.sandbox.ledger())["refunds"]) == 1


@pytest.mark.parametrize("kind", ["gateway", "html"])
async def test_other_5xx_shapes_during_refund_settle_once(gw: Gateway, kind: str) -> None:
    _, payment_id = await late_payment(gw, dict(api_error_next=1, api_error_kind=kind))
    await gw.settle()
    gw.clock.now = gw.refunds()[0]["next_attempt_at"]
    await gw.reconcile()
    [refund] = (await gw.sandbox.ledger())["refunds"]
    assert refund["payment_id"] == payment_id and gw.refunds()[0]["state"] == "processed"


async def test_timeout_after_the_refund_was_made_is_adopted_not_repeated(gw: Gateway) -> None:
    # answers after the effect, later than razorpay_timeout_s (0.5)
    _, payment_id = await late_payment(gw, dict(api_slow_next=1, api_slow_s=0.8))
    await gw.settle()
    [refund] = (await gw.sandbox.ledger())["refunds"]
    assert refund["payment_id"] == payment_id
    [row] = gw.refunds()
    assert row["refund_id"] == refund["id"] and row["state"] == "processed"
    await gw.reconcile()
    assert len((await gw.sandbox.ledger())["refunds"]) == 1


async def test_timeout_and_failed_listing_leave_unknown_then_settle_once(gw: Gateway) -> None:
    order = await gw.paying_order()
    gw.clock.now = order["payment"]["close_by"] + 1
    await gw.reconcile()
    # no webhooks from here on (so refund.processed cannot settle it); we deliver the payment
    gw.sandbox.runtime.reconfigure({"webhook_url": None})
    paid = await gw.sandbox.pay(order["payment"]["qr_id"])
    raw = gw.sandbox.runtime.webhooks.event_body(paid["event_ids"][0])
    assert raw is not None
    await gw.sandbox.faults(api_slow_next=2, api_slow_s=0.8)  # the refund and the listing
    resp = await gw.client.post("/webhooks/razorpay", data=raw, headers={
        "X-Razorpay-Event-Id": paid["event_ids"][0],
        "X-Razorpay-Signature": sign(WEBHOOK_SECRET, raw)})
    assert resp.status == 200
    await gw.settle()
    [row] = gw.refunds()
    assert row["state"] == "unknown" and row["refund_id"] is None
    assert len((await gw.sandbox.ledger())["refunds"]) == 1  # it did go through
    gw.clock.now = row["next_attempt_at"]
    await gw.reconcile()
    [refund] = (await gw.sandbox.ledger())["refunds"]
    [row] = gw.refunds()
    assert row["state"] == "processed" and row["refund_id"] == refund["id"]


async def test_a_webhook_settling_the_refund_first_is_not_regressed(gw: Gateway) -> None:
    # the refund times out, so does the listing; meanwhile refund.processed arrives
    _, payment_id = await late_payment(gw, dict(api_slow_next=2, api_slow_s=0.8))
    await gw.settle()
    [row] = gw.refunds()
    assert row["state"] == "processed" and row["attempts"] == 0
    [refund] = (await gw.sandbox.ledger())["refunds"]
    assert row["refund_id"] == refund["id"] and refund["payment_id"] == payment_id


async def test_refund_is_never_issued_twice_across_restarts(
        start_gateway: GatewayFactory) -> None:
    gw: Gateway = await start_gateway()
    _, payment_id = await late_payment(gw, dict(api_error_next=1))
    await gw.settle()
    due = gw.refunds()[0]["next_attempt_at"]
    await start_gateway.stop(gw)  # type: ignore[attr-defined]
    for _ in range(2):
        gw.clock.now = due
        gw = await start_gateway()
        await gw.reconcile()  # the start pass already ran; one more changes nothing
        await start_gateway.stop(gw)  # type: ignore[attr-defined]
    gw = await start_gateway()
    await gw.settle()
    [refund] = (await gw.sandbox.ledger())["refunds"]
    assert refund["payment_id"] == payment_id
    assert [r["state"] for r in gw.refunds()] == ["processed"]


async def test_event_persisted_but_not_processed_is_recovered_at_start(
        start_gateway: GatewayFactory) -> None:
    gw: Gateway = await start_gateway()
    order = await gw.paying_order()
    paid = await gw.sandbox.pay(order["payment"]["qr_id"], webhooks={"drop": True})
    raw = gw.sandbox.runtime.webhooks.event_body(paid["event_ids"][0])
    assert raw is not None
    # what a crash right after the inbox insert leaves behind
    await gw.app[DB].write(lambda tx: tx.execute(
        "INSERT INTO webhook_inbox (event_id, event, raw, headers, received_ts) "
        "VALUES (?, 'qr_code.credited', ?, '{}', ?)", (paid["event_ids"][0], raw, tx.now)))
    await start_gateway.stop(gw)  # type: ignore[attr-defined]
    gw = await start_gateway()
    batch = await gw.call("GET", "/hub/commands?after=0&wait=5")  # the start pass recovers it
    assert [c["type"] for c in batch["commands"]] == ["payment_confirmed"]
    assert gw.q("SELECT outcome FROM webhook_inbox") == [{"outcome": "applied"}]
    assert (await gw.order(order["order_id"]))["state"] == "paid"
    assert gw.payments()[0]["source"] == "webhook"


async def test_unknown_outcome_is_flagged_after_the_deadline_not_refunded(
        gw: Gateway, caplog: pytest.LogCaptureFixture) -> None:
    order = await gw.paying_order()
    await gw.sandbox.pay(order["payment"]["qr_id"])
    await gw.settle()
    await gw.call("POST", f"/orders/{order['order_id']}/dispense")
    paid_at = gw.q("SELECT paid_at FROM orders")[0]["paid_at"]
    deadline = gw.app[SETTINGS].unknown_outcome_deadline_s
    assert deadline == 86400  # the default: 24 h
    gw.clock.now = paid_at + deadline - 60  # the hub is quiet, but not for long enough
    assert (await gw.reconcile()).flagged == 0
    assert gw.state(order["order_id"]) == "dispensing"
    gw.clock.now = paid_at + deadline + 1
    with caplog.at_level(logging.ERROR):
        assert (await gw.reconcile()).flagged == 1
    assert gw.state(order["order_id"]) == "flagged"
    alerts = [r.getMessage() for r in caplog.records if r.getMessage().startswith("ALERT")]
    assert len(alerts) == 1 and order["order_id"] in alerts[0]
    assert (await gw.sandbox.ledger())["refunds"] == [] and gw.refunds() == []
    await gw.reconcile()  # flagged once
    assert (await gw.sandbox.ledger())["refunds"] == []


def razorpay_fails_refund(gw: Gateway, refund_id: str) -> dict[str, Any]:
    """What Razorpay does when a pending refund fails (the sandbox has no knob for it yet):
    the refund becomes failed and its amount is refundable again."""
    store = gw.sandbox.runtime.store
    refund = store.refunds[refund_id]
    refund["status"] = "failed"
    payment = store.payments[refund["payment_id"]]
    payment["amount_refunded"] -= refund["amount"]
    payment["status"], payment["refund_status"] = "captured", None
    return dict(refund)


async def test_refund_failed_by_razorpay_is_retried_under_the_next_key(gw: Gateway) -> None:
    gw.sandbox.runtime.reconfigure({"refund_process_after_s": 60.0})  # stays pending
    _, payment_id = await late_payment(gw)
    await gw.sandbox.runtime.webhooks.drain()  # deliveries only: the 60 s timer stays
    await gw.app[REFUNDS].idle()
    [row] = gw.refunds()
    assert row["state"] == "pending"
    failed = razorpay_fails_refund(gw, row["refund_id"])
    gw.sandbox.runtime.reconfigure({"refund_process_after_s": 0.0})
    raw = json.dumps({"entity": "event", "event": "refund.failed", "contains": ["refund"],
                      "payload": {"refund": {"entity": failed}}}).encode()
    resp = await gw.client.post("/webhooks/razorpay", data=raw, headers={
        "X-Razorpay-Event-Id": "evt_refundfailed2",
        "X-Razorpay-Signature": sign(WEBHOOK_SECRET, raw)})
    assert (await resp.json())["status"] == "refund_updated"
    await gw.app[REFUNDS].idle()
    [row] = gw.refunds()
    assert row["state"] == "failed"  # not before the backoff
    gw.clock.now = row["next_attempt_at"]
    await gw.app[RECONCILER].run_once()
    await gw.app[REFUNDS].idle()
    await gw.sandbox.runtime.webhooks.drain()
    [row] = gw.refunds()
    assert row["state"] == "processed" and row["idempotency_key"] == refund_key(payment_id, 2)
    refunds = {r["id"]: r for r in (await gw.sandbox.ledger())["refunds"]}
    assert [r["status"] for r in refunds.values()].count("processed") == 1
    assert refunds[row["refund_id"]]["notes"]["refund_key"] == refund_key(payment_id, 2)
    # the old generation's late webhook does not touch the new one
    resp = await gw.client.post("/webhooks/razorpay", data=raw, headers={
        "X-Razorpay-Event-Id": "evt_refundfailed3",
        "X-Razorpay-Signature": sign(WEBHOOK_SECRET, raw)})
    assert (await resp.json())["status"] == "refund_superseded"
    assert gw.refunds()[0]["state"] == "processed"


async def test_event_whose_processing_crashed_is_kept_and_retried(
        gw: Gateway, monkeypatch: pytest.MonkeyPatch) -> None:
    order = await gw.paying_order()
    ledger = gw.app[LEDGER]
    real = ledger.apply_tx
    calls = []

    def broken_once(*args: Any, **kwargs: Any) -> str:
        calls.append(args)
        if len(calls) == 1:
            raise RuntimeError("simulated bug")
        return real(*args, **kwargs)

    monkeypatch.setattr(ledger, "apply_tx", broken_once)
    await gw.sandbox.pay(order["payment"]["qr_id"], webhooks={"reorder": True})
    await gw.settle()
    rows = gw.q("SELECT event, outcome, processed_ts, error FROM webhook_inbox ORDER BY id")
    assert rows[0]["processed_ts"] is None and "simulated bug" in rows[0]["error"]
    assert rows[1]["outcome"] == "applied"  # the other event for the same payment
    assert (await gw.order(order["order_id"]))["state"] == "paid"
    report = await gw.reconcile()
    assert report.recovered == 1
    rows = gw.q("SELECT outcome, processed_ts FROM webhook_inbox ORDER BY id")
    assert rows[0]["outcome"] == "duplicate_effect" and rows[0]["processed_ts"] is not None
    assert len(await gw.commands()) == 1


async def test_order_that_never_got_a_qr_expires_after_the_qr_lifetime(gw: Gateway) -> None:
    order = await gw.call("POST", "/orders", {
        "board_uid": BOARD, "product": "espresso", "options": [], "quantity": 1,
        "idempotency_key": "no-qr"}, expect=201)
    assert order["state"] == "created"
    gw.clock.now += gw.app[SETTINGS].qr_ttl_s - 5
    assert (await gw.reconcile()).expired == 0
    gw.clock.now += 10
    assert (await gw.reconcile()).expired == 1
    assert gw.state(order["order_id"]) == "expired"
    [cmd] = gw.q("SELECT type, data FROM commands")
    assert cmd["type"] == "order_cancelled" and json.loads(cmd["data"]) == {"reason": "expired"}


async def test_failed_vend_with_everything_dispensed_is_fulfilled_and_starves_nothing(
        gw: Gateway) -> None:
    order = await gw.paying_order()
    await gw.sandbox.pay(order["payment"]["qr_id"])
    await gw.settle()
    result = await gw.call("POST", "/hub/events", {"events": [{
        "id": "ev-failed-all-out", "type": "vend_result", "board_uid": BOARD,
        "order_id": order["order_id"], "at": {"wall": gw.clock(), "synced": True},
        "data": {"outcome": "failed", "dispensed": 1, "reason": "status after reboot"}}]})
    assert result["results"][0]["status"] == "applied"
    await gw.settle()
    # every unit left the machine: the customer has the goods, the money stays with the order
    assert gw.state(order["order_id"]) == "fulfilled"
    assert gw.refunds() == [] and (await gw.sandbox.ledger())["refunds"] == []
    # the next pass still does its other work: a sale whose webhooks were all lost
    other = await gw.paying_order("o2")
    await gw.sandbox.pay(other["payment"]["qr_id"], webhooks={"drop": True})
    report = await gw.reconcile()
    assert report.errors == [] and gw.state(other["order_id"]) == "paid"


async def test_second_payment_with_lost_webhooks_on_a_paid_order_is_found_and_refunded(
        gw: Gateway) -> None:
    order = await gw.paying_order()
    await gw.sandbox.pay(order["payment"]["qr_id"])
    await gw.settle()
    second = await gw.sandbox.pay(order["payment"]["qr_id"], webhooks={"drop": True})
    await gw.settle()
    assert gw.refunds() == []
    await gw.reconcile()
    [refund] = (await gw.sandbox.ledger())["refunds"]
    assert refund["payment_id"] == second["payments"][0]["id"]
    assert gw.state(order["order_id"]) == "paid"
