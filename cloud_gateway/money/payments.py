"""The payment ledger: what a Razorpay payment means for our orders, decided once per payment.

Webhooks (`qr_code.credited`, `payment.*`, `order.paid`) and the reconciler's polling all call
`PaymentLedger.apply_tx(tx, entity, source, qr_id=None)` inside a write unit, so the same payment
arriving three ways has one effect:

* the `payments` row (`UNIQUE(payment_id)`) keeps the most advanced status seen, forward only
  (`created < failed < authorized < captured < refunded`; `payment.failed` is not final, and a
  late `failed` after `captured` is recorded and ignored);
* the first time a payment is seen **captured** its `disposition` is decided, once
  (`UPDATE ... WHERE disposition IS NULL`):

  - order payment_pending, amount and currency match -> ``applied``: paid and a
    payment_confirmed command (rule 1);
  - amount or currency differs -> ``refund_amount_mismatch``: refund; a waiting order is
    cancelled (its single-use QR is spent) and its hub told;
  - order expired or cancelled, or the payment's own `created_at` is past the QR's
    `close_by` -> ``refund_late``: refund (a still waiting order is expired, its hub told);
  - order already paid by another payment -> ``refund_duplicate``: refund;
  - no order of ours -> ``unmatched``: an ALERT for an operator;
  - order still ``created`` (the QR answer is not committed yet) -> undecided; the next poll
    decides.

Only a captured payment counts (INVARIANTS "who decides"); authorised or failed ones change
nothing but their row.
"""

from __future__ import annotations

import json
import logging
import re
import sqlite3
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from protocol.hub_api import CancelReasonName, CommandType, OrderState

from ..commands import CommandQueue
from ..db import Database, Tx
from ..orders.service import OrderService
from .refunds import RefundReason, Refunds

log = logging.getLogger(__name__)

WHO: Final = "razorpay"
ALERT: Final = "ALERT"
STATUS_RANK: Final = {"created": 0, "failed": 1, "authorized": 2, "captured": 3, "refunded": 4}
_PAYMENT_ID_RE = re.compile(r"^pay_[A-Za-z0-9]{1,40}$")
_LATE_STATES: Final = frozenset({OrderState.EXPIRED, OrderState.CANCELLED})


class MalformedEvent(ValueError):
    """An event or entity without the fields we need (stored, answered 200, not acted on)."""


@dataclass(frozen=True)
class PaymentEntity:
    payment_id: str
    amount: int
    currency: str
    status: str
    method: str | None
    vpa: str | None
    order_ref: str | None  # our order id from the notes copied off the QR
    raw: Mapping[str, Any]

    @classmethod
    def parse(cls, entity: object) -> PaymentEntity:
        if not isinstance(entity, dict):
            raise MalformedEvent("payment entity is not an object")
        pid, amount = entity.get("id"), entity.get("amount")
        currency, status = entity.get("currency"), entity.get("status")
        if not isinstance(pid, str) or not _PAYMENT_ID_RE.match(pid):
            raise MalformedEvent(f"payment id {pid!r} is not a Razorpay payment id")
        if isinstance(amount, bool) or not isinstance(amount, int) or amount < 0:
            raise MalformedEvent(f"payment {pid}: amount must be an int of paise")
        if not isinstance(currency, str) or status not in STATUS_RANK:
            raise MalformedEvent(f"payment {pid}: bad currency or status {status!r}")
        notes = entity.get("notes")
        ref = notes.get("order_id") if isinstance(notes, dict) else None
        method, vpa = entity.get("method"), entity.get("vpa")
        return cls(pid, amount, currency, str(status),
                   method if isinstance(method, str) else None,
                   vpa if isinstance(vpa, str) else None,
                   ref if isinstance(ref, str) else None, entity)


