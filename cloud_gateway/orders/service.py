"""The order service: the only code that creates orders or changes their state.

Other modules call (route handlers, hub events, and the webhook/refund/reconciler modules):
* `create(hub, body)` -> (Order, created?) and `pay(hub, order_id)` -> Order;
* `dispense`, `confirm` (-> Receipt), `fail`, `cancel`, `qr`, `get_for_hub`, `to_api`;
* `transition(order_id, to, who, why, expect_from=..., fields=...)` (own transaction) and
  `transition_tx(tx, ...)` inside another `Database.write` unit: the ONE way to change a state;
  it checks the table in `state.py`, updates conditionally (``WHERE state = ?``), writes the
  audit row (who, when, from, to, why) and, after the commit, calls every hook;
* `mark_paid_tx(tx, order_id, payment_id, amount, currency, who, why)`: a captured payment of
  exactly the order's amount and currency makes the order paid, sets its vend deadline and queues
  the hub's payment_confirmed command in the same transaction (INVARIANTS rule 1);
* `add_hook(fn)`: `fn(order_id, from_state, to_state)` after each committed transition (the
  refund module listens for `failed`). Hooks must not block; schedule tasks for slow work.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import re
import sqlite3
import time
from collections.abc import AsyncIterator, Callable, Collection, Coroutine, Mapping
from contextlib import asynccontextmanager
from typing import Any

from protocol.hub_api import (
    CancelReasonName,
    CommandType,
    CreateOrder,
    Order,
    OrderState,
    Payment,
    Receipt,
    VendFailure,
)

from ..auth import HubIdentity
from ..catalog import price_order
from ..commands import CommandQueue
from ..db import Database, Tx
from ..errors import (
    Conflict,
    Forbidden,
    GatewayError,
    InvalidTransition,
    NotFound,
    UpstreamError,
    ValidationError,
)
from ..ids import new_order_id
from ..razorpay_client import RazorpayClient, RazorpayError
from ..settings import Settings
from .state import STAMPS, check_transition

log = logging.getLogger(__name__)

OrderHook = Callable[[str, OrderState, OrderState], None]

BOARD_UID_RE = re.compile(r"^[0-9a-f]{24}$")
IDEMPOTENCY_KEY_RE = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")
# columns a transition may set besides state and the stamps of state.STAMPS
SETTABLE = frozenset({"qr_id", "upi_uri", "close_by", "payment_id", "vend_deadline",
                      "closed_reason", "vend_dispensed"})
_PROVIDER_STATUS = {"refused": 502, "not_sent": 503, "unknown": 502}


class PaymentMismatch(GatewayError):
    """A captured payment whose amount or currency differs from the order's (refund it)."""

    status = 409
    code = "payment_mismatch"


