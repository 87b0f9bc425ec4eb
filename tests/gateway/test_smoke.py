from __future__ import annotations

from .conftest import Gateway


async def test_create_and_pay_in_one_round_trip(gw: Gateway) -> None:
    order = await gw.order(pay=True)
    assert order["state"] == "payment_pending"
    assert order["amount"] == 35000
    assert order["payment"]["upi_uri"].startswith("upi://pay")
