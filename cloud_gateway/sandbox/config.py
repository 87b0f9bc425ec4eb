"""Sandbox settings: one frozen dataclass, changed at run time only through `with_updates`."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from .errors import SandboxError

# name -> help text; every setting is documented here and in README.md
SETTINGS_HELP: dict[str, str] = {
    "key_id": "API key id the SDK must send (Basic auth user)",
    "key_secret": "API key secret the SDK must send (Basic auth password)",
    "account_id": "account id carried in webhook envelopes",
    "merchant_vpa": "payee VPA written into QR image_content (pa=)",
    "merchant_name": "payee name written into QR image_content (pn=) when the QR has no name",
    "webhook_url": "where webhooks are POSTed; None = record events but send nothing",
    "webhook_secret": "current webhook secret (HMAC-SHA256 key for X-Razorpay-Signature)",
    "old_webhook_secret": "previous (rotated) secret, used by the old-secret fault",
    "webhook_timeout_s": "a delivery not answered within this is a failure (Razorpay: 5 s)",
    "webhook_max_attempts": "deliveries per event before giving up (first try included)",
    "webhook_retry_base_s": "first retry delay; doubles per attempt",
    "qr_min_lead_s": "minimum close_by lead time (120 per create.md, 900 per close.md)",
    "qr_max_lead_s": "single-use close_by cap and default (2 h)",
    "auto_pay_after_s": "pay every new QR after this many seconds (demo); None = never",
    "refund_process_after_s": "refunds stay pending this long, then processed; 0 = at once",
    "fee_bps": "Razorpay fee on a payment in basis points of its amount",
    "tax_bps": "tax on the fee in basis points of the fee",
}


@dataclass(frozen=True)
class SandboxConfig:
    key_id: str = "rzp_test_sandbox"
    key_secret: str = field(default="sandbox_secret", repr=False)
    account_id: str = "acc_Sandbox0000001"
    merchant_vpa: str = "vendingco@razorpay"
    merchant_name: str = "Vending Co"
    webhook_url: str | None = None
    webhook_secret: str = field(default="sandbox_webhook_secret", repr=False)
    old_webhook_secret: str = field(default="sandbox_webhook_secret_old", repr=False)
    webhook_timeout_s: float = 5.0
    webhook_max_attempts: int = 5
    webhook_retry_base_s: float = 0.5
    qr_min_lead_s: int = 120
    qr_max_lead_s: int = 7200
    auto_pay_after_s: float | None = None
    refund_process_after_s: float = 0.0
    fee_bps: int = 200
    tax_bps: int = 1800

    def __post_init__(self) -> None:
        for name in ("webhook_timeout_s", "webhook_retry_base_s", "refund_process_after_s"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must not be negative")
        if self.webhook_max_attempts < 1:
            raise ValueError("webhook_max_attempts must be at least 1")
        if not 0 <= self.qr_min_lead_s <= self.qr_max_lead_s:
            raise ValueError("need 0 <= qr_min_lead_s <= qr_max_lead_s")
        if self.auto_pay_after_s is not None and self.auto_pay_after_s < 0:
            raise ValueError("auto_pay_after_s must not be negative")

    def with_updates(self, updates: dict[str, Any]) -> SandboxConfig:
        """A copy with `updates` applied; unknown names or wrong types raise SandboxError."""
        fields = {f.name: f for f in dataclasses.fields(self)}
        unknown = sorted(set(updates) - set(fields))
        if unknown:
            raise SandboxError(f"unknown config setting(s): {', '.join(unknown)}", field=unknown[0])
        for name, value in updates.items():
            current = getattr(self, name)
            optional = name in ("webhook_url", "auto_pay_after_s")
            if value is None and optional:
                continue
            if isinstance(current, float) or name == "auto_pay_after_s":
                ok = isinstance(value, int | float) and not isinstance(value, bool)
            elif isinstance(current, int):
                ok = isinstance(value, int) and not isinstance(value, bool)
            else:
                ok = isinstance(value, str)
            if not ok:
                raise SandboxError(f"config setting {name} has the wrong type", field=name)
        try:
            return dataclasses.replace(self, **updates)
        except ValueError as exc:
            raise SandboxError(str(exc)) from exc

    def public(self) -> dict[str, Any]:
        """The settings without secrets, for GET /_sim/config."""
        hidden = {"key_secret", "webhook_secret", "old_webhook_secret"}
        return {k: v for k, v in dataclasses.asdict(self).items() if k not in hidden}
