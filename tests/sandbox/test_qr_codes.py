"""QR codes through the real SDK and the adapter: create, fetch, pay, close, validation."""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from cloud_gateway.razorpay_client import RazorpayClient, RazorpayError

from .conftest import SandboxFactory, SandboxHandle

AMOUNT = 2500


def soon(seconds: int = 600) -> int:
    return int(time.time()) + seconds


async def new_qr(rzp: RazorpayClient, **notes: str) -> dict[str, Any]:
    return await rzp.create_upi_qr(
        amount=AMOUNT, close_by=soon(), notes=notes or {"order_id": "ord_1"}, description="Tea"
    )


async def test_create_and_fetch_upi_qr(rzp: RazorpayClient, sandbox: SandboxHandle) -> None:
    close_by = soon()
    qr = await rzp.create_upi_qr(
        amount=AMOUNT, close_by=close_by, notes={"order_id": "ord_1"}, description="Tea"
    )
    assert qr["id"].startswith("qr_") and qr["entity"] == "qr_code"
    assert (qr["status"], qr["usage"], qr["fixed_amount"]) == ("active", "single_use", True)
    assert qr["payment_amount"] == AMOUNT and qr["close_by"] == close_by
    assert qr["notes"] == {"order_id": "ord_1"}
    uri = urlsplit(qr["image_content"])
    params = {k: v[0] for k, v in parse_qs(uri.query).items()}
    assert uri.scheme == "upi" and uri.netloc == "pay"
    assert params == {
        "pa": sandbox.sb.config.merchant_vpa, "pn": sandbox.sb.config.merchant_name,
        "am": "25.00", "cu": "INR", "tr": qr["id"],
    }
    assert await rzp.fetch_qr(qr["id"]) == qr


async def test_pay_captures_carries_notes_and_closes_single_use(
    rzp: RazorpayClient, sandbox: SandboxHandle
) -> None:
    qr = await new_qr(rzp, order_id="ord_77", machine="m1")
    answer = await sandbox.sim(f"/_sim/qr/{qr['id']}/pay", {"vpa": "alice@okbank"})
    [paid] = answer["payments"]
    payments = await rzp.qr_payments(qr["id"])
    assert [p["id"] for p in payments] == [paid["id"]]
    p = await rzp.fetch_payment(paid["id"])
    assert (p["status"], p["captured"], p["method"], p["order_id"]) == (
        "captured", True, "upi", None
    )
    assert p["amount"] == AMOUNT and p["currency"] == "INR" and p["vpa"] == "alice@okbank"
    assert p["notes"] == {"order_id": "ord_77", "machine": "m1"}
    assert p["fee"] == AMOUNT * sandbox.sb.config.fee_bps // 10_000
    after = await rzp.fetch_qr(qr["id"])
    assert (after["status"], after["close_reason"]) == ("closed", "paid")
    assert (after["payments_count_received"], after["payments_amount_received"]) == (1, AMOUNT)
    ledger = await sandbox.sim("/_sim/ledger")
    assert [(x["id"], x["qr_code_id"]) for x in ledger["payments"]] == [(paid["id"], qr["id"])]


async def test_close_on_demand_then_second_close_refused(rzp: RazorpayClient) -> None:
    qr = await new_qr(rzp)
    closed = await rzp.close_qr(qr["id"])
    assert (closed["status"], closed["close_reason"]) == ("closed", "on_demand")
    assert isinstance(closed["closed_at"], int)
    with pytest.raises(RazorpayError) as err:
        await rzp.close_qr(qr["id"])
    assert err.value.kind == "refused" and "already closed" in err.value.message


async def test_late_payment_lands_on_closed_qr(rzp: RazorpayClient, sandbox: SandboxHandle) -> None:
    qr = await new_qr(rzp)
    await rzp.close_qr(qr["id"])
    await sandbox.sim(f"/_sim/qr/{qr['id']}/pay")
    [late] = await rzp.qr_payments(qr["id"])
    assert late["status"] == "captured"
    assert (await rzp.fetch_qr(qr["id"]))["close_reason"] == "on_demand"


async def test_pay_twice_and_wrong_amount(rzp: RazorpayClient, sandbox: SandboxHandle) -> None:
    qr = await new_qr(rzp)
    two = await sandbox.sim(f"/_sim/qr/{qr['id']}/pay", {"times": 2})
    assert len({p["id"] for p in two["payments"]}) == 2
    assert len(two["event_ids"]) == 4
    other = await new_qr(rzp)
    short = await sandbox.sim(f"/_sim/qr/{other['id']}/pay", {"amount": AMOUNT - 1})
    assert short["payments"][0]["amount"] == AMOUNT - 1
    assert (await rzp.fetch_qr(other["id"]))["payments_amount_received"] == AMOUNT - 1


