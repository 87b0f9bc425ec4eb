"""Property: whatever refunds are asked for, money never goes out beyond what came in."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from cloud_gateway.sandbox import SandboxConfig, SandboxError
from cloud_gateway.sandbox.store import PayOptions, Store

NOW = 1_800_000_000.0


def store_with_payment(amount: int) -> tuple[Store, str]:
    store = Store(config=SandboxConfig(), clock=lambda: NOW)
    qr = store.create_qr({
        "type": "upi_qr", "usage": "single_use", "fixed_amount": True, "payment_amount": amount,
    })
    payment, _ = store.pay_qr(qr["id"], PayOptions())
    return store, payment["id"]


@settings(max_examples=60, deadline=None, database=None)
@given(
    amount=st.integers(min_value=1, max_value=100_000),
    asks=st.lists(st.one_of(st.none(), st.integers(min_value=-5, max_value=120_000)), max_size=8),
)
def test_refunds_never_exceed_the_captured_amount(amount: int, asks: list[int | None]) -> None:
    store, pid = store_with_payment(amount)
    for ask in asks:
        body = {} if ask is None else {"amount": ask}
        before = store.payments[pid]["amount_refunded"]
        try:
            refund = store.refund(pid, body)
        except SandboxError:
            assert store.payments[pid]["amount_refunded"] == before  # refused = no change
            continue
        assert refund["amount"] >= 1
        assert refund["amount"] == (amount - before if ask is None else ask)
    payment = store.payments[pid]
    refunded = sum(r["amount"] for r in store.refunds.values())
    assert payment["amount_refunded"] == refunded <= amount
    full = refunded == amount
    assert (payment["status"] == "refunded") == full
    assert payment["refund_status"] == ("full" if full else "partial" if refunded else None)