class OrderService:
    def __init__(self, db: Database, commands: CommandQueue, razorpay: RazorpayClient,
                 settings: Settings, clock: Callable[[], float] = time.time) -> None:
        self._db = db
        self._commands = commands
        self._razorpay = razorpay
        self._settings = settings
        self._clock = clock
        self._hooks: list[OrderHook] = []
        self._locks: dict[str, asyncio.Lock] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def aclose(self) -> None:
        """Wait for background work (QR closes) started by transitions."""
        while self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    # --- reading ------------------------------------------------------------------------------
    def get(self, order_id: str) -> sqlite3.Row:
        row = self._db.query_one("SELECT * FROM orders WHERE order_id = ?", (order_id,))
        if row is None:
            raise NotFound(f"no order {order_id!r}")
        return row

    def get_for_hub(self, hub: HubIdentity, order_id: str) -> sqlite3.Row:
        row = self.get(order_id)
        if row["hub_id"] != hub.hub_id:
            raise Forbidden(f"order {order_id!r} belongs to another hub")
        return row

    def to_api(self, row: sqlite3.Row) -> Order:
        order: Order = {
            "order_id": row["order_id"], "board_uid": row["board_uid"], "hub_id": row["hub_id"],
            "state": row["state"], "product": row["product"],
            "options": json.loads(row["options"]), "quantity": row["quantity"],
            "amount": row["amount"], "currency": row["currency"],
            "created_at": row["created_at"], "payment": self._payment(row),
            "vend_deadline": row["vend_deadline"],
        }
        return order

    def _payment(self, row: sqlite3.Row) -> Payment | None:
        if row["qr_id"] is None:
            return None
        return {"qr_id": row["qr_id"], "upi_uri": row["upi_uri"], "amount": row["amount"],
                "currency": row["currency"], "close_by": row["close_by"],
                "expires_in_s": max(0, int(row["close_by"] - self._clock()))}

    def qr(self, hub: HubIdentity, order_id: str) -> Payment:
        payment = self._payment(self.get_for_hub(hub, order_id))
        if payment is None:
            raise NotFound(f"order {order_id!r} has no payment QR yet (POST .../pay)")
        return payment

    # --- transitions --------------------------------------------------------------------------
    def add_hook(self, hook: OrderHook) -> None:
        self._hooks.append(hook)

    def _fire(self, order_id: str, from_state: OrderState, to: OrderState) -> None:
        for hook in self._hooks:
            try:
                hook(order_id, from_state, to)
            except Exception:
                log.exception("order hook failed", extra={"order_id": order_id})

    def transition_tx(self, tx: Tx, order_id: str, to: OrderState, who: str, why: str,
                      expect_from: Collection[OrderState] | None = None,
                      fields: Mapping[str, object] | None = None) -> OrderState:
        """Move one order; returns the state it left. Raises NotFound or InvalidTransition."""
        row = tx.one("SELECT state, qr_id FROM orders WHERE order_id = ?", (order_id,))
        if row is None:
            raise NotFound(f"no order {order_id!r}")
        current = row["state"]
        if expect_from is not None and current not in expect_from:
            raise InvalidTransition(order_id, current, to)
        from_state = check_transition(order_id, current, to)
        sets = {"state": str(to), "updated_at": int(tx.now)}
        stamp = STAMPS.get(to)
        if stamp is not None:
            sets[stamp] = int(tx.now)
        for name, value in (fields or {}).items():
            if name not in SETTABLE:
                raise ValueError(f"transition may not set column {name!r}")
            sets[name] = value  # type: ignore[assignment]
        assignments = ", ".join(f"{name} = ?" for name in sets)
        cur = tx.execute(f"UPDATE orders SET {assignments} WHERE order_id = ? AND state = ?",
                         (*sets.values(), order_id, current))
        if cur.rowcount != 1:  # lost a race: someone moved it first
            now_row = tx.one("SELECT state FROM orders WHERE order_id = ?", (order_id,))
            raise InvalidTransition(order_id, now_row["state"] if now_row else "?", to)
        tx.execute("INSERT INTO order_audit (order_id, at_ts, who, from_state, to_state, why) "
                   "VALUES (?, ?, ?, ?, ?, ?)", (order_id, tx.now, who, current, str(to), why))
        log.info("order %s -> %s", current, to,
                 extra={"order_id": order_id, "who": who, "why": why})
        tx.after_commit(lambda: self._fire(order_id, from_state, to))
        qr_id = row["qr_id"]
        if to == OrderState.CANCELLED and qr_id is not None:  # nobody may pay it any more
            tx.after_commit(lambda: self._spawn(self.close_qr_quietly(qr_id, order_id)))
        return from_state

    async def transition(self, order_id: str, to: OrderState, who: str, why: str,
                         expect_from: Collection[OrderState] | None = None,
                         fields: Mapping[str, object] | None = None) -> sqlite3.Row:
        await self._db.write(
            lambda tx: self.transition_tx(tx, order_id, to, who, why, expect_from, fields))
        return self.get(order_id)

    def mark_paid_tx(self, tx: Tx, order_id: str, payment_id: str, amount: int, currency: str,
                     who: str, why: str) -> int:
        """Order paid + payment_confirmed queued, atomically. Returns the command's seq."""
        row = tx.one("SELECT hub_id, board_uid, amount, currency FROM orders "
                     "WHERE order_id = ?", (order_id,))
        if row is None:
            raise NotFound(f"no order {order_id!r}")
        if (isinstance(amount, bool) or not isinstance(amount, int) or amount != row["amount"]
                or currency != row["currency"]):
            raise PaymentMismatch(
                f"payment {payment_id} of {amount} {currency} does not match order "
                f"{order_id} ({row['amount']} {row['currency']})",
                details={"order_id": order_id, "payment_id": payment_id})
        deadline = int(tx.now) + self._settings.vend_deadline_s
        self.transition_tx(tx, order_id, OrderState.PAID, who, why,
                           expect_from={OrderState.PAYMENT_PENDING},
                           fields={"payment_id": payment_id, "vend_deadline": deadline})
        return self._commands.enqueue_tx(
            tx, row["hub_id"], CommandType.PAYMENT_CONFIRMED, order_id, row["board_uid"],
            {"amount": row["amount"], "currency": row["currency"], "payment_id": payment_id},
            deadline=deadline)

    # --- create and pay -----------------------------------------------------------------------
    def _check_create(self, hub: HubIdentity, body: CreateOrder) -> str:
        invalid: dict[str, str] = {}
        board_uid = body["board_uid"].lower()
        if not BOARD_UID_RE.match(board_uid):
            invalid["board_uid"] = "must be the 24 hex digits of the board's 96-bit uid"
        if not 1 <= body["quantity"] <= self._settings.max_quantity:
            invalid["quantity"] = f"must be 1..{self._settings.max_quantity}"
        if not IDEMPOTENCY_KEY_RE.match(body["idempotency_key"]):
            invalid["idempotency_key"] = f"must match {IDEMPOTENCY_KEY_RE.pattern}"
        if invalid:
            raise ValidationError(invalid=invalid)
        board = self._db.query_one("SELECT hub_id FROM boards WHERE board_uid = ?", (board_uid,))
        if board is None:
            raise ValidationError(invalid={
                "board_uid": "board not registered (PUT /hub/boards/{board_uid} first)"})
        if board["hub_id"] != hub.hub_id:
            raise Forbidden(f"board {board_uid} belongs to another hub")
        return board_uid

    async def create(self, hub: HubIdentity, body: CreateOrder) -> tuple[Order, bool]:
        """Create (201) or find by idempotency key (200); with "pay", also its UPI QR.

        A new order with "pay" asks Razorpay for the QR first and then stores the order and
        its QR in ONE transaction (one fsync per create-and-pay). The QR is shown to nobody
        before that commit, so a crash in between leaves only an unused QR that expires.
        """
        board_uid = self._check_create(hub, body)
        amount = price_order(self._db, hub.site, body["product"], body["options"],
                             body["quantity"])
        request_hash = hashlib.sha256(json.dumps(
            [board_uid, body["product"], body["options"], body["quantity"]]).encode()).hexdigest()
        key = body["idempotency_key"]
        async with self._order_lock(f"key:{hub.hub_id}:{key}"):
            existing = self._db.query_one(
                "SELECT order_id, request_hash FROM orders WHERE hub_id = ? "
                "AND idempotency_key = ?", (hub.hub_id, key))
            if existing is not None:
                if existing["request_hash"] != request_hash:
                    raise Conflict("idempotency_key was already used for a different order",
                                   details={"order_id": existing["order_id"]})
                if body.get("pay"):
                    return await self.pay(hub, existing["order_id"]), False
                return self.to_api(self.get(existing["order_id"])), False
            order_id = new_order_id()
            qr: dict[str, object] | None = None
            failure: UpstreamError | None = None
            if body.get("pay"):
                try:
                    qr = await self._create_qr(order_id, hub.hub_id, board_uid, body["product"],
                                               body["quantity"], amount)
                except UpstreamError as exc:
                    failure = exc  # the order is still stored: a retry pays it
            values = (order_id, hub.hub_id, hub.site, board_uid, key, request_hash,
                      body["product"], json.dumps(body["options"]), body["quantity"], amount,
                      self._settings.currency)
            await self._db.write(lambda tx: self._insert_tx(tx, values, qr))
        log.info("order created", extra={"order_id": order_id, "hub_id": hub.hub_id,
                                         "amount": amount})
        if failure is not None:
            raise failure
        return self.to_api(self.get(order_id)), True

    def _insert_tx(self, tx: Tx, values: tuple[object, ...],
                   qr: Mapping[str, object] | None) -> None:
        order_id, hub_id = values[0], values[1]
        tx.execute(
            "INSERT INTO orders (order_id, hub_id, site, board_uid, idempotency_key, "
            "request_hash, product, options, quantity, amount, currency, state, created_at, "
            "updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (*values, str(OrderState.CREATED), int(tx.now), int(tx.now)))
        who = f"hub:{hub_id}"
        tx.execute("INSERT INTO order_audit (order_id, at_ts, who, from_state, to_state, why)"
                   " VALUES (?, ?, ?, NULL, ?, ?)",
                   (order_id, tx.now, who, str(OrderState.CREATED), "order created"))
        if qr is not None:
            self.transition_tx(tx, str(order_id), OrderState.PAYMENT_PENDING, who,
                               f"UPI QR {qr['qr_id']} created", fields=qr)

    async def _create_qr(self, order_id: str, hub_id: str, board_uid: str, product: str,
                         quantity: int, amount: int) -> dict[str, object]:
        """Ask Razorpay for a single-use UPI QR; the order columns to store, or UpstreamError."""
        close_by = int(self._clock()) + self._settings.qr_ttl_s
        try:
            qr = await self._razorpay.create_upi_qr(
                amount=amount, close_by=close_by,
                notes={"order_id": order_id, "hub_id": hub_id, "board_uid": board_uid},
                description=f"{product} x{quantity} ({order_id})")
        except RazorpayError as exc:
            raise UpstreamError(f"Razorpay could not create the QR: {exc.message}",
                                kind=exc.kind, status=_PROVIDER_STATUS[exc.kind]) from None
        upi_uri = qr.get("image_content")
        qr_id = qr.get("id")
        if not isinstance(upi_uri, str) or not isinstance(qr_id, str):
            raise UpstreamError("Razorpay QR without id or image_content", kind="unknown")
        qr_close_by = qr.get("close_by")
        if isinstance(qr_close_by, int) and not isinstance(qr_close_by, bool):
            close_by = qr_close_by  # Razorpay may cap it: its value is the truth
        return {"qr_id": qr_id, "upi_uri": upi_uri, "close_by": close_by}

    @asynccontextmanager
    async def _order_lock(self, order_id: str) -> AsyncIterator[None]:
        lock = self._locks.setdefault(order_id, asyncio.Lock())
        try:
            async with lock:
                yield
        finally:
            if not lock.locked() and self._locks.get(order_id) is lock:
                del self._locks[order_id]

    async def pay(self, hub: HubIdentity, order_id: str) -> Order:
        self.get_for_hub(hub, order_id)
        async with self._order_lock(order_id):
            row = self.get(order_id)
            if row["qr_id"] is not None and row["state"] == OrderState.PAYMENT_PENDING:
                return self.to_api(row)  # a retried pay: same QR
            check_transition(order_id, row["state"], OrderState.PAYMENT_PENDING)
            qr = await self._create_qr(order_id, row["hub_id"], row["board_uid"],
                                       row["product"], row["quantity"], row["amount"])
            try:
                row = await self.transition(
                    order_id, OrderState.PAYMENT_PENDING, f"hub:{hub.hub_id}",
                    f"UPI QR {qr['qr_id']} created", expect_from={OrderState.CREATED},
                    fields=qr)
            except InvalidTransition:
                await self.close_qr_quietly(str(qr["qr_id"]), order_id)  # cancelled meanwhile
                raise
            return self.to_api(row)

    async def close_qr_quietly(self, qr_id: str, order_id: str) -> None:
        """Close a QR; on failure log it (the reconciler closes it at close_by anyway)."""
        try:
            await self._razorpay.close_qr(qr_id)
        except RazorpayError as exc:
            log.warning("could not close QR", extra={"order_id": order_id, "qr_id": qr_id,
                                                     "error": exc.message})

    # --- the vend -----------------------------------------------------------------------------
    async def dispense(self, hub: HubIdentity, order_id: str) -> Order:
        row = self.get_for_hub(hub, order_id)
        if (row["state"] == OrderState.PAID and row["vend_deadline"] is not None
                and self._clock() > row["vend_deadline"]):
            raise InvalidTransition(order_id, row["state"], OrderState.DISPENSING)
        row = await self.transition(order_id, OrderState.DISPENSING, f"hub:{hub.hub_id}",
                                    "dispense requested", expect_from={OrderState.PAID})
        return self.to_api(row)

    async def confirm(self, hub: HubIdentity, order_id: str) -> Receipt:
        self.get_for_hub(hub, order_id)
        row = await self.transition(order_id, OrderState.FULFILLED, f"hub:{hub.hub_id}",
                                    "dispense confirmed", expect_from={OrderState.DISPENSING})
        return {"order_id": order_id, "amount": row["amount"], "currency": row["currency"],
                "paid_at": row["paid_at"], "dispensed_at": row["dispensed_at"],
                "fulfilled_at": row["fulfilled_at"], "payment_id": row["payment_id"]}

    async def fail(self, hub: HubIdentity, order_id: str, body: VendFailure) -> Order:
        row = self.get_for_hub(hub, order_id)
        if not 0 <= body["dispensed"] < row["quantity"]:
            raise ValidationError(invalid={
                "dispensed": f"must be 0..{row['quantity'] - 1} for a failed vend"})
        row = await self.transition(
            order_id, OrderState.FAILED, f"hub:{hub.hub_id}",
            f"vend failed: {body['reason'][:200]} (dispensed {body['dispensed']})",
            expect_from={OrderState.PAID, OrderState.DISPENSING},
            fields={"vend_dispensed": body["dispensed"], "closed_reason": body["reason"][:200]})
        return self.to_api(row)

    async def cancel(self, hub: HubIdentity, order_id: str, reason: str) -> Order:
        try:
            reason = CancelReasonName(reason)
        except ValueError:
            raise ValidationError(invalid={"reason": "must be one of " + ", ".join(
                r.value for r in CancelReasonName)}) from None
        self.get_for_hub(hub, order_id)
        row = await self.transition(order_id, OrderState.CANCELLED, f"hub:{hub.hub_id}",
                                    f"cancelled: {reason}", fields={"closed_reason": reason})
        return self.to_api(row)


__all__ = ["OrderHook", "OrderService", "PaymentMismatch"]
