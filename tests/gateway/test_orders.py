"""Orders API over loopback HTTP, with the real SDK against the sandbox."""

from __future__ import annotations

import asyncio

from cloud_gateway.keys import DB, ORDERS, RAZORPAY

from .conftest import BOARD_A, BOARD_B, FakeClock, Gateway, GatewayFactory, Sandbox, paid_order


async def test_full_flow_create_pay_paid_dispense_confirm(gw: Gateway, sandbox: Sandbox) -> None:
    order = await paid_order(gw, sandbox)
    assert order["state"] == "paid"
    assert order["vend_deadline"] is not None
    # the hub hears about it through its command queue, with the deadline computed now
    _, batch = await gw.call("GET", "/hub/commands?after=0", expect=200)
    [cmd] = [c for c in batch["commands"] if c["type"] == "payment_confirmed"]
    assert cmd["order_id"] == order["order_id"] and cmd["board_uid"] == BOARD_A
    assert cmd["data"]["amount"] == 35000 and cmd["data"]["currency"] == "INR"
    assert 0 < cmd["data"]["vend_deadline_in_s"] <= 120
    _, started = await gw.call("POST", f"/orders/{order['order_id']}/dispense", expect=200)
    assert started["state"] == "dispensing"
    _, receipt = await gw.call("POST", f"/orders/{order['order_id']}/confirm", expect=200)
    assert receipt["order_id"] == order["order_id"]
    assert receipt["amount"] == 35000 and receipt["payment_id"] == order["payment_id"]
    assert receipt["paid_at"] <= receipt["dispensed_at"] <= receipt["fulfilled_at"]
    audit = gw.app[DB].query("SELECT who, from_state, to_state, why FROM order_audit "
                             "WHERE order_id = ? ORDER BY id", (order["order_id"],))
    assert [(r["from_state"], r["to_state"]) for r in audit] == [
        (None, "created"), ("created", "payment_pending"), ("payment_pending", "paid"),
        ("paid", "dispensing"), ("dispensing", "fulfilled")]
    assert audit[2]["who"] == "razorpay" and audit[4]["who"] == "hub:hub-a"


async def test_pay_creates_single_use_fixed_qr_with_our_order_id(gw: Gateway,
                                                                  sandbox: Sandbox) -> None:
    order = await gw.order()
    assert order["state"] == "created" and order["payment"] is None
    _, paid = await gw.call("POST", f"/orders/{order['order_id']}/pay", expect=200)
    payment = paid["payment"]
    assert payment["amount"] == 35000 and payment["currency"] == "INR"
    assert 0 < payment["expires_in_s"] <= 900
    # a retried pay returns the same QR instead of creating a second one
    _, again = await gw.call("POST", f"/orders/{order['order_id']}/pay", expect=200)
    assert again["payment"]["qr_id"] == payment["qr_id"]
    _, qr = await gw.call("GET", f"/orders/{order['order_id']}/qr", expect=200)
    assert qr["qr_id"] == payment["qr_id"] and qr["upi_uri"] == payment["upi_uri"]
    # the sandbox saw exactly what Razorpay would: single use, fixed amount, our order id
    pay = await sandbox.sim("POST", f"/_sim/qr/{payment['qr_id']}/pay")
    assert pay["payments"][0]["notes"]["order_id"] == order["order_id"]
    assert pay["payments"][0]["amount"] == 35000


async def test_create_is_idempotent_by_key(gw: Gateway) -> None:
    first = await gw.order(key="same")
    status, second = await gw.call("POST", "/orders", body={
        "board_uid": BOARD_A, "product": "cappuccino", "options": ["extra_shot"],
        "quantity": 1, "idempotency_key": "same"})
    assert status == 200 and second["order_id"] == first["order_id"]
    status, err = await gw.call("POST", "/orders", body={
        "board_uid": BOARD_A, "product": "espresso", "options": [], "quantity": 1,
        "idempotency_key": "same"})
    assert status == 409 and err["error"]["code"] == "conflict"
    assert err["error"]["details"]["order_id"] == first["order_id"]
    # keys are per hub: hub-b may use the same key for its own order
    other = await gw.order(hub="hub-b", board=BOARD_B, key="same")
    assert other["order_id"] != first["order_id"]


