"""Orders and capture through the raw SDK; auto-pay and its seeded faults; the ledger."""

from __future__ import annotations

from typing import Any

import pytest
from razorpay.errors import BadRequestError  # type: ignore[import-untyped]

from .conftest import Receiver, SandboxFactory, SandboxHandle, SdkCall, api_qr
from .test_qr_codes import AMOUNT


async def test_order_create_fetch_find_by_receipt(sdk: SdkCall[Any]) -> None:
    order = await sdk(lambda c: c.order.create(
        {"amount": AMOUNT, "currency": "INR", "receipt": "rcpt-42", "notes": {"k": "v"}}
    ))
    assert order["id"].startswith("order_") and order["status"] == "created"
    assert (order["amount_due"], order["amount_paid"], order["attempts"]) == (AMOUNT, 0, 0)
    assert await sdk(lambda c: c.order.fetch(order["id"])) == order
    found = await sdk(lambda c: c.order.all({"receipt": "rcpt-42"}))
    assert [o["id"] for o in found["items"]] == [order["id"]]
    none = await sdk(lambda c: c.order.all({"receipt": "other"}))
    assert none == {"entity": "collection", "count": 0, "items": []}


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ({"amount": 99, "currency": "INR"}, "at least INR 1.00"),
        ({"amount": True, "currency": "INR"}, "must be an integer"),
        ({"amount": "2500", "currency": "INR"}, "must be an integer"),
        ({"amount": AMOUNT, "currency": "USD"}, "Currency"),
        ({"amount": AMOUNT, "receipt": "r" * 41}, "40 characters"),
        ({"amount": AMOUNT, "surprise": 1}, "should not be sent"),
    ],
)
async def test_order_validation(sdk: SdkCall[Any], body: dict[str, Any], words: str) -> None:
    with pytest.raises(BadRequestError, match=words):
        await sdk(lambda c: c.order.create(body))


async def test_manual_capture_only_from_authorized_with_equal_amount(
    sandbox: SandboxHandle, sdk: SdkCall[Any], receiver: Receiver
) -> None:
    order = await sdk(lambda c: c.order.create(
        {"amount": AMOUNT, "currency": "INR", "payment": {"capture": "manual"}}
    ))
    pay = (await sandbox.sim(f"/_sim/orders/{order['id']}/pay"))["payment"]
    assert pay["status"] == "authorized" and pay["order_id"] == order["id"]
    with pytest.raises(BadRequestError, match="equal to the amount authorized"):
        await sdk(lambda c: c.payment.capture(pay["id"], AMOUNT - 1, {"currency": "INR"}))
    captured = await sdk(lambda c: c.payment.capture(pay["id"], AMOUNT, {"currency": "INR"}))
    assert captured["status"] == "captured" and captured["captured"] is True
    with pytest.raises(BadRequestError, match="already been captured"):
        await sdk(lambda c: c.payment.capture(pay["id"], AMOUNT, {"currency": "INR"}))
    paid = await sdk(lambda c: c.order.fetch(order["id"]))
    assert (paid["status"], paid["amount_paid"], paid["amount_due"]) == ("paid", AMOUNT, 0)
    listed = await sdk(lambda c: c.order.payments(order["id"]))
    assert [p["id"] for p in listed["items"]] == [pay["id"]]
    await sandbox.sim("/_sim/drain")
    assert [r.event for r in receiver.got] == ["payment.authorized", "payment.captured",
                                               "order.paid"]


async def test_auto_pay_after_delay(make_sandbox: SandboxFactory, receiver: Receiver) -> None:
    sandbox = await make_sandbox(webhook_url=receiver.url, auto_pay_after_s=0.05)
    code = await api_qr(sandbox)
    got = await receiver.wait_for(2)
    assert [r.event for r in got] == ["qr_code.credited", "payment.captured"]
    ledger = await sandbox.sim("/_sim/ledger")
    assert [(p["qr_code_id"], p["amount"]) for p in ledger["payments"]] == [(code["id"], AMOUNT)]


async def test_auto_pay_skips_closed_qr_unless_late_fault(
    make_sandbox: SandboxFactory, receiver: Receiver
) -> None:
    sandbox = await make_sandbox(webhook_url=receiver.url, auto_pay_after_s=0.05)
    for late, expected in ((0.0, 0), (1.0, 1)):
        await sandbox.sim("/_sim/faults", {"pay_after_close_rate": late})
        code = await api_qr(sandbox)
        await sandbox.raw("POST", f"/v1/payments/qr_codes/{code['id']}/close")
        await sandbox.sim("/_sim/drain")
        status, body = await sandbox.raw("GET", f"/v1/payments/qr_codes/{code['id']}/payments")
        assert status == 200 and body["count"] == expected


async def test_auto_pay_faults(make_sandbox: SandboxFactory, receiver: Receiver) -> None:
    sandbox = await make_sandbox(
        webhook_url=receiver.url, auto_pay_after_s=0.0,
        faults={"pay_twice_rate": 1.0, "pay_wrong_amount_rate": 1.0, "pay_fail_first_rate": 1.0},
    )
    code = await api_qr(sandbox)
    await sandbox.sim("/_sim/drain")
    status, body = await sandbox.raw("GET", f"/v1/payments/qr_codes/{code['id']}/payments")
    assert status == 200
    assert [p["amount"] for p in body["items"]] == [AMOUNT - 1, AMOUNT - 1]
    assert [r.event for r in receiver.got].count("payment.failed") == 2


async def test_chaos_is_reproducible_with_a_seed(
    make_sandbox: SandboxFactory, receiver: Receiver
) -> None:
    knobs = {"seed": 11, "webhook_drop_rate": 0.3, "webhook_duplicate_rate": 0.3,
             "webhook_reorder_rate": 0.5, "webhook_old_secret_rate": 0.3}

    async def run() -> list[tuple[str, str, str]]:
        sandbox = await make_sandbox(faults=knobs)
        for _ in range(8):
            code = await api_qr(sandbox)
            await sandbox.sim(f"/_sim/qr/{code['id']}/pay")
        await sandbox.sim("/_sim/drain")
        log = (await sandbox.sim("/_sim/webhooks"))["deliveries"]
        return [(d["event"], d["outcome"], d["signed_with"]) for d in log]

    first = await run()
    assert first == await run()
    outcomes = {o for _, o, _ in first}
    assert {"dropped", "no_webhook_url"} <= outcomes


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/_sim/faults", {"webhook_drop_rate": 2}, "webhook_drop_rate"),
        ("/_sim/faults", {"no_such_knob": 1}, "no_such_knob"),
        ("/_sim/faults", {"api_error_next": -1}, "api_error_next"),
        ("/_sim/config", {"webhook_timeout_s": "fast"}, "webhook_timeout_s"),
        ("/_sim/config", {"bogus": 1}, "bogus"),
        ("/_sim/qr/qr_x/pay", {"times": 0}, "times"),
    ],
)
async def test_control_routes_validate(
    sandbox: SandboxHandle, path: str, body: dict[str, Any], field: str
) -> None:
    status, answer = await sandbox.raw("POST", path, json=body)
    assert status == 400 and answer["error"]["field"] == field


async def test_bad_initial_faults_refused_at_factory() -> None:
    from cloud_gateway.sandbox import SandboxConfig, SandboxError, create_sandbox_app

    with pytest.raises(SandboxError, match="webhook_drop_rate"):
        create_sandbox_app(SandboxConfig(), faults={"webhook_drop_rate": -1})
