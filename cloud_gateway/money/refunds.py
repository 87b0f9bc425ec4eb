"""Automatic refunds: one refund per payment, asked of Razorpay with a derived idempotency key.

Other modules call:
* `Refunds.create_tx(tx, payment_id, order_id, amount, reason)` inside their write unit (the
  payment ledger, for late, duplicate and wrong-amount payments); the row is the promise, the
  Razorpay call follows after the commit. `UNIQUE(payment_id)` makes a second call a no-op;
* `Refunds.refund_order_tx(tx, order_id)` for a failed vend (order failed -> refund_pending);
* `Refunds.on_order_transition` is an `OrderService` hook (failed orders are refunded);
* `Refunds.on_refund_entity_tx(tx, entity)` for refund.* webhooks;
* `Refunds.attempt(payment_id)` (also called by the reconciler for due rows) and `due(now)`.

Refund states (one table, `TRANSITIONS`):

    queued  -> pending | processed | failed | unknown | refused
    unknown -> pending | processed | failed | refused     (retried with the SAME key)
    pending -> processed | failed                          (Razorpay has it; webhooks finish it)
    failed  -> queued | pending | processed                (next key generation, or a refund
                                                            Razorpay still holds settles it)
    processed, refused: final (refused raises an ALERT for an operator)

The idempotency key is `rfnd-<payment_id>-<generation>`: derived from our payment record, stored
on the refund row, and the same on every retry of one generation (INVARIANTS rule 4). A new
generation starts only after Razorpay itself reported the refund as failed. After any error the
payment's refunds are listed before deciding, so a refund that went through is adopted, never
requested twice.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
from collections.abc import Callable, Coroutine, Mapping
from enum import StrEnum
from typing import Any, Final

from protocol.hub_api import OrderState

from ..db import Database, Tx
from ..errors import InvalidTransition
from ..metrics import Metrics
from ..orders.service import OrderService
from ..razorpay_client import RazorpayClient, RazorpayError

log = logging.getLogger(__name__)

WHO: Final = "gateway:refunds"
ALERT: Final = "ALERT"


class RefundState(StrEnum):
    QUEUED = "queued"
    UNKNOWN = "unknown"
    PENDING = "pending"
    PROCESSED = "processed"
    FAILED = "failed"
    REFUSED = "refused"


class RefundReason(StrEnum):
    VEND_FAILED = "vend_failed"  # vend failed or never started
    LATE = "late"  # paid after the order expired or was cancelled
    DUPLICATE = "duplicate"  # a second payment for an order already paid
    AMOUNT_MISMATCH = "amount_mismatch"  # paid amount or currency differs from the order's


R = RefundState
TRANSITIONS: Final[Mapping[RefundState, frozenset[RefundState]]] = {
    R.QUEUED: frozenset({R.PENDING, R.PROCESSED, R.FAILED, R.UNKNOWN, R.REFUSED}),
    R.UNKNOWN: frozenset({R.PENDING, R.PROCESSED, R.FAILED, R.REFUSED}),
    R.PENDING: frozenset({R.PROCESSED, R.FAILED}),
    R.FAILED: frozenset({R.QUEUED, R.PENDING, R.PROCESSED}),
    R.PROCESSED: frozenset(),
    R.REFUSED: frozenset(),
}
RETRYABLE: Final = frozenset({R.QUEUED, R.UNKNOWN, R.FAILED})
_ENTITY_STATE: Final = {"pending": R.PENDING, "processed": R.PROCESSED, "failed": R.FAILED}


class RefundTransitionError(Exception):
    """A refund state change the table does not allow (or a lost race)."""


def refund_key(payment_id: str, generation: int) -> str:
    """The X-Refund-Idempotency key of one refund generation (>= 10 of [A-Za-z0-9_-])."""
    return f"rfnd-{payment_id}-{generation}"


def key_generation(key: str) -> int:
    return int(key.rsplit("-", 1)[1])


class Refunds:
    def __init__(self, db: Database, razorpay: RazorpayClient, orders: OrderService,
                 metrics: Metrics, clock: Callable[[], float] = time.time, *,
                 retry_base_s: float = 15.0, retry_max_s: float = 3600.0,
                 alert_after_attempts: int = 8) -> None:
        self._db = db
        self._razorpay = razorpay
        self._orders = orders
        self._metrics = metrics
        self._clock = clock
        self._retry_base_s = retry_base_s
        self._retry_max_s = retry_max_s
        self._alert_after = alert_after_attempts
        self._locks: dict[str, tuple[asyncio.Lock, int]] = {}  # lock, users
        self._tasks: set[asyncio.Task[None]] = set()
        self._closed = False

    # --- lifecycle ----------------------------------------------------------------------------
    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        if self._closed:
            coro.close()
            return
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def schedule(self, payment_id: str) -> None:
        """Attempt the refund of `payment_id` in the background (after a commit)."""
        self._spawn(self._attempt_logged(payment_id))

    async def idle(self) -> None:
        """Wait until no refund attempt is in flight (each is short: SDK timeouts)."""
        while self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    async def aclose(self) -> None:
        """Stop taking work; wait for attempts in flight."""
        self._closed = True
        await self.idle()

    # --- creating refunds ---------------------------------------------------------------------
    def create_tx(self, tx: Tx, payment_id: str, order_id: str | None, amount: int,
                  reason: RefundReason) -> bool:
        """Promise a refund of `amount` for `payment_id`; False if one was already promised."""
        if isinstance(amount, bool) or not isinstance(amount, int) or amount < 1:
            raise ValueError(f"refund amount must be a positive int of paise, got {amount!r}")
        cur = tx.execute(
            "INSERT INTO refunds (payment_id, order_id, amount, reason, idempotency_key, state, "
            "next_attempt_at, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (payment_id) DO NOTHING",
            (payment_id, order_id, amount, str(reason), refund_key(payment_id, 1),
             str(R.QUEUED), int(self._clock()), int(self._clock()), int(self._clock())))
        if cur.rowcount != 1:
            return False
        log.info("refund queued", extra={"payment_id": payment_id, "order_id": order_id,
                                         "amount": amount, "reason": str(reason)})
        tx.after_commit(lambda: self.schedule(payment_id))
        return True

    def refund_order_tx(self, tx: Tx, order_id: str) -> bool:
        """A failed vend: refund what was not dispensed and move the order to refund_pending."""
        row = tx.one("SELECT state, payment_id, amount, quantity, vend_dispensed FROM orders "
                     "WHERE order_id = ?", (order_id,))
        if row is None or row["payment_id"] is None:
            return False
        if row["state"] not in (OrderState.FAILED, OrderState.REFUND_PENDING):
            return False
        dispensed = row["vend_dispensed"] or 0
        # the price is unit price x quantity (catalog.price_order): refund the units not vended
        amount = row["amount"] - row["amount"] * dispensed // row["quantity"]
        if amount <= 0:  # "failed" yet every unit left the machine: nothing to give back
            log.error("%s order %s reported failed with all %d units dispensed; not refunded, "
                      "an operator must settle payment %s", ALERT, order_id, dispensed,
                      row["payment_id"], extra={"order_id": order_id})
            return False
        created = self.create_tx(tx, row["payment_id"], order_id, amount,
                                 RefundReason.VEND_FAILED)
        if row["state"] == OrderState.FAILED:
            self._orders.transition_tx(tx, order_id, OrderState.REFUND_PENDING, WHO,
                                       f"refund of {amount} queued", {OrderState.FAILED})
        return created

    def on_order_transition(self, order_id: str, from_state: OrderState,
                            to: OrderState) -> None:
        """OrderService hook: a failed vend (or an operator's refund decision) is refunded."""
        if to in (OrderState.FAILED, OrderState.REFUND_PENDING) and not self._closed:
            self._spawn(self._refund_order(order_id))

    async def _refund_order(self, order_id: str) -> None:
        try:
            await self._db.write(lambda tx: self.refund_order_tx(tx, order_id))
        except InvalidTransition as exc:  # another path moved it first: nothing to do
            log.info("order refund skipped: %s", exc.message, extra={"order_id": order_id})

    # --- state changes ------------------------------------------------------------------------
    def _move_tx(self, tx: Tx, payment_id: str, to: RefundState, **fields: object) -> bool:
        row = tx.one("SELECT state FROM refunds WHERE payment_id = ?", (payment_id,))
        if row is None:
            raise RefundTransitionError(f"no refund for payment {payment_id}")
        current = RefundState(row["state"])
        if to != current and to not in TRANSITIONS[current]:
            raise RefundTransitionError(f"refund of {payment_id} is {current}; cannot become {to}")
        sets: dict[str, object] = {"state": str(to), "updated_at": int(self._clock()), **fields}
        assignments = ", ".join(f"{name} = ?" for name in sets)
        cur = tx.execute(f"UPDATE refunds SET {assignments} WHERE payment_id = ? AND state = ?",
                         (*sets.values(), payment_id, str(current)))
        if cur.rowcount != 1:
            raise RefundTransitionError(f"refund of {payment_id} changed concurrently")
        if to != current:
            log.info("refund %s -> %s", current, to, extra={"payment_id": payment_id})
            tx.after_commit(lambda: self._metrics.inc("gateway_refunds_total",
                                                      {"result": str(to)}))
        if to == R.PROCESSED:
            self._finish_order_tx(tx, payment_id)
        return to != current

    def _finish_order_tx(self, tx: Tx, payment_id: str) -> None:
        row = tx.one("SELECT r.order_id, r.reason, o.state FROM refunds r "
                     "JOIN orders o ON o.order_id = r.order_id WHERE r.payment_id = ?",
                     (payment_id,))
        if (row is not None and row["reason"] == RefundReason.VEND_FAILED
                and row["state"] == OrderState.REFUND_PENDING):
            self._orders.transition_tx(tx, row["order_id"], OrderState.REFUNDED, WHO,
                                       "refund processed", {OrderState.REFUND_PENDING})

    def _adopt_tx(self, tx: Tx, payment_id: str, entity: Mapping[str, Any]) -> RefundState:
        """Take Razorpay's refund entity as the truth for our row."""
        to = _ENTITY_STATE.get(str(entity.get("status")), R.PENDING)
        row = tx.one("SELECT state, attempts FROM refunds WHERE payment_id = ?", (payment_id,))
        if row is None:
            raise RefundTransitionError(f"no refund for payment {payment_id}")
        current = RefundState(row["state"])
        if current in (R.PROCESSED, R.REFUSED) or (current == to):
            return current
        if current == R.PENDING and to == R.PENDING:
            return current
        fields: dict[str, object] = {"refund_id": entity.get("id"), "last_error": None}
        if to == R.FAILED:
            fields["attempts"] = row["attempts"] + 1
            fields["next_attempt_at"] = int(self._clock() + self._backoff(row["attempts"]))
        self._move_tx(tx, payment_id, to, **fields)
        return to

    def on_refund_entity_tx(self, tx: Tx, entity: Mapping[str, Any]) -> str:
        """A refund.* webhook: forward-only update of our refund; returns the outcome."""
        refund_id, payment_id = entity.get("id"), entity.get("payment_id")
        columns = "payment_id, refund_id, state, idempotency_key"
        row = tx.one(f"SELECT {columns} FROM refunds WHERE refund_id = ?", (refund_id,))
        if row is None:
            row = tx.one(f"SELECT {columns} FROM refunds WHERE payment_id = ?", (payment_id,))
            notes = entity.get("notes")
            key = notes.get("refund_key") if isinstance(notes, dict) else None
            if row is not None and key is not None and key != row["idempotency_key"]:
                return "refund_superseded"  # an earlier, failed generation
        if row is None:
            log.warning("refund event for a refund we did not make",
                        extra={"refund_id": refund_id, "payment_id": payment_id})
            return "refund_unknown"
        if row["refund_id"] is not None and row["refund_id"] != refund_id:
            return "refund_superseded"  # an earlier failed generation
        before = row["state"]
        # a failed refund is retried by the reconciler once its backoff has passed
        after = self._adopt_tx(tx, row["payment_id"], entity)
        return "refund_updated" if after != before else "refund_unchanged"

    # --- talking to Razorpay ------------------------------------------------------------------
    def _backoff(self, attempts: int) -> float:
        return float(min(self._retry_max_s, self._retry_base_s * 2 ** min(attempts, 20)))

    def due(self, now: float) -> list[str]:
        rows = self._db.query(
            "SELECT payment_id FROM refunds WHERE state IN (?, ?, ?) "
            "AND (next_attempt_at IS NULL OR next_attempt_at <= ?) ORDER BY id",
            (str(R.QUEUED), str(R.UNKNOWN), str(R.FAILED), int(now)))
        return [r["payment_id"] for r in rows]

    def stale_pending(self, older_than: float) -> list[str]:
        rows = self._db.query("SELECT payment_id FROM refunds WHERE state = ? AND updated_at <= ?",
                              (str(R.PENDING), int(older_than)))
        return [r["payment_id"] for r in rows]

    def get(self, payment_id: str) -> sqlite3.Row | None:
        return self._db.query_one("SELECT * FROM refunds WHERE payment_id = ?", (payment_id,))

    async def _attempt_logged(self, payment_id: str) -> None:
        try:
            await self.attempt(payment_id)
        except (RefundTransitionError, InvalidTransition) as exc:
            log.warning("refund attempt lost a race: %s", exc, extra={"payment_id": payment_id})

    async def attempt(self, payment_id: str) -> RefundState | None:
        """Bring one refund forward; returns its state afterwards (None: no such refund)."""
        lock, users = self._locks.get(payment_id, (asyncio.Lock(), 0))
        self._locks[payment_id] = (lock, users + 1)
        try:
            async with lock:
                return await self._attempt(payment_id)
        finally:
            lock, users = self._locks[payment_id]
            if users == 1:
                del self._locks[payment_id]
            else:
                self._locks[payment_id] = (lock, users - 1)

    async def _attempt(self, payment_id: str) -> RefundState | None:
        row = self.get(payment_id)
        if row is None:
            return None
        state = RefundState(row["state"])
        if state == R.FAILED:
            # Razorpay failed the last generation: list first (a late success wins), then
            # start the next generation with its own derived key.
            try:
                found = await self._existing(row)
            except RazorpayError as exc:
                log.warning("cannot list refunds before a new generation: %s", exc.message,
                            extra={"payment_id": payment_id})
                error = exc.message[:500]
                retry_at = int(self._clock() + self._backoff(row["attempts"]))
                await self._db.write(lambda tx: self._move_tx(
                    tx, payment_id, R.FAILED, last_error=error, next_attempt_at=retry_at))
                return R.FAILED
            if found is not None:
                return await self._adopt(payment_id, found)
            key = refund_key(payment_id, key_generation(row["idempotency_key"]) + 1)
            await self._db.write(lambda tx: self._move_tx(
                tx, payment_id, R.QUEUED, idempotency_key=key, refund_id=None))
            row = self.get(payment_id)
            assert row is not None
            state = R.QUEUED
        if state not in (R.QUEUED, R.UNKNOWN):
            return state
        if state == R.UNKNOWN:
            try:
                found = await self._existing(row)
            except RazorpayError as exc:
                return await self._record_error(row, exc)
            if found is not None:
                return await self._adopt(payment_id, found)
        key = row["idempotency_key"]
        try:
            entity = await self._razorpay.refund(
                payment_id, amount=row["amount"], idempotency_key=key,
                notes={"refund_key": key, "order_id": row["order_id"] or "",
                       "reason": row["reason"]})
        except RazorpayError as exc:
            self._metrics.inc("gateway_refunds_total", {"result": f"error_{exc.kind}"})
            # after any refund error, list the payment's refunds before deciding
            try:
                found = await self._existing(row)
            except RazorpayError:
                found = None
            if found is not None:
                return await self._adopt(payment_id, found)
            return await self._record_error(row, exc)
        return await self._adopt(payment_id, entity)

    async def _adopt(self, payment_id: str, entity: Mapping[str, Any]) -> RefundState:
        return await self._db.write(lambda tx: self._adopt_tx(tx, payment_id, entity))

    async def _existing(self, row: sqlite3.Row) -> dict[str, Any] | None:
        """A refund Razorpay already holds for this payment that settles our row, if any."""
        refunds = await self._razorpay.payment_refunds(row["payment_id"])
        live = [r for r in refunds if r.get("status") != "failed"]
        prefix = f"rfnd-{row['payment_id']}-"
        for r in live:
            notes = r.get("notes")
            if isinstance(notes, dict) and str(notes.get("refund_key", "")).startswith(prefix):
                return r
        total = sum(r.get("amount", 0) for r in live if isinstance(r.get("amount"), int))
        if live and total >= row["amount"]:
            log.warning("payment already refunded outside the gateway; adopting that refund",
                        extra={"payment_id": row["payment_id"], "refund_id": live[0].get("id")})
            return live[0]
        return None

    def _record_error_tx(self, tx: Tx, row: sqlite3.Row, exc: RazorpayError) -> RefundState:
        payment_id = row["payment_id"]
        now_row = tx.one("SELECT state FROM refunds WHERE payment_id = ?", (payment_id,))
        current = RefundState(now_row["state"]) if now_row else R.PROCESSED
        if current not in (R.QUEUED, R.UNKNOWN):
            return current  # a webhook settled it while we were asking: keep that
        attempts = row["attempts"] + 1
        error = exc.message[:500]
        if exc.kind == "refused":
            log.error("%s refund refused by Razorpay; an operator must settle payment %s: %s",
                      ALERT, payment_id, exc.message,
                      extra={"payment_id": payment_id, "order_id": row["order_id"]})
            self._move_tx(tx, payment_id, R.REFUSED, attempts=attempts, last_error=error)
            return R.REFUSED
        if attempts == self._alert_after:
            log.error("%s refund of payment %s still unsettled after %d attempts: %s", ALERT,
                      payment_id, attempts, exc.message, extra={"payment_id": payment_id})
        self._move_tx(tx, payment_id, R.UNKNOWN, attempts=attempts, last_error=error,
                      next_attempt_at=int(self._clock() + self._backoff(attempts - 1)))
        return R.UNKNOWN

    async def _record_error(self, row: sqlite3.Row, exc: RazorpayError) -> RefundState:
        return await self._db.write(lambda tx: self._record_error_tx(tx, row, exc))

    async def sync_pending(self, payment_id: str) -> None:
        """A pending refund whose webhook may be lost: read its state from Razorpay."""
        row = self.get(payment_id)
        if row is None or row["state"] != R.PENDING:
            return
        refunds = await self._razorpay.payment_refunds(payment_id)
        mine = [r for r in refunds if r.get("id") == row["refund_id"]]
        if mine:
            await self._db.write(lambda tx: self._adopt_tx(tx, payment_id, mine[0]))


__all__ = ["TRANSITIONS", "RefundReason", "RefundState", "RefundTransitionError", "Refunds",
           "refund_key"]