async def test_idempotent_create_with_pay_does_not_make_two_qrs(gw: Gateway) -> None:
    first, second = await asyncio.gather(gw.order(key="twice", pay=True),
                                         gw.order(key="twice", pay=True))
    assert first["order_id"] == second["order_id"]
    assert first["payment"]["qr_id"] == second["payment"]["qr_id"]


async def test_price_in_request_is_rejected(gw: Gateway) -> None:
    for key in ("price", "amount"):
        status, err = await gw.call("POST", "/orders", body={
            "board_uid": BOARD_A, "product": "cappuccino", "options": [], "quantity": 1,
            "idempotency_key": f"p-{key}", key: 1})
        assert status == 400
        assert err["error"]["code"] == "validation_error"
        assert "computed by the gateway" in err["error"]["details"]["invalid"][key]
    assert gw.app[DB].query("SELECT COUNT(*) FROM orders")[0][0] == 0


async def test_prices_come_from_the_catalog_with_site_overrides(gw: Gateway) -> None:
    a = await gw.order(key="a")
    assert a["amount"] == 30000 + 5000  # mall-1: base prices
    b = await gw.order(hub="hub-b", board=BOARD_B, key="b")
    assert b["amount"] == 35000 + 5000  # airport-t2 overrides the cappuccino
    status, data = await gw.call("POST", "/orders", body={
        "board_uid": BOARD_A, "product": "cappuccino", "options": ["extra_shot", "extra_milk"],
        "quantity": 2, "idempotency_key": "c"})
    assert status == 201 and data["amount"] == (30000 + 5000 + 3000) * 2
    status, err = await gw.call("POST", "/orders", "hub-b", {
        "board_uid": BOARD_B, "product": "cappuccino", "options": ["oat_milk"],
        "quantity": 1, "idempotency_key": "d"})
    assert status == 400 and "not available" in err["error"]["details"]["invalid"]["options.0"]


async def test_validation_lists_missing_and_invalid_fields(gw: Gateway) -> None:
    status, err = await gw.call("POST", "/orders", body={
        "board_uid": BOARD_A, "product": "latte", "quantity": True, "colour": "red"})
    assert status == 400
    details = err["error"]["details"]
    assert sorted(details["missing"]) == ["idempotency_key", "options"]
    assert set(details["invalid"]) == {"quantity", "colour"}
    status, err = await gw.call("POST", "/orders", body={
        "board_uid": BOARD_A, "product": "latte", "options": ["x", "x"], "quantity": 99,
        "idempotency_key": "v"})
    assert status == 400 and "quantity" in err["error"]["details"]["invalid"]
    status, err = await gw.call("POST", "/orders", body={
        "board_uid": BOARD_A, "product": "latte", "options": [], "quantity": 1,
        "idempotency_key": "v"})
    assert status == 400 and "unknown product" in err["error"]["details"]["invalid"]["product"]


async def test_invalid_transition_is_409_with_current_state(gw: Gateway) -> None:
    order = await gw.order()
    status, err = await gw.call("POST", f"/orders/{order['order_id']}/confirm")
    assert status == 409
    assert err["error"]["code"] == "invalid_state"
    assert err["error"]["details"]["state"] == "created"
    status, err = await gw.call("POST", f"/orders/{order['order_id']}/dispense")
    assert status == 409 and err["error"]["details"]["state"] == "created"


async def test_hub_cannot_see_or_touch_another_hubs_order(gw: Gateway, sandbox: Sandbox) -> None:
    order = await paid_order(gw, sandbox)
    oid = order["order_id"]
    for method, path, body in (("GET", f"/orders/{oid}", None),
                               ("GET", f"/orders/{oid}/qr", None),
                               ("POST", f"/orders/{oid}/pay", None),
                               ("POST", f"/orders/{oid}/dispense", None),
                               ("POST", f"/orders/{oid}/confirm", None),
                               ("POST", f"/orders/{oid}/fail", {"reason": "x", "dispensed": 0}),
                               ("POST", f"/orders/{oid}/cancel", {"reason": "customer"})):
        status, err = await gw.call(method, path, "hub-b", body)
        assert status == 403, (method, path, err)
        assert err["error"]["code"] == "forbidden"
    # nor create orders on its boards
    status, _ = await gw.call("POST", "/orders", "hub-b", {
        "board_uid": BOARD_A, "product": "cappuccino", "options": [], "quantity": 1,
        "idempotency_key": "steal"})
    assert status == 403
    _, fresh = await gw.call("GET", f"/orders/{oid}", expect=200)
    assert fresh["state"] == "paid"


