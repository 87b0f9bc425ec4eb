"""The money checker itself: a consistent site passes, and each rule, broken on its own, is
reported as the right kind of finding (so a chaos run that says 0 violations means it)."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from bench.sitekit.checker import BoardPurchase, Snapshot, check, site_prices
from bench.sitekit.site import CATALOG

PRICES = site_prices(CATALOG, "any-site")
ESPRESSO = PRICES[("espresso", "")]
WATER = PRICES[("water", "")]


def order(oid: str, state: str, *, product: str = "espresso", qty: int = 1,
          amount: int | None = None, payment: str | None = None, **extra: Any) -> dict[str, Any]:
    unit = PRICES[(product, "")]
    return {"order_id": oid, "state": state, "product": product, "options": "[]",
            "quantity": qty, "amount": unit * qty if amount is None else amount,
            "currency": "INR", "qr_id": f"qr_{oid}", "payment_id": payment,
            "vend_deadline": 2_000_000_000 if payment else None, "vend_dispensed": None, **extra}


def pay(pid: str, oid: str, amount: int, status: str = "captured") -> dict[str, Any]:
    return {"id": pid, "amount": amount, "currency": "INR", "status": status,
            "qr_code_id": f"qr_{oid}"}


def refund(pid: str, amount: int) -> dict[str, Any]:
    return {"id": f"rfnd_{pid}", "payment_id": pid, "amount": amount, "status": "processed"}


def bought(oid: str, state: str, *, qty: int = 1, dispensed: int = 0, approved: bool = True,
           amount: int = ESPRESSO, product: str = "espresso") -> BoardPurchase:
    return BoardPurchase(board="b1", order_ref=oid, state=state, product=product, options=(),
                         quantity=qty, approved_quantity=qty if approved else None,
                         dispensed=dispensed, outcome=1, qr_amount=amount,
                         approved_wall=1_900_000_000.0 if approved else None)


def event(oid: str, kind: str = "vend_result") -> dict[str, Any]:
    return {"order_id": oid, "type": kind, "status": "applied"}


@pytest.fixture
def clean() -> Snapshot:
    """A fulfilled sale, a jam refunded, a partial vend refunded for the rest, a late payment
    on an expired order refunded, and a paid order flagged with an unknown outcome."""
    return Snapshot(
        orders=[order("o1", "fulfilled", payment="p1"),
                order("o2", "refunded", payment="p2", vend_dispensed=0),
                order("o3", "refunded", product="water", qty=2, payment="p3", vend_dispensed=1),
                order("o4", "expired"),
                order("o5", "flagged", payment="p5")],
        payments=[], refunds=[],
        hub_events=[event("o1"), event("o2"), event("o3"), event("o4", "order_cancelled"),
                    event("o5")],
        ledger={"payments": [pay("p1", "o1", ESPRESSO), pay("p2", "o2", ESPRESSO, "refunded"),
                             pay("p3", "o3", 2 * WATER), pay("p4", "o4", ESPRESSO, "refunded"),
                             pay("p5", "o5", ESPRESSO)],
                "refunds": [refund("p2", ESPRESSO), refund("p3", WATER),
                            refund("p4", ESPRESSO)]},
        purchases=[bought("o1", "vended", dispensed=1), bought("o2", "failed"),
                   bought("o3", "failed", qty=2, dispensed=1, amount=2 * WATER,
                          product="water"),
                   bought("o4", "expired", approved=False), bought("o5", "interrupted")],
        dispensed={"o1": 1, "o3": 1}, prices=PRICES,
        logs={"hub": "all quiet"}, secrets={"hub_secret": "s3cr3t-value-xyz"})


def kinds(s: Snapshot) -> set[str]:
    return {f.kind for f in check(s).findings}


def test_a_consistent_site_has_no_findings(clean: Snapshot) -> None:
    r = check(clean)
    assert r.findings == []
    assert (r.violations, r.lost_events, r.unterminated) == (0, 0, 0)
    assert (r.paid, r.fulfilled, r.refunded, r.flagged) == (4, 1, 3, 1)
    assert r.notes["partial_refunds"] == 1


def test_rule1_goods_without_payment(clean: Snapshot) -> None:
    clean.dispensed["o4"] = 1  # an expired, unpaid order dispensed
    assert "goods_without_payment" in kinds(clean)
    assert check(clean).violations >= 1


def test_rule1_approval_without_payment_even_if_nothing_dropped(clean: Snapshot) -> None:
    clean.purchases.append(bought("o4", "failed"))
    assert "approved_without_payment" in kinds(clean)


def test_rule1_approval_before_the_payment_was_recorded(clean: Snapshot) -> None:
    clean.orders[0]["paid_at"] = 1_900_000_001  # the board approved at 1_900_000_000.0
    assert kinds(clean) == {"approved_before_payment"}
    clean.orders[0]["paid_at"] = 1_900_000_000
    assert kinds(clean) == set()


def test_rule1_goods_for_a_payment_of_another_amount(clean: Snapshot) -> None:
    clean.ledger["payments"][0]["amount"] = ESPRESSO - 1
    assert {"goods_without_payment", "wrong_amount_accepted"} <= kinds(clean)


def test_rule2_money_kept_without_goods(clean: Snapshot) -> None:
    clean.ledger["refunds"].pop(0)  # the jam is never refunded
    assert kinds(clean) == {"money_without_goods"}


def test_rule2_partial_refund_must_match_what_really_left(clean: Snapshot) -> None:
    clean.dispensed["o3"] = 0  # the board says nothing left, the gateway kept half
    assert "money_without_goods" in kinds(clean)


def test_rule3_second_payment_kept(clean: Snapshot) -> None:
    clean.ledger["payments"].append(pay("p1b", "o1", ESPRESSO))
    assert kinds(clean) == {"money_without_goods"}


def test_rule4_double_dispense_and_over_dispense(clean: Snapshot) -> None:
    clean.purchases.append(bought("o1", "vended", dispensed=1))
    clean.dispensed["o1"] = 2
    assert {"double_dispense", "over_dispense"} <= kinds(clean)


def test_rule4_double_refund(clean: Snapshot) -> None:
    clean.ledger["refunds"].append(dict(refund("p2", ESPRESSO), id="rfnd_again"))
    assert "double_refund" in kinds(clean)


def test_rule2_fulfilled_and_refunded(clean: Snapshot) -> None:
    clean.ledger["refunds"].append(refund("p1", ESPRESSO))
    assert "fulfilled_and_refunded" in kinds(clean)


def test_rule5_price_not_from_the_catalog(clean: Snapshot) -> None:
    broken = copy.deepcopy(clean)
    broken.orders[0]["amount"] = 1
    assert "price" in kinds(broken)
    clean.purchases[0] = bought("o1", "vended", dispensed=1, amount=ESPRESSO + 100)
    assert "qr_amount" in kinds(clean)


def test_rule6_amounts_are_integers(clean: Snapshot) -> None:
    clean.ledger["refunds"][0]["amount"] = float(ESPRESSO)
    assert "non_integer_amount" in kinds(clean)


def test_rule7_approved_after_the_deadline(clean: Snapshot) -> None:
    clean.orders[0]["vend_deadline"] = 1_800_000_000
    assert "approved_after_deadline" in kinds(clean)


def test_refund_of_goods_that_left_the_machine(clean: Snapshot) -> None:
    clean.dispensed["o2"] = 1  # the board dropped the espresso, the gateway refunded it
    assert "refunded_goods" in kinds(clean) and check(clean).violations == 1
    clean.dispensed["o2"] = 0
    clean.dispensed["o3"] = 2  # both waters left, half refunded
    assert "refunded_goods" in kinds(clean)


def test_rule8_unterminated(clean: Snapshot) -> None:
    clean.orders.append(order("o6", "payment_pending"))
    r = check(clean)
    assert r.unterminated == 1 and r.violations == 0


def test_rule9_lost_events(clean: Snapshot) -> None:
    clean.hub_events = [e for e in clean.hub_events if e["order_id"] != "o2"]
    clean.outbox_left = 2
    r = check(clean)
    assert r.lost_events == 3
    assert {"lost_event", "outbox_left"} == kinds(clean)


def test_rule15_secret_in_a_log(clean: Snapshot) -> None:
    clean.logs["gateway"] = "token for hub1: s3cr3t-value-xyz"
    assert kinds(clean) == {"secret_in_log"}


def test_last_line_shape(clean: Snapshot) -> None:
    line = check(clean).line(faults=7)
    assert line.startswith("chaos purchases=")
    assert [kv.split("=")[0] for kv in line.split()[1:]] == [
        "purchases", "faults", "paid", "fulfilled", "refunded", "flagged", "violations",
        "lost_events", "unterminated"]
