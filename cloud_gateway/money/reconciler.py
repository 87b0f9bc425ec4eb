"""The reconciler: a background pass every `reconcile_interval_s` that makes money add up.

Each pass (`run_once`, also the first thing after start):
1. acts on inbox events that were stored but never processed (crash recovery);
2. re-decides captured payments still undecided, and refunds failed orders that have none yet;
3. polls Razorpay (`qrcode.fetch_all_payments`) for every open QR and for every QR whose
   `close_by` is less than `late_window_s` ago whatever its order's state, so a lost webhook
   loses no sale and a late or second payment is still refunded;
4. expires orders whose QR passed `close_by`: closes the QR, polls it one last time, then
   payment_pending -> expired with an order_cancelled command to the hub, in one transaction;
   orders that never got a QR expire `created_ttl_s` (the QR lifetime) after creation;
5. retries refunds that failed or whose outcome is unknown (same idempotency key), and reads
   the state of refunds left pending longer than `pending_check_s`;
6. flags paid orders whose vend outcome is still unknown `unknown_outcome_deadline_s` after
   payment: -> flagged with an ALERT log line (INVARIANTS rule 2). Never refunds them (rule 7).

One failing step is logged and does not stop the others; the loop survives any error but
cancellation.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final

from protocol.hub_api import CancelReasonName, OrderState

from ..db import Database
from ..errors import InvalidTransition
from ..orders.service import OrderService
from ..razorpay_client import RazorpayClient, RazorpayError
from .inbox import Inbox
from .payments import MalformedEvent, PaymentLedger
from .refunds import Refunds, RefundTransitionError

log = logging.getLogger(__name__)

WHO: Final = "gateway:reconciler"
ALERT: Final = "ALERT"


@dataclass
class PassReport:
    recovered: int = 0
    polled: int = 0
    payments_seen: int = 0
    expired: int = 0
    refunds_tried: int = 0
    flagged: int = 0
    errors: list[str] = field(default_factory=list)


class Reconciler:
    def __init__(self, db: Database, orders: OrderService, razorpay: RazorpayClient,
                 ledger: PaymentLedger, refunds: Refunds, inbox: Inbox, *,
                 interval_s: float, unknown_outcome_deadline_s: float,
                 created_ttl_s: float = 900.0, late_window_s: float = 7200.0,
                 pending_check_s: float = 3600.0,
                 clock: Callable[[], float] = time.time) -> None:
        self._db = db
        self._orders = orders
        self._razorpay = razorpay
        self._ledger = ledger
        self._refunds = refunds
        self._inbox = inbox
        self._interval_s = interval_s
        self._unknown_deadline_s = unknown_outcome_deadline_s
        self._created_ttl_s = created_ttl_s
        self._late_window_s = late_window_s
        self._pending_check_s = pending_check_s
        self._clock = clock
        self.passes = 0

    async def run_forever(self) -> None:
        while True:
            try:
                report = await self.run_once()
                if report.errors:
                    log.warning("reconciler pass had errors: %s", "; ".join(report.errors[:5]))
            except Exception:  # keep the money loop alive; the next pass retries
                log.exception("reconciler pass failed")
            await asyncio.sleep(self._interval_s)

    async def run_once(self) -> PassReport:
        report = PassReport()
        steps = (self._recover, self._redecide, self._poll_and_expire, self._retry_refunds,
                 self._flag_unknown)
        for step in steps:
            try:
                await step(report)
            except RazorpayError as exc:
                report.errors.append(f"{step.__name__}: {exc}")
            except Exception as exc:  # a bug in one step must not starve the others
                log.exception("reconciler step %s failed", step.__name__)
                report.errors.append(f"{step.__name__}: {type(exc).__name__}: {exc}")
        self.passes += 1
        return report

    # --- steps --------------------------------------------------------------------------------
    async def _recover(self, report: PassReport) -> None:
        report.recovered = await self._inbox.recover()

    async def _redecide(self, report: PassReport) -> None:
        for row in self._ledger.undecided():
            await self._apply(json.loads(row["entity"]), "reconciler", row["qr_id"])
        rows = self._db.query(
            "SELECT o.order_id FROM orders o LEFT JOIN refunds r ON r.payment_id = o.payment_id "
            "WHERE o.state IN (?, ?) AND o.payment_id IS NOT NULL AND r.id IS NULL "
            "AND COALESCE(o.vend_dispensed, 0) < o.quantity",
            (str(OrderState.FAILED), str(OrderState.REFUND_PENDING)))
        for r in rows:
            try:
                await self._refund_order(r["order_id"])
            except InvalidTransition as exc:
                report.errors.append(exc.message)

    async def _apply(self, entity: object, source: str, qr_id: str | None) -> str:
        return await self._db.write(lambda tx: self._ledger.apply_tx(tx, entity, source, qr_id))

    async def _refund_order(self, order_id: str) -> bool:
        return await self._db.write(lambda tx: self._refunds.refund_order_tx(tx, order_id))

    async def _poll_qr(self, report: PassReport, qr_id: str) -> None:
        payments = await self._razorpay.qr_payments(qr_id)
        report.polled += 1
        for payment in payments:
            report.payments_seen += 1
            try:
                outcome = await self._apply(payment, "poll", qr_id)
            except MalformedEvent as exc:
                report.errors.append(str(exc))
                continue
            if outcome not in ("duplicate_effect",):
                log.info("polled payment: %s", outcome,
                         extra={"qr_id": qr_id, "payment_id": payment.get("id")})

    async def _poll_and_expire(self, report: PassReport) -> None:
        now = self._clock()
        open_orders = self._db.query(
            "SELECT order_id, qr_id, close_by FROM orders WHERE state = ? AND qr_id IS NOT NULL",
            (str(OrderState.PAYMENT_PENDING),))
        # (read first: an order this pass pays or expires was just polled)
        # QRs no longer waiting but recently alive: a late payment (order expired or
        # cancelled) or a second one (order paid) may land on them; their webhooks may be lost
        recent = self._db.query(
            "SELECT order_id, qr_id FROM orders WHERE state != ? AND qr_id IS NOT NULL "
            "AND close_by >= ?",
            (str(OrderState.PAYMENT_PENDING), int(now - self._late_window_s)))
        for order in open_orders:
            try:
                await self._poll_qr(report, order["qr_id"])
            except RazorpayError as exc:  # polled again next pass; expiry does not wait
                report.errors.append(f"{order['order_id']}: {exc}")
            if order["close_by"] is not None and order["close_by"] <= now:
                await self._expire(report, order["order_id"], order["qr_id"])
        stale = self._db.query(  # never got a QR (pay failed or never asked): nobody can pay
            "SELECT order_id FROM orders WHERE state = ? AND created_at <= ?",
            (str(OrderState.CREATED), int(now - self._created_ttl_s)))
        for order in stale:
            try:
                await self._expire_unpaid(order["order_id"], "no QR was created in time")
            except InvalidTransition:
                continue
            report.expired += 1
        for order in recent:
            try:
                await self._poll_qr(report, order["qr_id"])
            except RazorpayError as exc:
                report.errors.append(f"{order['order_id']}: {exc}")

    async def _expire_unpaid(self, order_id: str, why: str) -> None:
        await self._db.write(lambda tx: self._ledger.cancel_order_tx(
            tx, order_id, CancelReasonName.EXPIRED, why))

    async def _expire(self, report: PassReport, order_id: str, qr_id: str) -> None:
        try:
            await self._razorpay.close_qr(qr_id)
        except RazorpayError as exc:  # already closed (paid, expired): fine; else poll decides
            log.info("QR close at expiry: %s", exc.message, extra={"qr_id": qr_id})
        try:
            await self._poll_qr(report, qr_id)  # a payment that landed just before the close
        except RazorpayError as exc:
            # expire anyway: a payment that did land is found by polling the recently
            # expired QRs and refunded; the board stopped showing the QR at close_by
            report.errors.append(f"{order_id}: last poll before expiry: {exc}")
        try:
            await self._expire_unpaid(order_id, "QR expired unpaid")
        except InvalidTransition:
            return  # paid (or cancelled) meanwhile
        report.expired += 1

    async def _retry_refunds(self, report: PassReport) -> None:
        now = self._clock()
        for payment_id in self._refunds.due(now):
            report.refunds_tried += 1
            try:
                await self._refunds.attempt(payment_id)
            except RefundTransitionError as exc:  # a webhook moved it meanwhile
                report.errors.append(str(exc))
        for payment_id in self._refunds.stale_pending(now - self._pending_check_s):
            await self._refunds.sync_pending(payment_id)

    async def _flag_unknown(self, report: PassReport) -> None:
        cutoff = int(self._clock() - self._unknown_deadline_s)
        rows = self._db.query(
            "SELECT order_id, payment_id, amount, paid_at, state FROM orders "
            "WHERE state IN (?, ?) AND paid_at IS NOT NULL AND paid_at <= ?",
            (str(OrderState.PAID), str(OrderState.DISPENSING), cutoff))
        for r in rows:
            try:
                await self._orders.transition(
                    r["order_id"], OrderState.FLAGGED, WHO,
                    f"vend outcome unknown {self._unknown_deadline_s:.0f} s after payment",
                    expect_from={OrderState.PAID, OrderState.DISPENSING})
            except InvalidTransition:
                continue  # the hub reported meanwhile
            report.flagged += 1
            log.error("%s order %s paid (payment %s, %d paise) but its vend outcome is unknown "
                      "past the deadline; an operator must decide: fulfilled or refund",
                      ALERT, r["order_id"], r["payment_id"], r["amount"],
                      extra={"order_id": r["order_id"], "payment_id": r["payment_id"]})


__all__ = ["PassReport", "Reconciler"]