class PaymentLedger:
    def __init__(self, db: Database, orders: OrderService, commands: CommandQueue,
                 refunds: Refunds) -> None:
        self._db = db
        self._orders = orders
        self._commands = commands
        self._refunds = refunds

    def apply_tx(self, tx: Tx, entity: object, source: str, qr_id: str | None = None) -> str:
        """Record one sighting of a payment; returns the outcome (for logs and metrics)."""
        p = PaymentEntity.parse(entity)
        order = self._find_order(tx, p, qr_id)
        order_id = order["order_id"] if order is not None else None
        row = tx.one("SELECT status, disposition, order_id FROM payments WHERE payment_id = ?",
                     (p.payment_id,))
        now = int(tx.now)
        if row is None:
            tx.execute(
                "INSERT INTO payments (payment_id, order_id, qr_id, amount, currency, status, "
                "method, vpa, source, entity, created_at, updated_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (p.payment_id, order_id, qr_id, p.amount, p.currency, p.status, p.method, p.vpa,
                 source, json.dumps(dict(p.raw)), now, now))
            status, disposition = p.status, None
        else:
            status, disposition = row["status"], row["disposition"]
            if STATUS_RANK[p.status] > STATUS_RANK[status]:
                tx.execute("UPDATE payments SET status = ?, entity = ?, updated_at = ?, "
                           "order_id = COALESCE(order_id, ?), qr_id = COALESCE(qr_id, ?) "
                           "WHERE payment_id = ?",
                           (p.status, json.dumps(dict(p.raw)), now, order_id, qr_id,
                            p.payment_id))
                status = p.status
            elif STATUS_RANK[p.status] < STATUS_RANK[status]:
                log.info("stale payment status ignored (%s after %s)", p.status, status,
                         extra={"payment_id": p.payment_id, "source": source})
        if disposition is not None:
            return "duplicate_effect"
        if STATUS_RANK[status] < STATUS_RANK["captured"]:
            return f"payment_{status}"  # nothing counts before capture
        return self._decide_tx(tx, p, order)

    def _find_order(self, tx: Tx, p: PaymentEntity, qr_id: str | None) -> sqlite3.Row | None:
        if qr_id is not None:
            row = tx.one("SELECT * FROM orders WHERE qr_id = ?", (qr_id,))
            if row is not None:
                return row
        if p.order_ref is not None:
            return tx.one("SELECT * FROM orders WHERE order_id = ?", (p.order_ref,))
        stored = tx.one("SELECT order_id FROM payments WHERE payment_id = ?", (p.payment_id,))
        if stored is not None and stored["order_id"] is not None:
            return tx.one("SELECT * FROM orders WHERE order_id = ?", (stored["order_id"],))
        return None

    def _set_disposition_tx(self, tx: Tx, payment_id: str, disposition: str) -> None:
        cur = tx.execute("UPDATE payments SET disposition = ?, updated_at = ? "
                         "WHERE payment_id = ? AND disposition IS NULL",
                         (disposition, int(tx.now), payment_id))
        if cur.rowcount != 1:
            raise RuntimeError(f"payment {payment_id} was decided twice")  # one writer: a bug

    def _decide_tx(self, tx: Tx, p: PaymentEntity, order: sqlite3.Row | None) -> str:
        extra = {"payment_id": p.payment_id, "amount": p.amount}
        if order is None:
            self._set_disposition_tx(tx, p.payment_id, "unmatched")
            log.error("%s captured payment %s matches no order; an operator must settle it",
                      ALERT, p.payment_id, extra=extra)
            return "unmatched"
        order_id, state = order["order_id"], order["state"]
        extra["order_id"] = order_id
        if state == OrderState.CREATED:
            log.info("payment before the order's QR was recorded; deciding later", extra=extra)
            return "deferred"
        if p.amount != order["amount"] or p.currency != order["currency"]:
            return self._refund_tx(tx, p, order_id, RefundReason.AMOUNT_MISMATCH, state)
        if state == OrderState.PAYMENT_PENDING and self._after_close(p, order):
            # the QR should have been closed (Razorpay closes it at close_by): a late payment
            self.cancel_order_tx(tx, order_id, CancelReasonName.EXPIRED,
                                 f"payment {p.payment_id} arrived after close_by")
            return self._refund_tx(tx, p, order_id, RefundReason.LATE, OrderState.EXPIRED)
        if state == OrderState.PAYMENT_PENDING:
            self._set_disposition_tx(tx, p.payment_id, "applied")
            self._orders.mark_paid_tx(tx, order_id, p.payment_id, p.amount, p.currency, WHO,
                                      f"payment {p.payment_id} captured")
            return "applied"
        if state in _LATE_STATES:
            return self._refund_tx(tx, p, order_id, RefundReason.LATE, state)
        if order["payment_id"] == p.payment_id:  # already ours (decided under an older row)
            self._set_disposition_tx(tx, p.payment_id, "applied")
            return "duplicate_effect"
        return self._refund_tx(tx, p, order_id, RefundReason.DUPLICATE, state)

    @staticmethod
    def _after_close(p: PaymentEntity, order: sqlite3.Row) -> bool:
        """Razorpay's own time of the payment is past the QR's close_by."""
        created = p.raw.get("created_at")
        close_by = order["close_by"]
        return (isinstance(created, int) and not isinstance(created, bool)
                and close_by is not None and created > close_by)

    def _refund_tx(self, tx: Tx, p: PaymentEntity, order_id: str, reason: RefundReason,
                   state: str) -> str:
        self._set_disposition_tx(tx, p.payment_id, f"refund_{reason}")
        log.warning("payment %s will be refunded: %s (order %s is %s)", p.payment_id, reason,
                    order_id, state, extra={"payment_id": p.payment_id, "order_id": order_id})
        if p.amount > 0:
            self._refunds.create_tx(tx, p.payment_id, order_id, p.amount, reason)
        if reason == RefundReason.AMOUNT_MISMATCH and state == OrderState.PAYMENT_PENDING:
            # the single-use QR is spent: nobody can pay this order any more; free the board
            self.cancel_order_tx(tx, order_id, CancelReasonName.PAYMENT_FAILED,
                                 f"payment {p.payment_id} of {p.amount} {p.currency} does not "
                                 "match the order")
        return f"refund_{reason}"

    def cancel_order_tx(self, tx: Tx, order_id: str, reason: CancelReasonName,
                        why: str) -> None:
        """Cancel (or expire) a waiting order and tell its hub, in one transaction."""
        row = tx.one("SELECT hub_id, board_uid FROM orders WHERE order_id = ?", (order_id,))
        if row is None:
            return
        to = OrderState.EXPIRED if reason == CancelReasonName.EXPIRED else OrderState.CANCELLED
        self._orders.transition_tx(tx, order_id, to, WHO if to == OrderState.CANCELLED
                                   else "gateway:reconciler", why,
                                   {OrderState.CREATED, OrderState.PAYMENT_PENDING},
                                   {"closed_reason": str(reason)})
        self._commands.enqueue_tx(tx, row["hub_id"], CommandType.ORDER_CANCELLED, order_id,
                                  row["board_uid"], {"reason": str(reason)})

    def undecided(self) -> list[sqlite3.Row]:
        """Captured payments still waiting for a decision (for the reconciler)."""
        return self._db.query("SELECT payment_id, qr_id, entity FROM payments "
                        "WHERE disposition IS NULL AND status IN ('captured', 'refunded')")


__all__ = ["STATUS_RANK", "MalformedEvent", "PaymentEntity", "PaymentLedger"]
