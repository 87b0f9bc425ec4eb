"""The money check: every rule of INVARIANTS.md that data can show, over three independent records.

* the gateway's database (orders, payments, refunds, hub events): what the product believes;
* the sandbox's ledger (``GET /_sim/ledger``): what Razorpay actually holds;
* each simulated board's purchases and dispense ledger: what physically left the machines.

``check(snapshot)`` is pure: it takes a ``Snapshot`` of plain data (``snapshot_site`` builds one
from a running ``LocalSite``) and returns a ``Report`` whose ``findings`` name the rule, the kind
of breach, the order and what was seen. Counted as **violations** (the issue's definition): goods
without a captured payment of exactly the order's amount (rule 1), a captured payment neither
attached to a fulfilled order, refunded in full (or, for a vend that failed part-way, refunded
exactly the units that did not leave the machine, by the boards' own count), nor flagged (rules
2, 3), a double dispense or a
double refund (rule 4); and also a wrong price (5), a non-integer amount (6), an approval after
the vend deadline (7), more refunded than the units that did not leave the machine (goods
kept for money returned: rules 1 and 3, by the boards' own count), a secret in a log (15).
**lost_events**: a vend outcome a board reported (or kept in flash) with no vend result at the
gateway, and events still in the hub's outbox at the end (rule 9). **unterminated**: gateway
orders not in a final state (rule 8).
"""

from __future__ import annotations

import json
import tomllib
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from protocol.hub_api import FINAL_ORDER_STATES, OrderState

CAPTURED = frozenset({"captured", "refunded"})  # Razorpay statuses of money that was taken
REFUND_TAKEN = frozenset({"processed", "pending", "created"})  # not "failed"
DEADLINE_SLACK_S = 1.5  # deadlines travel as whole seconds (vend_deadline_in_s)
# board purchase states in which the board itself sent (or kept in flash) a vend outcome
REPORTED = frozenset({"vended", "failed", "not_started", "interrupted"})

VIOLATION_KINDS = frozenset({
    "goods_without_payment", "approved_without_payment", "approved_before_payment",
    "money_without_goods",
    "double_dispense", "over_dispense", "double_refund", "wrong_amount_accepted",
    "fulfilled_and_refunded", "price", "qr_amount", "non_integer_amount",
    "approved_after_deadline", "refunded_goods", "secret_in_log",
})


@dataclass(frozen=True)
class BoardPurchase:
    board: str
    order_ref: str | None
    state: str  # edge_hub.simboard.PurchaseState value
    product: str
    options: tuple[str, ...]
    quantity: int
    approved_quantity: int | None
    dispensed: int
    outcome: int  # protocol.VendOutcome value the board reported (or flash kept)
    qr_amount: int | None
    approved_wall: float | None  # Unix time of VEND_APPROVED accepted


@dataclass
class Snapshot:
    orders: list[dict[str, Any]]  # gateway `orders` rows
    payments: list[dict[str, Any]]  # gateway `payments` rows
    refunds: list[dict[str, Any]]  # gateway `refunds` rows
    hub_events: list[dict[str, Any]]  # gateway `hub_events` rows
    ledger: dict[str, list[dict[str, Any]]]  # sandbox {"payments": [...], "refunds": [...]}
    purchases: list[BoardPurchase]
    dispensed: dict[str, int]  # order_ref -> items that left a machine (all boards' ledgers)
    prices: Mapping[tuple[str, str], int]  # (product, option or "") -> paise at the site
    outbox_left: int = 0  # hub outbox rows (not telemetry) never acknowledged
    logs: dict[str, str] = field(default_factory=dict)  # process name -> its log text
    secrets: dict[str, str] = field(default_factory=dict)  # secret name -> value


@dataclass(frozen=True)
class Finding:
    rule: int
    kind: str
    order_id: str | None
    detail: str

    def __str__(self) -> str:
        return f"rule {self.rule} {self.kind} order={self.order_id or '-'}: {self.detail}"


@dataclass
class Report:
    purchases: int = 0
    paid: int = 0
    fulfilled: int = 0
    refunded: int = 0
    flagged: int = 0
    violations: int = 0
    lost_events: int = 0
    unterminated: int = 0
    findings: list[Finding] = field(default_factory=list)
    notes: Counter[str] = field(default_factory=Counter)

    def add(self, rule: int, kind: str, order_id: str | None, detail: str) -> None:
        self.findings.append(Finding(rule, kind, order_id, detail))
        if kind in VIOLATION_KINDS:
            self.violations += 1
        elif kind in ("lost_event", "outbox_left"):
            self.lost_events += 1
        elif kind == "unterminated":
            self.unterminated += 1

    def line(self, faults: int) -> str:
        return (f"chaos purchases={self.purchases} faults={faults} paid={self.paid} "
                f"fulfilled={self.fulfilled} refunded={self.refunded} flagged={self.flagged} "
                f"violations={self.violations} lost_events={self.lost_events} "
                f"unterminated={self.unterminated}")