async def test_unknown_qr_and_payment_ids_refused(rzp: RazorpayClient) -> None:
    for call in (rzp.fetch_qr("qr_doesnotexist00"), rzp.fetch_payment("pay_doesnotexist0")):
        with pytest.raises(RazorpayError) as err:
            await call
        assert err.value.kind == "refused"
        assert err.value.message == "The id provided does not exist"


async def test_list_qr_by_payment_id(sandbox: SandboxHandle, rzp: RazorpayClient) -> None:
    a, b = await new_qr(rzp), await new_qr(rzp)
    paid = (await sandbox.sim(f"/_sim/qr/{b['id']}/pay"))["payments"][0]
    status, body = await sandbox.raw("GET", f"/v1/payments/qr_codes?payment_id={paid['id']}")
    assert status == 200 and [q["id"] for q in body["items"]] == [b["id"]]
    status, body = await sandbox.raw("GET", "/v1/payments/qr_codes")
    assert body["entity"] == "collection" and body["count"] == 2
    assert [q["id"] for q in body["items"]] == [b["id"], a["id"]]  # newest first


def qr_body(**changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "type": "upi_qr", "usage": "single_use", "fixed_amount": True,
        "payment_amount": AMOUNT, "close_by": soon(), "notes": {"order_id": "o"},
    }
    body.update(changes)
    return {k: v for k, v in body.items() if v is not None}


@pytest.mark.parametrize(
    ("changes", "field", "words"),
    [
        ({"payment_amount": True}, "payment_amount", "must be an integer"),
        ({"payment_amount": "2500"}, "payment_amount", "must be an integer"),
        ({"payment_amount": 25.0}, "payment_amount", "must be an integer"),
        ({"payment_amount": 0}, "payment_amount", "at least 1"),
        ({"fixed_amount": False, "payment_amount": None}, "fixed_amount", "single_use"),
        ({"payment_amount": None}, "payment_amount", "required"),
        ({"colour": "red"}, "colour", "should not be sent"),
        ({"type": "bharat_qr"}, "type", "invalid"),
        ({"usage": None}, "usage", "required"),
        ({"close_by": True}, "close_by", "must be an integer"),
        ({"notes": {str(i): "x" for i in range(16)}}, "notes", "15"),
        ({"notes": {"k": "x" * 257}}, "notes", "256"),
    ],
)
async def test_qr_validation(
    sandbox: SandboxHandle, changes: dict[str, Any], field: str, words: str
) -> None:
    status, body = await sandbox.raw("POST", "/v1/payments/qr_codes", json=qr_body(**changes))
    assert status == 400
    assert body["error"]["code"] == "BAD_REQUEST_ERROR"
    assert body["error"]["field"] == field
    assert words in body["error"]["description"]


async def test_body_must_be_a_json_object(sandbox: SandboxHandle) -> None:
    for data in (b"[1, 2]", b"{not json", b'"text"'):
        status, body = await sandbox.raw("POST", "/v1/payments/qr_codes", data=data)
        assert status == 400 and "JSON" in body["error"]["description"]


@pytest.mark.parametrize("min_lead_s", [120, 900])
async def test_close_by_minimum_lead_is_configurable(
    make_sandbox: SandboxFactory, min_lead_s: int
) -> None:
    sandbox = await make_sandbox(qr_min_lead_s=min_lead_s)
    status, body = await sandbox.raw(
        "POST", "/v1/payments/qr_codes", json=qr_body(close_by=soon(min_lead_s - 30))
    )
    assert status == 400 and body["error"]["field"] == "close_by"
    assert f"{min_lead_s // 60} minutes" in body["error"]["description"]
    status, body = await sandbox.raw(
        "POST", "/v1/payments/qr_codes", json=qr_body(close_by=soon(min_lead_s + 30))
    )
    assert status == 200, body


async def test_close_by_defaulted_and_capped_to_two_hours(sandbox: SandboxHandle) -> None:
    cap = sandbox.sb.config.qr_max_lead_s
    for close_by in (None, soon(cap * 3)):
        before = int(time.time())
        status, body = await sandbox.raw(
            "POST", "/v1/payments/qr_codes", json=qr_body(close_by=close_by)
        )
        assert status == 200
        assert before + cap <= body["close_by"] <= int(time.time()) + cap


async def test_expired_qr_reads_closed(sandbox: SandboxHandle, rzp: RazorpayClient) -> None:
    qr = await new_qr(rzp)
    sandbox.sb.store.clock = lambda: qr["close_by"] + 1.0
    after = await rzp.fetch_qr(qr["id"])
    assert (after["status"], after["close_reason"]) == ("closed", "expired")


async def test_empty_notes_come_back_as_list(sandbox: SandboxHandle) -> None:
    status, body = await sandbox.raw("POST", "/v1/payments/qr_codes", json=qr_body(notes={}))
    assert status == 200 and body["notes"] == []
