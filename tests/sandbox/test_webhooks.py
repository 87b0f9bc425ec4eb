"""Webhook deliveries: signature over the raw body, envelope, and the delivery fault knobs."""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any

import razorpay  # type: ignore[import-untyped]
from razorpay.errors import SignatureVerificationError  # type: ignore[import-untyped]

from cloud_gateway.razorpay_client import RazorpayClient
from cloud_gateway.sandbox import serialise

from .conftest import (
    OLD_WEBHOOK_SECRET,
    WEBHOOK_SECRET,
    Received,
    Receiver,
    SandboxFactory,
    SandboxHandle,
    api_qr,
)
from .test_qr_codes import AMOUNT, new_qr


def verifies(rec: Received, secret: str) -> bool:
    expected = hmac.new(secret.encode(), rec.raw, hashlib.sha256).hexdigest().encode()
    return hmac.compare_digest(expected, rec.headers["X-Razorpay-Signature"].encode())


async def pay(sandbox: SandboxHandle, rzp: RazorpayClient, **body: Any) -> dict[str, Any]:
    qr = await new_qr(rzp)
    answer: dict[str, Any] = await sandbox.sim(f"/_sim/qr/{qr['id']}/pay", body)
    return answer


async def test_signature_is_over_the_raw_body(
    sandbox: SandboxHandle, rzp: RazorpayClient, receiver: Receiver
) -> None:
    await pay(sandbox, rzp)
    got = await receiver.wait_for(2)
    assert b"https:\\/\\/rzp.io" in got[0].raw  # qr_code.credited: PHP-style escaped slashes
    for rec in got:
        assert verifies(rec, WEBHOOK_SECRET)
        assert not verifies(rec, OLD_WEBHOOK_SECRET)
        assert rec.headers["Content-Type"] == "application/json"
        reserialised = json.dumps(json.loads(rec.raw)).encode()
        assert not verifies(Received(rec.headers, reserialised), WEBHOOK_SECRET)
        # the SDK's own helper agrees (it wants str, an instance, and raises on mismatch)
        util = razorpay.Utility(None)
        signature = rec.headers["X-Razorpay-Signature"]
        assert util.verify_webhook_signature(rec.raw.decode(), signature, WEBHOOK_SECRET)
        try:
            util.verify_webhook_signature(reserialised.decode(), signature, WEBHOOK_SECRET)
        except SignatureVerificationError:
            pass
        else:
            raise AssertionError("re-serialised body verified")


def test_serialise_escapes_slashes_and_stays_valid_json() -> None:
    body = {"url": "https://rzp.io/i/abc", "name": "café"}
    raw = serialise(body)
    assert raw == b'{"url":"https:\\/\\/rzp.io\\/i\\/abc","name":"caf\\u00e9"}'
    assert json.loads(raw) == body


async def test_qr_payment_events_envelope(
    sandbox: SandboxHandle, rzp: RazorpayClient, receiver: Receiver
) -> None:
    answer = await pay(sandbox, rzp)
    [payment] = answer["payments"]
    got = await receiver.wait_for(2)
    assert [r.event for r in got] == ["qr_code.credited", "payment.captured"]
    assert [r.event_id for r in got] == answer["event_ids"]
    assert got[0].event_id != got[1].event_id and all(
        r.event_id.startswith("evt_") for r in got
    )
    credited, captured = (json.loads(r.raw) for r in got)
    assert credited["entity"] == "event" and credited["account_id"] == sandbox.sb.config.account_id
    assert credited["contains"] == ["payment", "qr_code"]
    assert captured["contains"] == ["payment"]
    for env in (credited, captured):
        entity = env["payload"]["payment"]["entity"]
        assert entity["id"] == payment["id"] and entity["status"] == "captured"
        assert entity["amount"] == AMOUNT and entity["notes"] == {"order_id": "ord_1"}
        assert isinstance(env["created_at"], int)
        assert "id" not in env  # the event id travels only in the header
    qr_entity = credited["payload"]["qr_code"]["entity"]
    assert qr_entity["status"] == "closed" and qr_entity["close_reason"] == "paid"


async def test_duplicate_delivery_reuses_event_id(
    sandbox: SandboxHandle, rzp: RazorpayClient, receiver: Receiver
) -> None:
    answer = await pay(sandbox, rzp, webhooks={"duplicates": 2})
    got = await receiver.wait_for(6)
    await sandbox.sim("/_sim/drain")
    assert len(receiver.got) == 6
    ids = [r.event_id for r in got]
    assert sorted(ids) == sorted(answer["event_ids"] * 3)
    by_id = {r.event_id: r.raw for r in got}
    assert all(r.raw == by_id[r.event_id] for r in got)  # identical bytes on redelivery


async def test_duplicate_rate_knob(
    sandbox: SandboxHandle, rzp: RazorpayClient, receiver: Receiver
) -> None:
    await sandbox.sim("/_sim/faults", {"webhook_duplicate_rate": 1.0})
    await pay(sandbox, rzp)
    await sandbox.sim("/_sim/drain")
    assert len(receiver.got) == 4 and len({r.event_id for r in receiver.got}) == 2


