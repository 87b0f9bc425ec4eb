"""Razorpay entity shapes (written from the documented field lists), ids and transition tables."""

from __future__ import annotations

import secrets
import string
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

_ALPHABET = string.ascii_letters + string.digits

# One transition table per state machine; nobody assigns a status without consulting it.
QR_TRANSITIONS: dict[str, frozenset[str]] = {
    "active": frozenset({"closed"}),
    "closed": frozenset(),
}
PAYMENT_TRANSITIONS: dict[str, frozenset[str]] = {
    "created": frozenset({"authorized", "failed"}),
    "authorized": frozenset({"captured", "failed"}),
    # UPI: a failed payment can still be authorised late and captured
    "failed": frozenset({"captured"}),
    "captured": frozenset({"refunded"}),
    "refunded": frozenset(),
}
REFUND_TRANSITIONS: dict[str, frozenset[str]] = {
    "pending": frozenset({"processed", "failed"}),
    "processed": frozenset(),
    "failed": frozenset(),
}
ORDER_TRANSITIONS: dict[str, frozenset[str]] = {
    "created": frozenset({"attempted", "paid"}),
    "attempted": frozenset({"paid"}),
    "paid": frozenset(),
}


class TransitionError(Exception):
    def __init__(self, kind: str, current: str, target: str) -> None:
        super().__init__(f"{kind} cannot go from {current} to {target}")
        self.current = current
        self.target = target


def transition(
    table: dict[str, frozenset[str]], kind: str, entity: dict[str, Any], to: str
) -> None:
    current = entity["status"]
    if to not in table[current]:
        raise TransitionError(kind, current, to)
    entity["status"] = to


def new_id(prefix: str) -> str:
    """prefix + 14 random letters/digits (Razorpay ids look like pay_29QQoUBi66xm2f)."""
    return prefix + "".join(_ALPHABET[b % len(_ALPHABET)] for b in secrets.token_bytes(14))


def digits(n: int) -> str:
    return "".join(str(b % 10) for b in secrets.token_bytes(n))


def rupees(paise: int) -> str:
    """2500 -> "25.00", with integer arithmetic only."""
    whole, part = divmod(paise, 100)
    return f"{whole}.{part:02d}"


def upi_uri(*, vpa: str, name: str, amount: int | None, ref: str) -> str:
    parts = [f"pa={quote(vpa, safe='@.')}", f"pn={quote(name, safe='')}"]
    if amount is not None:
        parts.append(f"am={rupees(amount)}")
    parts += ["cu=INR", f"tr={ref}"]
    return "upi://pay?" + "&".join(parts)


def notes_out(notes: dict[str, str]) -> dict[str, str] | list[Any]:
    """Razorpay is PHP: an empty notes object comes back as []."""
    return dict(notes) if notes else []


@dataclass(frozen=True)
class PayerDetails:
    vpa: str = "customer@okbank"
    email: str = "void@razorpay.com"
    contact: str = "+919000090000"


def payment_entity(
    *,
    amount: int,
    notes: dict[str, str],
    payer: PayerDetails,
    description: str | None,
    order_id: str | None,
    fee_bps: int,
    tax_bps: int,
    now: int,
) -> dict[str, Any]:
    fee = amount * fee_bps // 10_000
    tax = fee * tax_bps // 10_000
    return {
        "id": new_id("pay_"),
        "entity": "payment",
        "amount": amount,
        "currency": "INR",
        "status": "created",
        "order_id": order_id,
        "invoice_id": None,
        "international": False,
        "method": "upi",
        "amount_refunded": 0,
        "refund_status": None,
        "captured": False,
        "description": description,
        "card_id": None,
        "bank": None,
        "wallet": None,
        "vpa": payer.vpa,
        "email": payer.email,
        "contact": payer.contact,
        "customer_id": None,
        "notes": notes_out(notes),
        "fee": fee,
        "tax": tax,
        "error_code": None,
        "error_description": None,
        "error_source": None,
        "error_step": None,
        "error_reason": None,
        "acquirer_data": {"rrn": digits(12)},
        "upi": {"payer_account_type": "bank_account", "vpa": payer.vpa, "flow": "intent"},
        "created_at": now,
    }


def set_failed(payment: dict[str, Any]) -> None:
    payment.update(
        error_code="BAD_REQUEST_ERROR",
        error_description="Payment was unsuccessful as the payer's bank did not respond.",
        error_source="bank",
        error_step="payment_authorization",
        error_reason="payment_timed_out",
    )


def clear_error(payment: dict[str, Any]) -> None:
    for name in ("code", "description", "source", "step", "reason"):
        payment[f"error_{name}"] = None


def refund_entity(
    *, payment: dict[str, Any], amount: int, notes: dict[str, str], receipt: str | None,
    speed: str, now: int,
) -> dict[str, Any]:
    return {
        "id": new_id("rfnd_"),
        "entity": "refund",
        "amount": amount,
        "currency": payment["currency"],
        "payment_id": payment["id"],
        "notes": notes_out(notes),
        "receipt": receipt,
        "acquirer_data": {"arn": None},
        "created_at": now,
        "batch_id": None,
        "status": "pending",
        "speed_processed": None,
        "speed_requested": speed,
    }


def collection(items: list[dict[str, Any]]) -> dict[str, Any]:
    return {"entity": "collection", "count": len(items), "items": items}
