"""Refunds through the adapter: limits, full refund state, idempotency replay / mismatch / 409."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from cloud_gateway.razorpay_client import RazorpayClient, RazorpayError

from .conftest import Receiver, SandboxFactory, SandboxHandle, SdkCall, api_qr, wait_until
from .test_qr_codes import AMOUNT, new_qr


async def paid_payment(rzp: RazorpayClient, sandbox: SandboxHandle) -> dict[str, Any]:
    qr = await new_qr(rzp)
    answer = await sandbox.sim(f"/_sim/qr/{qr['id']}/pay")
    return dict(answer["payments"][0])


async def test_partial_then_full_refund(rzp: RazorpayClient, sandbox: SandboxHandle) -> None:
    pay = await paid_payment(rzp, sandbox)
    first = await rzp.refund(pay["id"], amount=1000, idempotency_key="rf-partial-0001",
                             notes={"reason": "short vend"})
    assert first["id"].startswith("rfnd_") and first["entity"] == "refund"
    assert (first["amount"], first["payment_id"], first["status"]) == (1000, pay["id"], "processed")
    assert first["notes"] == {"reason": "short vend"}
    p = await rzp.fetch_payment(pay["id"])
    assert (p["status"], p["amount_refunded"], p["refund_status"]) == ("captured", 1000, "partial")
    with pytest.raises(RazorpayError) as err:
        await rzp.refund(pay["id"], amount=AMOUNT - 999, idempotency_key="rf-partial-0002")
    assert err.value.kind == "refused" and "greater than amount captured" in err.value.message
    await rzp.refund(pay["id"], amount=AMOUNT - 1000, idempotency_key="rf-partial-0003")
    p = await rzp.fetch_payment(pay["id"])
    assert (p["status"], p["amount_refunded"], p["refund_status"]) == ("refunded", AMOUNT, "full")
    with pytest.raises(RazorpayError) as err:
        await rzp.refund(pay["id"], amount=1, idempotency_key="rf-partial-0004")
    assert err.value.kind == "refused" and "fully refunded" in err.value.message
    refunds = await rzp.payment_refunds(pay["id"])
    assert sorted(r["amount"] for r in refunds) == [1000, AMOUNT - 1000]
    ledger = await sandbox.sim("/_sim/ledger")
    assert sum(r["amount"] for r in ledger["refunds"]) == AMOUNT


async def test_same_key_same_body_replays_first_answer(
    rzp: RazorpayClient, sandbox: SandboxHandle
) -> None:
    pay = await paid_payment(rzp, sandbox)
    first = await rzp.refund(pay["id"], amount=AMOUNT, idempotency_key="rf-replay-0001")
    again = await rzp.refund(pay["id"], amount=AMOUNT, idempotency_key="rf-replay-0001")
    assert again == first
    assert [r["id"] for r in await rzp.payment_refunds(pay["id"])] == [first["id"]]


async def test_same_key_different_body_refused(
    rzp: RazorpayClient, sandbox: SandboxHandle
) -> None:
    pay = await paid_payment(rzp, sandbox)
    await rzp.refund(pay["id"], amount=500, idempotency_key="rf-changed-001")
    with pytest.raises(RazorpayError) as err:
        await rzp.refund(pay["id"], amount=600, idempotency_key="rf-changed-001")
    assert err.value.kind == "refused"
    assert "Different request with the same idempotency key" in err.value.message
    assert [r["amount"] for r in await rzp.payment_refunds(pay["id"])] == [500]


async def test_refused_refund_is_replayed_too(rzp: RazorpayClient, sandbox: SandboxHandle) -> None:
    pay = await paid_payment(rzp, sandbox)
    for _ in range(2):
        with pytest.raises(RazorpayError) as err:
            await rzp.refund(pay["id"], amount=AMOUNT + 1, idempotency_key="rf-toobig-001")
        assert "greater than amount captured" in err.value.message
    assert await rzp.payment_refunds(pay["id"]) == []


async def test_concurrent_use_of_a_key_gets_409_then_replay(
    rzp: RazorpayClient, sandbox: SandboxHandle
) -> None:
    pay = await paid_payment(rzp, sandbox)
    await sandbox.sim("/_sim/faults", {"refund_hold_s": 0.5})
    key = "rf-inflight-01"
    first = asyncio.create_task(rzp.refund(pay["id"], amount=AMOUNT, idempotency_key=key))
    await wait_until(lambda: sandbox.sb.idempotency.state(key) == "in_flight")
    status, body = await sandbox.raw(
        "POST", f"/v1/payments/{pay['id']}/refund", json={"amount": AMOUNT},
        headers={"X-Refund-Idempotency": key},
    )
    assert status == 409 and "already being processed" in body["error"]["description"]
    with pytest.raises(RazorpayError) as err:  # the SDK drops the 409: the adapter says unknown
        await rzp.refund(pay["id"], amount=AMOUNT, idempotency_key=key)
    assert err.value.kind == "unknown"
    done = await first
    assert sandbox.sb.idempotency.state(key) == "done"
    await sandbox.sim("/_sim/faults", {"refund_hold_s": 0})
    assert await rzp.refund(pay["id"], amount=AMOUNT, idempotency_key=key) == done
    assert len(await rzp.payment_refunds(pay["id"])) == 1


async def test_idempotency_key_format_checked(
    rzp: RazorpayClient, sandbox: SandboxHandle
) -> None:
    pay = await paid_payment(rzp, sandbox)
    with pytest.raises(ValueError, match="idempotency_key"):
        await rzp.refund(pay["id"], amount=100, idempotency_key="short")
    status, body = await sandbox.raw(
        "POST", f"/v1/payments/{pay['id']}/refund", json={"amount": 100},
        headers={"X-Refund-Idempotency": "bad key with spaces"},
    )
    assert status == 400 and body["error"]["field"] == "X-Refund-Idempotency"


@pytest.mark.parametrize("amount", [True, "100", 1.5, 0])
async def test_refund_amount_must_be_positive_int(
    rzp: RazorpayClient, sandbox: SandboxHandle, amount: Any
) -> None:
    pay = await paid_payment(rzp, sandbox)
    status, body = await sandbox.raw(
        "POST", f"/v1/payments/{pay['id']}/refund", json={"amount": amount}
    )
    assert status == 400 and body["error"]["field"] == "amount"
    with pytest.raises((TypeError, ValueError)):
        await rzp.refund(pay["id"], amount=amount, idempotency_key="rf-badamount-1")


async def test_refund_without_amount_refunds_the_rest(
    sandbox: SandboxHandle, rzp: RazorpayClient
) -> None:
    pay = await paid_payment(rzp, sandbox)
    await rzp.refund(pay["id"], amount=300, idempotency_key="rf-rest-00001")
    status, body = await sandbox.raw("POST", f"/v1/payments/{pay['id']}/refund", json={})
    assert status == 200 and body["amount"] == AMOUNT - 300


async def test_legacy_refund_route_and_fetch(
    sandbox: SandboxHandle, rzp: RazorpayClient, sdk: SdkCall[Any]
) -> None:
    pay = await paid_payment(rzp, sandbox)
    refund = await sdk(lambda c: c.refund.create({"payment_id": pay["id"], "amount": 700}))
    assert refund["payment_id"] == pay["id"] and refund["amount"] == 700
    fetched = await sdk(lambda c: c.refund.fetch(refund["id"], {}))
    assert fetched == refund


async def test_delayed_refund_processing_emits_refund_processed(
    make_sandbox: SandboxFactory, receiver: Receiver
) -> None:
    sandbox = await make_sandbox(webhook_url=receiver.url, refund_process_after_s=0.05)
    qr = await api_qr(sandbox)
    pay = (await sandbox.sim(f"/_sim/qr/{qr['id']}/pay"))["payments"][0]
    status, refund = await sandbox.raw(
        "POST", f"/v1/payments/{pay['id']}/refund", json={"amount": AMOUNT}
    )
    assert status == 200 and refund["status"] == "pending"
    await sandbox.sim("/_sim/drain")
    status, later = await sandbox.raw("GET", f"/v1/refunds/{refund['id']}")
    assert later["status"] == "processed" and later["acquirer_data"]["arn"]
    events = [r.event for r in receiver.got]
    assert events == ["qr_code.credited", "payment.captured", "refund.processed"]


async def test_refund_of_uncaptured_payment_refused(sandbox: SandboxHandle) -> None:
    status, order = await sandbox.raw("POST", "/v1/orders", json={
        "amount": AMOUNT, "currency": "INR", "payment": {"capture": "manual"},
    })
    pay = (await sandbox.sim(f"/_sim/orders/{order['id']}/pay"))["payment"]
    assert pay["status"] == "authorized"
    status, body = await sandbox.raw(
        "POST", f"/v1/payments/{pay['id']}/refund", json={"amount": 100}
    )
    assert status == 400 and "captured" in body["error"]["description"]