def site_prices(catalog: Path, site: str) -> dict[tuple[str, str], int]:
    """Prices at ``site`` straight from the catalog file (an oracle independent of the gateway)."""
    data = tomllib.loads(catalog.read_text())
    prices: dict[tuple[str, str], int] = {}
    for p in data.get("products", []):
        prices[(p["code"], "")] = p["price"]
        for o in p.get("options", []):
            prices[(p["code"], o["code"])] = o["price"]
    for o in data.get("overrides", []):
        if o.get("site") == site and "price" in o:
            prices[(o["product"], o.get("option", ""))] = o["price"]
    return prices


def expected_amount(prices: Mapping[tuple[str, str], int], product: str,
                    options: Iterable[str], quantity: int) -> int | None:
    try:
        return (prices[(product, "")] + sum(prices[(product, o)] for o in options)) * quantity
    except KeyError:
        return None


def _is_int(v: object) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def check(s: Snapshot) -> Report:
    r = Report()
    orders = {o["order_id"]: o for o in s.orders}
    by_qr = {o["qr_id"]: o for o in s.orders if o.get("qr_id")}
    captured = [p for p in s.ledger.get("payments", []) if p.get("status") in CAPTURED]
    captured_by_order: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for p in captured:
        o = by_qr.get(p.get("qr_code_id"))
        if o is not None:
            captured_by_order[o["order_id"]].append(p)
    refunds_of: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for f in s.ledger.get("refunds", []):
        if f.get("status") in REFUND_TAKEN:
            refunds_of[f["payment_id"]].append(f)
    vend_results = {e["order_id"] for e in s.hub_events
                    if e["type"] == "vend_result" and e["status"] != "rejected"}

    r.purchases = len(s.purchases)
    r.paid = sum(1 for o in s.orders if o.get("payment_id"))
    r.fulfilled = sum(1 for o in s.orders if o["state"] == OrderState.FULFILLED)
    r.flagged = sum(1 for o in s.orders if o["state"] == OrderState.FLAGGED)

    # rule 6: integers in paise, everywhere
    for where, rows in (("order", s.orders), ("payment", s.ledger.get("payments", [])),
                        ("refund", s.ledger.get("refunds", [])), ("gateway refund", s.refunds)):
        for row in rows:
            if not _is_int(row.get("amount")):
                r.add(6, "non_integer_amount", row.get("order_id"),
                      f"{where} amount {row.get('amount')!r}")

    # rule 5: the amount is the catalog's, and the board showed that amount
    for o in s.orders:
        want = expected_amount(s.prices, o["product"], json.loads(o["options"]), o["quantity"])
        if want != o["amount"]:
            r.add(5, "price", o["order_id"], f"amount {o['amount']}, catalog says {want}")
    for bp in s.purchases:
        o = orders.get(bp.order_ref or "")
        if o is not None and bp.qr_amount is not None and bp.qr_amount != o["amount"]:
            r.add(5, "qr_amount", o["order_id"],
                  f"{bp.board} showed {bp.qr_amount}, order is {o['amount']}")

    # rules 1 and 4: no goods without money; each order dispensed at most once
    def paid_exactly(order_id: str) -> bool:
        o = orders.get(order_id)
        if o is None or not o.get("payment_id"):
            return False
        return any(p["id"] == o["payment_id"] and p["amount"] == o["amount"]
                   and p["currency"] == o["currency"] for p in captured_by_order[order_id])

    for ref, n in s.dispensed.items():
        if n > 0 and not paid_exactly(ref):
            r.add(1, "goods_without_payment", ref, f"{n} item(s) left with no captured payment")
        o = orders.get(ref)
        if o is not None and n > o["quantity"]:
            r.add(4, "over_dispense", ref, f"{n} items for a quantity of {o['quantity']}")
    approvals = Counter(bp.order_ref for bp in s.purchases
                        if bp.order_ref and bp.approved_quantity is not None)
    for ref, n in approvals.items():
        if n > 1:
            r.add(4, "double_dispense", ref, f"approved {n} times")
        if not paid_exactly(ref):
            r.add(1, "approved_without_payment", ref, "vend approved without a captured payment")
    for bp in s.purchases:  # ... and only after it was recorded (paid_at is whole seconds)
        o = orders.get(bp.order_ref or "")
        if o is not None and bp.approved_wall is not None and o.get("paid_at") is not None \
                and bp.approved_wall < o["paid_at"]:
            r.add(1, "approved_before_payment", o["order_id"],
                  f"approved {o['paid_at'] - bp.approved_wall:.2f} s before paid_at")

    # rule 7: never approved after the vend deadline
    for bp in s.purchases:
        o = orders.get(bp.order_ref or "")
        if o is None or bp.approved_wall is None or o.get("vend_deadline") is None:
            continue
        if bp.approved_wall > o["vend_deadline"] + DEADLINE_SLACK_S:
            r.add(7, "approved_after_deadline", o["order_id"],
                  f"approved {bp.approved_wall - o['vend_deadline']:.1f} s after the deadline")

    # rules 2, 3 and 4: every captured payment ends in exactly one place; refunds at most once
    for p in captured:
        pid, amount = p["id"], p["amount"]
        refs = refunds_of.get(pid, [])
        refunded = sum(f["amount"] for f in refs)
        o = by_qr.get(p.get("qr_code_id"))
        oid = o["order_id"] if o else None
        if len(refs) > 1 or refunded > amount:
            r.add(4, "double_refund", oid, f"payment {pid}: {len(refs)} refunds of {refunded}")
        attached = o is not None and o.get("payment_id") == pid
        if attached and amount != o["amount"]:
            r.add(3, "wrong_amount_accepted", oid, f"payment {pid} of {amount} for {o['amount']}")
        dropped = s.dispensed.get(oid or "", 0)
        if attached and dropped > 0 and refunded > amount - amount * dropped // o["quantity"]:
            r.add(1, "refunded_goods", oid, f"payment {pid}: {refunded} of {amount} refunded "
                  f"though {dropped} of {o['quantity']} item(s) left the machine")
        full = refunded == amount
        # a vend that failed part-way: the gateway refunds the units that did not leave the
        # machine (refunds.refund_order_tx); settled only if that matches what really left
        partial = (attached and 0 < refunded < amount and o["state"] == OrderState.REFUNDED
                   and refunded == amount - amount * s.dispensed.get(oid or "", 0)
                   // o["quantity"])
        if full or partial:
            r.refunded += 1
            r.notes["partial_refunds"] += int(partial)
            if attached and o["state"] == OrderState.FULFILLED:
                r.add(2, "fulfilled_and_refunded", oid, f"payment {pid}")
        elif not (attached and o["state"] in (OrderState.FULFILLED, OrderState.FLAGGED)):
            state = o["state"] if o else "no order"
            r.add(2, "money_without_goods", oid,
                  f"payment {pid} of {amount} ({state}, attached={attached}) "
                  f"refunded {refunded}")

    # rules 7, 8 and 9: what the boards know reached the gateway, and nothing is left open
    for bp in s.purchases:
        if not bp.order_ref or bp.state not in REPORTED:
            continue
        o = orders.get(bp.order_ref)
        if bp.state == "interrupted" and bp.approved_quantity is None:
            continue
        if bp.order_ref not in vend_results:
            r.add(9, "lost_event", bp.order_ref,
                  f"{bp.board} ended {bp.state} (outcome {bp.outcome}); gateway has no result")
        if o is not None and o["state"] == OrderState.FLAGGED:
            r.notes["flagged_though_board_knew"] += 1
        if o is not None and o.get("vend_dispensed") is not None and \
                o["vend_dispensed"] != s.dispensed.get(bp.order_ref, 0):
            r.notes["dispensed_count_differs"] += 1  # a note, not a violation: listed below
            r.findings.append(Finding(9, "note_dispensed_differs", bp.order_ref,
                                      f"{bp.board} dropped {s.dispensed.get(bp.order_ref, 0)}"
                                      f" ({bp.state}), gateway recorded {o['vend_dispensed']}"
                                      f" ({o['state']})"))
    if s.outbox_left:
        for _ in range(s.outbox_left):
            r.add(9, "outbox_left", None, "hub outbox row never acknowledged")
    for o in s.orders:
        if o["state"] not in FINAL_ORDER_STATES:
            r.add(8, "unterminated", o["order_id"], f"still {o['state']}")

    # rule 15: no secret in any log
    for name, text in s.logs.items():
        for secret_name, value in s.secrets.items():
            if value and len(value) >= 8 and value in text:
                r.add(15, "secret_in_log", None, f"{secret_name} appears in the {name} log")
    return r