async def test_two_confirms_racing_one_wins(gw: Gateway, sandbox: Sandbox) -> None:
    order = await paid_order(gw, sandbox)
    await gw.call("POST", f"/orders/{order['order_id']}/dispense", expect=200)
    results = await asyncio.gather(*(gw.call("POST", f"/orders/{order['order_id']}/confirm")
                                      for _ in range(5)))
    statuses = sorted(s for s, _ in results)
    assert statuses == [200, 409, 409, 409, 409]
    rows = gw.app[DB].query("SELECT COUNT(*) FROM order_audit WHERE order_id = ? "
                            "AND to_state = 'fulfilled'", (order["order_id"],))
    assert rows[0][0] == 1


async def test_two_dispenses_racing_one_wins(gw: Gateway, sandbox: Sandbox) -> None:
    order = await paid_order(gw, sandbox)
    results = await asyncio.gather(*(gw.call("POST", f"/orders/{order['order_id']}/dispense")
                                      for _ in range(4)))
    assert sorted(s for s, _ in results) == [200, 409, 409, 409]


async def test_cancel_closes_the_qr(gw: Gateway, sandbox: Sandbox) -> None:
    order = await gw.order(pay=True)
    status, data = await gw.call("POST", f"/orders/{order['order_id']}/cancel",
                                 body={"reason": "customer"})
    assert status == 200 and data["state"] == "cancelled"
    await gw.app[ORDERS].aclose()  # the close runs after the commit
    qr_id = order["payment"]["qr_id"]
    qr = await gw.app[RAZORPAY].fetch_qr(qr_id)
    assert qr["status"] == "closed"
    status, err = await gw.call("POST", f"/orders/{order['order_id']}/pay")
    assert status == 409 and err["error"]["details"]["state"] == "cancelled"
    status, err = await gw.call("POST", f"/orders/{order['order_id']}/cancel",
                                body={"reason": "nonsense"})
    assert status == 400 and "reason" in err["error"]["details"]["invalid"]


async def test_vend_failure_moves_to_failed(gw: Gateway, sandbox: Sandbox) -> None:
    order = await paid_order(gw, sandbox)
    status, err = await gw.call("POST", f"/orders/{order['order_id']}/fail",
                                body={"reason": "motor jam", "dispensed": 1})
    assert status == 400  # quantity 1: a failed vend cannot have dispensed it
    assert "dispensed" in err["error"]["details"]["invalid"]
    status, data = await gw.call("POST", f"/orders/{order['order_id']}/fail",
                                 body={"reason": "motor jam", "dispensed": 0})
    assert status == 200 and data["state"] == "failed"


async def test_dispense_refused_after_the_vend_deadline(start_gateway: GatewayFactory,
                                                        sandbox: Sandbox) -> None:
    clock = FakeClock()
    gw = await start_gateway(clock=clock)
    order = await paid_order(gw, sandbox)
    clock.now += 121
    status, err = await gw.call("POST", f"/orders/{order['order_id']}/dispense")
    assert status == 409 and err["error"]["details"]["state"] == "paid"


async def test_razorpay_unreachable_is_503_and_order_stays_created(
        start_gateway: GatewayFactory) -> None:
    gw = await start_gateway(razorpay_base_url="http://127.0.0.1:9", razorpay_timeout_s=0.5)
    status, err = await gw.call("POST", "/orders", body={
        "board_uid": BOARD_A, "product": "cappuccino", "options": [], "quantity": 1,
        "idempotency_key": "down", "pay": True})
    assert status == 503
    assert err["error"]["code"] == "payment_provider_error"
    assert err["error"]["details"]["kind"] == "not_sent"
    [row] = gw.app[DB].query("SELECT state FROM orders")
    assert row["state"] == "created"


