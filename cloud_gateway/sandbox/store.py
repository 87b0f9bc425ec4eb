"""The sandbox's Razorpay state: orders, QR codes, payments, refunds. Sync and I/O-free.

Every mutating method returns the entity the API answers with and the webhook events it caused;
the HTTP layer sends the events. Event payloads are deep copies: the state at that moment.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from . import validate as v
from .config import SandboxConfig
from .entities import (
    ORDER_TRANSITIONS,
    PAYMENT_TRANSITIONS,
    QR_TRANSITIONS,
    REFUND_TRANSITIONS,
    PayerDetails,
    clear_error,
    digits,
    new_id,
    notes_out,
    payment_entity,
    refund_entity,
    set_failed,
    transition,
    upi_uri,
)
from .errors import SandboxError, not_found

QR_FIELDS = (
    "type", "name", "usage", "fixed_amount", "payment_amount", "description", "customer_id",
    "close_by", "notes",
)
ORDER_FIELDS = ("amount", "currency", "receipt", "notes", "partial_payment", "payment")
REFUND_FIELDS = ("amount", "speed", "notes", "receipt")
MIN_ORDER_AMOUNT = 100
MIN_CLOSE_BY = 946684800
MAX_CLOSE_BY = 4765046400


@dataclass(frozen=True)
class Event:
    name: str
    payload: dict[str, dict[str, Any]]  # entity name -> entity snapshot
    created_at: int


@dataclass(frozen=True)
class PayOptions:
    amount: int | None = None  # None = the QR's fixed amount
    fail_first: bool = False  # payment.failed, then payment.captured for the same payment
    payer: PayerDetails = field(default_factory=PayerDetails)


@dataclass
class Store:
    config: SandboxConfig
    clock: Callable[[], float]
    orders: dict[str, dict[str, Any]] = field(default_factory=dict)
    qrs: dict[str, dict[str, Any]] = field(default_factory=dict)
    payments: dict[str, dict[str, Any]] = field(default_factory=dict)
    refunds: dict[str, dict[str, Any]] = field(default_factory=dict)
    qr_of_payment: dict[str, str] = field(default_factory=dict)
    order_capture: dict[str, str] = field(default_factory=dict)  # order id -> automatic/manual

    def now(self) -> int:
        return int(self.clock())

    def _event(self, name: str, **entities: dict[str, Any]) -> Event:
        return Event(name, {k: copy.deepcopy(e) for k, e in entities.items()}, self.now())

    # --- orders --------------------------------------------------------------------------------
    def create_order(self, body: dict[str, Any]) -> dict[str, Any]:
        v.reject_unknown(body, ORDER_FIELDS)
        amount = v.integer(body, "amount", required=True)
        assert amount is not None
        if amount < MIN_ORDER_AMOUNT:
            raise SandboxError("The amount must be at least INR 1.00.", field="amount")
        currency = v.string(body, "currency", max_len=3) or "INR"
        if currency != "INR":
            raise SandboxError("Currency is not supported", field="currency")
        receipt = v.string(body, "receipt", max_len=40)
        capture = "automatic"
        payment_opts = body.get("payment")
        if payment_opts is not None:
            if not isinstance(payment_opts, dict) or payment_opts.get("capture") not in (
                "automatic", "manual"
            ):
                raise SandboxError("payment.capture must be automatic or manual", field="payment")
            capture = str(payment_opts["capture"])
        order_id = new_id("order_")
        order: dict[str, Any] = {
            "id": order_id,
            "entity": "order",
            "amount": amount,
            "amount_paid": 0,
            "amount_due": amount,
            "currency": currency,
            "receipt": receipt,
            "offer_id": None,
            "status": "created",
            "attempts": 0,
            "notes": notes_out(v.notes(body)),
            "created_at": self.now(),
        }
        self.orders[order_id] = order
        self.order_capture[order_id] = capture
        return order

    def order(self, order_id: str) -> dict[str, Any]:
        if order_id not in self.orders:
            raise not_found(order_id)
        return self.orders[order_id]

    def list_orders(self, query: dict[str, str]) -> list[dict[str, Any]]:
        items = list(self.orders.values())
        if "receipt" in query:
            items = [o for o in items if o["receipt"] == query["receipt"]]
        return self._page(items, query)

    def order_payments(self, order_id: str) -> list[dict[str, Any]]:
        self.order(order_id)
        return [p for p in self.payments.values() if p["order_id"] == order_id]

    def pay_order(self, order_id: str, payer: PayerDetails) -> tuple[dict[str, Any], list[Event]]:
        order = self.order(order_id)
        if order["status"] == "paid":
            raise SandboxError("Order is already paid", field="order_id")
        payment = self._new_payment(order["amount"], {}, payer, None, order_id)
        order["attempts"] += 1
        if order["status"] == "created":
            transition(ORDER_TRANSITIONS, "order", order, "attempted")
        transition(PAYMENT_TRANSITIONS, "payment", payment, "authorized")
        events = [self._event("payment.authorized", payment=payment)]
        if self.order_capture.get(order_id) == "automatic":
            events += self._capture(payment)
        return payment, events

    # --- QR codes ------------------------------------------------------------------------------
    def create_qr(self, body: dict[str, Any]) -> dict[str, Any]:
        v.reject_unknown(body, QR_FIELDS)
        v.choice(body, "type", ("upi_qr",))
        usage = v.choice(body, "usage", ("single_use", "multiple_use"))
        fixed = v.boolean(body, "fixed_amount", False)
        amount = v.integer(body, "payment_amount", required=fixed)
        if usage == "single_use" and not fixed:
            raise SandboxError(
                "fixed_amount should be true for single_use QR codes", field="fixed_amount"
            )
        if amount is not None and not fixed:
            raise SandboxError(
                "payment_amount is not required when fixed_amount is false",
                field="payment_amount",
            )
        if amount is not None and amount < 1:
            raise SandboxError("The payment amount must be at least 1.", field="payment_amount")
        name = v.string(body, "name", max_len=100)
        description = v.string(body, "description", max_len=255)
        customer_id = v.string(body, "customer_id", max_len=40)
        now = self.now()
        close_by = v.integer(body, "close_by")
        cfg = self.config
        if close_by is not None:
            if not MIN_CLOSE_BY <= close_by <= MAX_CLOSE_BY:
                raise SandboxError(
                    f"close_by should be between {MIN_CLOSE_BY} and {MAX_CLOSE_BY}",
                    field="close_by",
                )
            if close_by < now + cfg.qr_min_lead_s:
                raise SandboxError(
                    f"close_by should be at least {cfg.qr_min_lead_s // 60} minutes after "
                    "current time",
                    field="close_by",
                )
        if usage == "single_use" and (close_by is None or close_by > now + cfg.qr_max_lead_s):
            close_by = now + cfg.qr_max_lead_s
        qr_id = new_id("qr_")
        qr = {
            "id": qr_id,
            "entity": "qr_code",
            "created_at": now,
            "name": name,
            "usage": usage,
            "type": "upi_qr",
            "image_url": f"https://rzp.io/i/{qr_id[3:11]}",
            "image_content": upi_uri(
                vpa=cfg.merchant_vpa, name=name or cfg.merchant_name, amount=amount, ref=qr_id
            ),
            "payment_amount": amount,
            "status": "active",
            "description": description,
            "fixed_amount": fixed,
            "payments_amount_received": 0,
            "payments_count_received": 0,
            "notes": notes_out(v.notes(body)),
            "customer_id": customer_id,
            "close_by": close_by,
            "closed_at": None,
            "close_reason": None,
        }
        self.qrs[qr_id] = qr
        return qr

    def qr(self, qr_id: str) -> dict[str, Any]:
        qr = self.qrs.get(qr_id)
        if qr is None:
            raise not_found(qr_id)
        self._expire(qr)
        return qr

    def _expire(self, qr: dict[str, Any]) -> None:
        """Past close_by a QR is closed (auto-expiry sends no qr_code.closed event)."""
        if qr["status"] == "active" and qr["close_by"] is not None and self.now() >= qr["close_by"]:
            self._close(qr, "expired")

    def _close(self, qr: dict[str, Any], reason: str) -> None:
        transition(QR_TRANSITIONS, "qr_code", qr, "closed")
        qr["closed_at"] = self.now()
        qr["close_reason"] = reason

    def list_qrs(self, query: dict[str, str]) -> list[dict[str, Any]]:
        items = [self.qr(q) for q in self.qrs]
        if "payment_id" in query:
            owner = self.qr_of_payment.get(query["payment_id"])
            items = [q for q in items if q["id"] == owner]
        return self._page(items, query)

    def close_qr(self, qr_id: str) -> tuple[dict[str, Any], list[Event]]:
        qr = self.qr(qr_id)
        if qr["status"] == "closed":
            raise SandboxError("QR code is already closed", field="id")
        self._close(qr, "on_demand")
        return qr, [self._event("qr_code.closed", qr_code=qr)]

    def qr_payments(self, qr_id: str, query: dict[str, str]) -> list[dict[str, Any]]:
        self.qr(qr_id)
        items = [p for pid, p in self.payments.items() if self.qr_of_payment.get(pid) == qr_id]
        return self._page(items, query)

    def pay_qr(self, qr_id: str, options: PayOptions) -> tuple[dict[str, Any], list[Event]]:
        """A customer pays the QR. Lands even on a closed QR (late payments happen)."""
        qr = self.qr(qr_id)
        amount = options.amount if options.amount is not None else qr["payment_amount"]
        if amount is None:
            raise SandboxError("this QR has no fixed amount: give an amount", field="amount")
        if amount < 1:
            raise SandboxError("amount must be at least 1", field="amount")
        notes = qr["notes"] if isinstance(qr["notes"], dict) else {}
        payment = self._new_payment(amount, notes, options.payer, qr["description"], None)
        self.qr_of_payment[payment["id"]] = qr_id
        events: list[Event] = []
        if options.fail_first:
            transition(PAYMENT_TRANSITIONS, "payment", payment, "failed")
            set_failed(payment)
            events.append(self._event("payment.failed", payment=payment))
            clear_error(payment)
        else:
            transition(PAYMENT_TRANSITIONS, "payment", payment, "authorized")
        transition(PAYMENT_TRANSITIONS, "payment", payment, "captured")
        payment["captured"] = True
        qr["payments_amount_received"] += amount
        qr["payments_count_received"] += 1
        if qr["status"] == "active" and qr["usage"] == "single_use":
            self._close(qr, "paid")
        events.append(self._event("qr_code.credited", payment=payment, qr_code=qr))
        events.append(self._event("payment.captured", payment=payment))
        return payment, events

    # --- payments ------------------------------------------------------------------------------
    def _new_payment(
        self, amount: int, notes: dict[str, str], payer: PayerDetails, description: str | None,
        order_id: str | None,
    ) -> dict[str, Any]:
        cfg = self.config
        payment = payment_entity(
            amount=amount, notes=notes, payer=payer, description=description,
            order_id=order_id, fee_bps=cfg.fee_bps, tax_bps=cfg.tax_bps, now=self.now(),
        )
        self.payments[payment["id"]] = payment
        return payment

    def payment(self, payment_id: str) -> dict[str, Any]:
        if payment_id not in self.payments:
            raise not_found(payment_id)
        return self.payments[payment_id]

    def capture(self, payment_id: str, body: dict[str, Any]) -> tuple[dict[str, Any], list[Event]]:
        payment = self.payment(payment_id)
        v.reject_unknown(body, ("amount", "currency"))
        amount = v.integer(body, "amount", required=True)
        currency = v.string(body, "currency", max_len=3, required=True)
        if payment["status"] != "authorized":
            raise SandboxError(
                "This payment has already been captured"
                if payment["captured"] else
                f"Only payments which have been authorized can be captured (status: "
                f"{payment['status']})",
                field="id",
            )
        if amount != payment["amount"] or currency != payment["currency"]:
            raise SandboxError(
                "Capture amount must be equal to the amount authorized", field="amount"
            )
        return payment, self._capture(payment)

    def _capture(self, payment: dict[str, Any]) -> list[Event]:
        transition(PAYMENT_TRANSITIONS, "payment", payment, "captured")
        payment["captured"] = True
        events = [self._event("payment.captured", payment=payment)]
        if payment["order_id"] is not None:
            order = self.orders[payment["order_id"]]
            transition(ORDER_TRANSITIONS, "order", order, "paid")
            order["amount_paid"] = payment["amount"]
            order["amount_due"] = 0
            events.append(self._event("order.paid", payment=payment, order=order))
        return events

    # --- refunds -------------------------------------------------------------------------------
    def refund(self, payment_id: str, body: dict[str, Any]) -> dict[str, Any]:
        v.reject_unknown(body, REFUND_FIELDS)
        payment = self.payment(payment_id)
        if payment["status"] not in ("captured", "refunded"):
            raise SandboxError(
                "Only captured payments can be refunded", field="payment_id",
                metadata={"payment_id": payment_id},
            )
        remaining = payment["amount"] - payment["amount_refunded"]
        amount = v.integer(body, "amount")
        if amount is None:
            amount = remaining
        if remaining <= 0:
            raise SandboxError(
                "The payment has been fully refunded already", field="amount",
                metadata={"payment_id": payment_id},
            )
        if amount < 1:
            raise SandboxError("The refund amount must be at least 1", field="amount")
        if amount > remaining:
            raise SandboxError(
                "The refund amount provided is greater than amount captured", field="amount",
                metadata={"payment_id": payment_id},
            )
        speed = v.string(body, "speed", max_len=10) or "normal"
        if speed not in ("normal", "optimum"):
            raise SandboxError("The selected speed is invalid.", field="speed")
        refund = refund_entity(
            payment=payment, amount=amount, notes=v.notes(body),
            receipt=v.string(body, "receipt", max_len=40), speed=speed, now=self.now(),
        )
        self.refunds[refund["id"]] = refund
        payment["amount_refunded"] += amount
        if payment["amount_refunded"] == payment["amount"]:
            transition(PAYMENT_TRANSITIONS, "payment", payment, "refunded")
            payment["refund_status"] = "full"
        else:
            payment["refund_status"] = "partial"
        return refund

    def process_refund(self, refund_id: str) -> list[Event]:
        refund = self.refunds[refund_id]
        if refund["status"] != "pending":
            return []
        transition(REFUND_TRANSITIONS, "refund", refund, "processed")
        refund["speed_processed"] = "normal"
        refund["acquirer_data"] = {"arn": digits(12)}
        payment = self.payments[refund["payment_id"]]
        return [self._event("refund.processed", refund=refund, payment=payment)]

    def refund_by_id(self, refund_id: str) -> dict[str, Any]:
        if refund_id not in self.refunds:
            raise not_found(refund_id)
        return self.refunds[refund_id]

    def payment_refunds(self, payment_id: str, query: dict[str, str]) -> list[dict[str, Any]]:
        self.payment(payment_id)
        items = [r for r in self.refunds.values() if r["payment_id"] == payment_id]
        return self._page(items, query)

    # --- helpers -------------------------------------------------------------------------------
    def _page(self, items: list[dict[str, Any]], query: dict[str, str]) -> list[dict[str, Any]]:
        count, skip, start, end = v.page(query)
        if start is not None:
            items = [i for i in items if i["created_at"] >= start]
        if end is not None:
            items = [i for i in items if i["created_at"] <= end]
        newest_first = list(reversed(items))
        return newest_first[skip : skip + count]

    def ledger(self) -> dict[str, list[dict[str, Any]]]:
        return {
            "payments": [
                dict(p, qr_code_id=self.qr_of_payment.get(p["id"])) for p in self.payments.values()
            ],
            "refunds": list(self.refunds.values()),
        }