async def test_reorder_delivers_last_event_first(
    sandbox: SandboxHandle, rzp: RazorpayClient, receiver: Receiver
) -> None:
    await sandbox.sim("/_sim/faults", {"webhook_reorder_rate": 1.0})
    answer = await pay(sandbox, rzp)
    got = await receiver.wait_for(2)
    assert [r.event for r in got] == ["payment.captured", "qr_code.credited"]
    assert [r.event_id for r in got] == list(reversed(answer["event_ids"]))


async def test_drop_leaves_only_polling(
    sandbox: SandboxHandle, rzp: RazorpayClient, receiver: Receiver
) -> None:
    await sandbox.sim("/_sim/faults", {"webhook_drop_rate": 1.0})
    answer = await pay(sandbox, rzp)
    await sandbox.sim("/_sim/drain")
    assert receiver.got == []
    [payment] = answer["payments"]
    qr_id = sandbox.sb.store.qr_of_payment[payment["id"]]
    assert [p["id"] for p in await rzp.qr_payments(qr_id)] == [payment["id"]]
    log = (await sandbox.sim("/_sim/webhooks"))["deliveries"]
    assert [d["outcome"] for d in log] == ["dropped", "dropped"]


async def test_old_secret_signing(
    sandbox: SandboxHandle, rzp: RazorpayClient, receiver: Receiver
) -> None:
    await pay(sandbox, rzp, webhooks={"old_secret": True})
    for rec in await receiver.wait_for(2):
        assert verifies(rec, OLD_WEBHOOK_SECRET) and not verifies(rec, WEBHOOK_SECRET)


async def test_failed_then_captured_for_one_payment(
    sandbox: SandboxHandle, rzp: RazorpayClient, receiver: Receiver
) -> None:
    answer = await pay(sandbox, rzp, fail_first=True)
    got = await receiver.wait_for(3)
    assert [r.event for r in got] == ["payment.failed", "qr_code.credited", "payment.captured"]
    entities = [json.loads(r.raw)["payload"]["payment"]["entity"] for r in got]
    assert {e["id"] for e in entities} == {answer["payments"][0]["id"]}
    assert entities[0]["status"] == "failed" and entities[0]["error_code"]
    assert entities[2]["status"] == "captured" and entities[2]["error_code"] is None


async def test_non_2xx_and_slow_answers_are_retried(
    make_sandbox: SandboxFactory, rzp: RazorpayClient, receiver: Receiver
) -> None:
    sandbox = await make_sandbox(
        webhook_url=receiver.url, webhook_timeout_s=0.2, webhook_retry_base_s=0.3
    )
    receiver.statuses = [500]
    receiver.delays = [0.0, 0.5]  # the second delivery answers after the sandbox gave up
    qr = await api_qr(sandbox)
    answer = await sandbox.sim(f"/_sim/qr/{qr['id']}/pay")
    await sandbox.sim("/_sim/drain")
    log = (await sandbox.sim("/_sim/webhooks"))["deliveries"]
    outcomes = {eid: [d["outcome"] for d in log if d["event_id"] == eid]
                for eid in answer["event_ids"]}
    first, second = answer["event_ids"]
    assert outcomes[first] == ["failed", "delivered"]
    assert outcomes[second] == ["error: TimeoutError", "delivered"]
    assert log[0]["status"] == 500


async def test_retries_are_bounded(
    make_sandbox: SandboxFactory, receiver: Receiver
) -> None:
    sandbox = await make_sandbox(webhook_url=receiver.url, webhook_max_attempts=3)
    receiver.statuses = [503] * 10
    status, order = await sandbox.raw("POST", "/v1/orders", json={"amount": AMOUNT})
    assert status == 200
    await sandbox.sim(f"/_sim/orders/{order['id']}/pay")  # authorized, captured, order.paid
    await sandbox.sim("/_sim/drain")
    assert len(receiver.got) == 3 * 3


async def test_delay_knob_holds_deliveries(
    sandbox: SandboxHandle, rzp: RazorpayClient, receiver: Receiver
) -> None:
    await sandbox.sim("/_sim/faults", {"webhook_delay_s": 0.5})
    await pay(sandbox, rzp)
    assert receiver.got == []  # nothing yet: the batch is waiting
    await receiver.wait_for(2)


async def test_redeliver_and_rotated_secret_config(
    sandbox: SandboxHandle, rzp: RazorpayClient, receiver: Receiver
) -> None:
    answer = await pay(sandbox, rzp)
    await receiver.wait_for(2)
    await sandbox.sim("/_sim/config", {"webhook_secret": "brand-new-secret"})
    await sandbox.sim(f"/_sim/webhooks/{answer['event_ids'][0]}/redeliver")
    got = await receiver.wait_for(3)
    assert got[2].event_id == got[0].event_id and got[2].raw == got[0].raw
    assert verifies(got[2], "brand-new-secret")
    assert "webhook_secret" not in await sandbox.sim("/_sim/config", {})


async def test_no_webhook_url_records_events(make_sandbox: SandboxFactory) -> None:
    sandbox = await make_sandbox()
    qr = await api_qr(sandbox)
    status, closed = await sandbox.raw("POST", f"/v1/payments/qr_codes/{qr['id']}/close")
    assert status == 200 and closed["close_reason"] == "on_demand"
    await sandbox.sim("/_sim/drain")
    log = (await sandbox.sim("/_sim/webhooks"))["deliveries"]
    assert [(d["event"], d["outcome"]) for d in log] == [("qr_code.closed", "no_webhook_url")]