async def test_razorpay_5xx_is_502_unknown(gw: Gateway, sandbox: Sandbox) -> None:
    await sandbox.sim("POST", "/_sim/faults", {"api_error_next": 1, "api_error_kind": "server"})
    order = await gw.order()
    status, err = await gw.call("POST", f"/orders/{order['order_id']}/pay")
    assert status == 502 and err["error"]["details"]["kind"] == "unknown"
    _, fresh = await gw.call("GET", f"/orders/{order['order_id']}", expect=200)
    assert fresh["state"] == "created"


async def test_razorpay_in_worker_processes_same_answers(start_gateway: GatewayFactory,
                                                        sandbox: Sandbox) -> None:
    gw = await start_gateway(razorpay_processes=1)
    order = await paid_order(gw, sandbox, key="proc")
    assert order["state"] == "paid" and order["payment"]["upi_uri"].startswith("upi://")
    qr = await gw.app[RAZORPAY].fetch_qr(order["payment"]["qr_id"])
    assert qr["status"] == "closed"  # paid single-use QR closes itself
    await sandbox.sim("POST", "/_sim/faults", {"api_error_next": 1, "api_error_kind": "server"})
    status, err = await gw.call("POST", "/orders", body={
        "board_uid": BOARD_A, "product": "espresso", "options": [], "quantity": 1,
        "idempotency_key": "proc-5xx", "pay": True})
    assert status == 502 and err["error"]["details"]["kind"] == "unknown"  # RazorpayError kept
    # many calls in flight at once, each answer matched to its own caller
    orders = await asyncio.gather(*(gw.order(key=f"many-{i}", pay=True) for i in range(12)))
    qr_ids = {o["payment"]["qr_id"] for o in orders}
    assert len(qr_ids) == 12
    for o in orders:
        qr = await gw.app[RAZORPAY].fetch_qr(o["payment"]["qr_id"])
        assert qr["notes"]["order_id"] == o["order_id"]


async def test_full_flow_with_real_signed_webhooks(gw: Gateway, sandbox: Sandbox) -> None:
    """The sandbox pays the QR and delivers qr_code.credited + payment.captured, signed, to the
    gateway's webhook route; the hub hears payment_confirmed, vends, and confirms."""
    await sandbox.sim("POST", "/_sim/config",
                      {"webhook_url": str(gw.client.make_url("/webhooks/razorpay"))})
    order = await gw.order(key="e2e", pay=True)
    await sandbox.sim("POST", f"/_sim/qr/{order['payment']['qr_id']}/pay")
    await sandbox.sim("POST", "/_sim/drain")
    _, paid = await gw.call("GET", f"/orders/{order['order_id']}", expect=200)
    assert paid["state"] == "paid"
    _, batch = await gw.call("GET", "/hub/commands?after=0&wait=2", expect=200)
    assert [c["type"] for c in batch["commands"]] == ["payment_confirmed"]  # once, not twice
    await gw.call("POST", f"/orders/{order['order_id']}/dispense", expect=200)
    _, receipt = await gw.call("POST", f"/orders/{order['order_id']}/confirm", expect=200)
    assert receipt["amount"] == order["amount"] and receipt["payment_id"].startswith("pay_")


async def test_no_goods_without_exactly_the_money(gw: Gateway, sandbox: Sandbox) -> None:
    """INVARIANTS rule 1: a payment of another amount or currency never makes the order paid
    and never tells the hub to vend."""
    from cloud_gateway.orders.service import PaymentMismatch

    order = await gw.order(key="short", pay=True)
    service = gw.app[ORDERS]
    for amount, currency in ((order["amount"] - 1, "INR"), (order["amount"], "USD"),
                             (True, "INR")):
        try:
            await gw.app[DB].write(lambda tx, a=amount, c=currency: service.mark_paid_tx(
                tx, order["order_id"], "pay_x", a, c, "razorpay", "test"))
        except PaymentMismatch:
            pass
        else:
            raise AssertionError(f"{amount} {currency} was accepted")
    _, fresh = await gw.call("GET", f"/orders/{order['order_id']}", expect=200)
    assert fresh["state"] == "payment_pending"
    assert gw.app[DB].query("SELECT COUNT(*) FROM commands")[0][0] == 0
