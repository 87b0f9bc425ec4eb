"""POST /webhooks/razorpay: the paid flow; duplicated, reordered and forged deliveries (rules 1, 4,
12)."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
from collections import Counter

import pytest

from cloud_gateway.keys import METRICS
from cloud_gateway.money import WEBHOOKS

from .conftest import OLD_WEBHOOK_SECRET, PRICE, WEBHOOK_SECRET, Gateway, GatewayFactory


def sign(secret: str, raw: bytes) -> str:
    return hmac.new(secret.encode(), raw, hashlib.sha256).hexdigest()


async def post_hook(gw: Gateway, raw: bytes, signature: str | None,
                    event_id: str | None = "evt_test0001") -> tuple[int, dict[str, object]]:
    headers = {"Content-Type": "application/json"}
    if signature is not None:
        headers["X-Razorpay-Signature"] = signature
    if event_id is not None:
        headers["X-Razorpay-Event-Id"] = event_id
    resp = await gw.client.post("/webhooks/razorpay", data=raw, headers=headers)
    return resp.status, await resp.json()


async def test_full_paid_flow(gw: Gateway) -> None:
    order = await gw.paying_order()
    paid = await gw.sandbox.pay(order["payment"]["qr_id"])
    await gw.settle()
    fresh = await gw.order(order["order_id"])
    assert fresh["state"] == "paid" and fresh["vend_deadline"] is not None
    # one payment recorded, applied once although it arrived as two events
    assert gw.payments() == [{"payment_id": paid["payments"][0]["id"],
                              "order_id": order["order_id"], "status": "captured",
                              "disposition": "applied", "source": "webhook"}]
    inbox = gw.q("SELECT event, outcome FROM webhook_inbox ORDER BY id")
    assert [r["event"] for r in inbox] == ["qr_code.credited", "payment.captured"]
    assert [r["outcome"] for r in inbox] == ["applied", "duplicate_effect"]
    [cmd] = await gw.commands()
    assert cmd["type"] == "payment_confirmed" and cmd["order_id"] == order["order_id"]
    assert cmd["data"]["amount"] == PRICE and 0 < cmd["data"]["vend_deadline_in_s"] <= 120
    await gw.call("POST", f"/orders/{order['order_id']}/dispense")
    receipt = await gw.call("POST", f"/orders/{order['order_id']}/confirm")
    assert receipt["payment_id"] == paid["payments"][0]["id"]
    ledger = await gw.sandbox.ledger()
    assert [p["status"] for p in ledger["payments"]] == ["captured"]
    assert ledger["refunds"] == [] and gw.refunds() == []
    assert gw.app[METRICS].value("gateway_webhooks_total", {"outcome": "applied"}) == 1


async def test_duplicated_deliveries_have_one_effect(gw: Gateway) -> None:
    order = await gw.paying_order()
    await gw.sandbox.pay(order["payment"]["qr_id"], webhooks={"duplicates": 2})
    await gw.settle()
    statuses = [d["status"] for d in await gw.sandbox.deliveries()]
    assert statuses == [200] * 6  # two events, three deliveries each, all acknowledged
    assert len(gw.q("SELECT * FROM webhook_inbox")) == 2  # stored once per event id
    assert gw.app[METRICS].value("gateway_webhooks_total", {"outcome": "duplicate"}) == 4
    assert (await gw.order(order["order_id"]))["state"] == "paid"
    assert len(await gw.commands()) == 1
    # a redelivery by hand, much later, still changes nothing
    evt = gw.q("SELECT event_id FROM webhook_inbox ORDER BY id")[0]["event_id"]
    await gw.sandbox.sim("POST", f"/_sim/webhooks/{evt}/redeliver")
    await gw.settle()
    assert len(await gw.commands()) == 1 and gw.refunds() == []


async def test_reordered_failed_then_captured_counts_once(gw: Gateway) -> None:
    order = await gw.paying_order()
    # payment.failed, qr_code.credited, payment.captured, delivered last first
    await gw.sandbox.pay(order["payment"]["qr_id"], fail_first=True, webhooks={"reorder": True})
    await gw.settle()
    events = [r["event"] for r in gw.q("SELECT event FROM webhook_inbox ORDER BY id")]
    assert events == ["payment.captured", "qr_code.credited", "payment.failed"]
    [payment] = gw.payments()
    assert payment["status"] == "captured"  # the late 'failed' did not regress it
    assert payment["disposition"] == "applied"
    assert (await gw.order(order["order_id"]))["state"] == "paid"
    assert len(await gw.commands()) == 1


async def test_failed_payment_alone_is_not_money(gw: Gateway) -> None:
    order = await gw.paying_order()
    qr_id = order["payment"]["qr_id"]
    body = {"event": "payment.failed", "entity": "event", "contains": ["payment"],
            "payload": {"payment": {"entity": {
                "id": "pay_FailedOnly01", "amount": PRICE, "currency": "INR",
                "status": "failed", "notes": {"order_id": order["order_id"]}}}}}
    raw = json.dumps(body).encode()
    status, answer = await post_hook(gw, raw, sign(WEBHOOK_SECRET, raw), "evt_failedonly1")
    assert status == 200 and answer["status"] == "payment_failed"
    assert (await gw.order(order["order_id"]))["state"] == "payment_pending"
    assert await gw.commands() == []
    assert qr_id == order["payment"]["qr_id"]


async def test_forged_webhooks_are_refused_and_change_nothing(gw: Gateway) -> None:
    order = await gw.paying_order()
    # capture a genuine signed body without letting it reach the gateway
    paid = await gw.sandbox.pay(order["payment"]["qr_id"], webhooks={"drop": True})
    raw = gw.sandbox.runtime.webhooks.event_body(paid["event_ids"][0])
    assert raw is not None and b"\\/" in raw  # PHP-style escapes: re-serialising changes bytes
    good = sign(WEBHOOK_SECRET, raw)
    reserialised = json.dumps(json.loads(raw), separators=(",", ":")).encode()
    assert reserialised != raw
    cases = [
        (raw, sign("not-the-secret", raw)),  # wrong secret
        (raw, None),  # missing header
        (raw, ""),  # empty header
        (raw, good.upper() + "é"),  # non-ASCII
        (reserialised, good),  # same JSON, other bytes
        (raw + b" ", good),  # one byte more
    ]
    for body, signature in cases:
        status, answer = await post_hook(gw, body, signature)
        assert status == 400, (signature, answer)
        assert answer["error"]["code"] == "invalid_signature"  # type: ignore[index]
    assert gw.q("SELECT * FROM webhook_inbox") == [] and gw.payments() == []
    assert (await gw.order(order["order_id"]))["state"] == "payment_pending"
    assert gw.app[METRICS].value("gateway_webhooks_total",
                                 {"outcome": "rejected_signature"}) == len(cases)
    # the genuine bytes with their genuine signature are accepted
    status, answer = await post_hook(gw, raw, good, paid["event_ids"][0])
    assert status == 200 and answer["status"] == "applied"


async def test_malformed_oversized_and_idless_bodies_are_400(gw: Gateway) -> None:
    for raw in (b"{not json", b"[1, 2]", b"\xff\xfe"):
        status, answer = await post_hook(gw, raw, sign(WEBHOOK_SECRET, raw))
        assert status == 400 and answer["error"]["code"] == "validation_error"  # type: ignore[index]
    raw = b'{"event": "payment.captured"}'
    status, _ = await post_hook(gw, raw, sign(WEBHOOK_SECRET, raw), event_id=None)
    assert status == 400
    limit = gw.app[WEBHOOKS]._max_bytes
    big = b'{"pad": "' + b"x" * limit + b'"}'
    status, answer = await post_hook(gw, big, sign(WEBHOOK_SECRET, big))
    assert status == 400 and "larger than" in answer["error"]["message"]  # type: ignore[index]
    assert gw.q("SELECT * FROM webhook_inbox") == []


async def test_unknown_event_type_is_stored_and_acknowledged(gw: Gateway) -> None:
    raw = b'{"entity":"event","event":"settlement.processed","payload":{}}'
    status, answer = await post_hook(gw, raw, sign(WEBHOOK_SECRET, raw), "evt_unknown00001")
    assert status == 200 and answer["status"] == "ignored"
    [row] = gw.q("SELECT event, raw, outcome, processed_ts, headers FROM webhook_inbox")
    assert row["event"] == "settlement.processed" and row["raw"] == raw
    assert row["outcome"] == "ignored" and row["processed_ts"] is not None
    assert json.loads(row["headers"])["X-Razorpay-Event-Id"] == "evt_unknown00001"


async def test_old_secret_refused_without_rotation(gw: Gateway) -> None:
    order = await gw.paying_order()
    await gw.sandbox.pay(order["payment"]["qr_id"], webhooks={"old_secret": True})
    await gw.settle()
    deliveries = await gw.sandbox.deliveries()
    assert deliveries and all(d["status"] == 400 for d in deliveries)
    assert (await gw.order(order["order_id"]))["state"] == "payment_pending"
    assert gw.q("SELECT * FROM webhook_inbox") == []


async def test_old_secret_accepted_during_rotation(start_gateway: GatewayFactory) -> None:
    from cloud_gateway.settings import Secret

    gw: Gateway = await start_gateway(webhook_previous_secret=Secret(OLD_WEBHOOK_SECRET))
    order = await gw.paying_order()
    await gw.sandbox.pay(order["payment"]["qr_id"], webhooks={"old_secret": True})
    await gw.settle()
    assert all(d["status"] == 200 for d in await gw.sandbox.deliveries())
    assert (await gw.order(order["order_id"]))["state"] == "paid"


async def test_captured_payment_of_no_order_is_alerted_not_kept_silently(
        gw: Gateway, caplog: pytest.LogCaptureFixture) -> None:
    entity = {"id": "pay_NotOurs000001", "entity": "payment", "amount": 500,
              "currency": "INR", "status": "captured", "notes": []}
    raw = json.dumps({"entity": "event", "event": "payment.captured", "contains": ["payment"],
                      "payload": {"payment": {"entity": entity}}}).encode()
    with caplog.at_level(logging.ERROR):
        status, answer = await post_hook(gw, raw, sign(WEBHOOK_SECRET, raw), "evt_notours0001")
    assert status == 200 and answer["status"] == "unmatched"
    assert [p["disposition"] for p in gw.payments()] == ["unmatched"]
    assert any(r.getMessage().startswith("ALERT") and "pay_NotOurs000001" in r.getMessage()
               for r in caplog.records)
    assert gw.refunds() == []


async def test_event_without_the_entity_it_names_is_stored_as_invalid(gw: Gateway) -> None:
    raw = b'{"entity":"event","event":"payment.captured","payload":{}}'
    status, answer = await post_hook(gw, raw, sign(WEBHOOK_SECRET, raw), "evt_noentity0001")
    assert status == 200 and answer["status"] == "invalid"
    [row] = gw.q("SELECT outcome, error, processed_ts FROM webhook_inbox")
    assert row["outcome"] == "invalid" and "payload.payment" in row["error"]
    assert gw.payments() == []


async def test_concurrent_deliveries_of_one_payment_have_one_effect(gw: Gateway) -> None:
    order = await gw.paying_order()
    paid = await gw.sandbox.pay(order["payment"]["qr_id"], webhooks={"drop": True})
    bodies = [(evt, gw.sandbox.runtime.webhooks.event_body(evt)) for evt in paid["event_ids"]]
    sends = [post_hook(gw, raw, sign(WEBHOOK_SECRET, raw), evt)
             for evt, raw in bodies * 4 if raw is not None]
    answers = await asyncio.gather(*sends)
    assert all(status == 200 for status, _ in answers)
    outcomes = Counter(str(a["status"]) for _, a in answers)
    assert outcomes == {"applied": 1, "duplicate_effect": 1, "duplicate": 6}
    assert len(await gw.commands()) == 1 and gw.refunds() == []


async def test_webhook_outcomes_on_metrics_and_route_in_openapi(gw: Gateway) -> None:
    raw = b'{"entity":"event","event":"qr_code.created","payload":{}}'
    await post_hook(gw, raw, sign(WEBHOOK_SECRET, raw), "evt_metrics00001")
    await post_hook(gw, raw, "0" * 64, "evt_metrics00002")
    text = await (await gw.client.get("/metrics")).text()
    assert 'gateway_webhooks_total{outcome="ignored"} 1' in text
    assert 'gateway_webhooks_total{outcome="rejected_signature"} 1' in text
    doc = await (await gw.client.get("/openapi.json")).json()
    assert "post" in doc["paths"]["/webhooks/razorpay"]
