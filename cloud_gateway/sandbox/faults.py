"""Fault knobs: what the sandbox does wrong on purpose, by count, by rate (seeded) or per call."""

from __future__ import annotations

import dataclasses
import random
from dataclasses import dataclass, field
from typing import Any, Literal

from .errors import SandboxError

ApiErrorKind = Literal["server", "gateway", "html"]

FAULTS_HELP: dict[str, str] = {
    "seed": "reseeds the random generator behind every *_rate knob",
    "api_error_next": "the next N /v1 calls fail (before any effect)",
    "api_error_rate": "fraction of /v1 calls that fail (before any effect)",
    "api_error_kind": (
        "server = 500 SERVER_ERROR, gateway = 502 GATEWAY_ERROR, html = 502 text/html"
    ),
    "api_slow_next": "the next N /v1 calls answer api_slow_s late (after the effect)",
    "api_slow_rate": "fraction of /v1 calls that answer api_slow_s late (after the effect)",
    "api_slow_s": "how late a slow answer is (make it longer than the client's timeout)",
    "refund_hold_s": "an idempotency key stays in flight this long (a concurrent retry gets 409)",
    "webhook_delay_s": "every webhook batch waits this long before its first delivery",
    "webhook_duplicate_rate": "fraction of events delivered twice under the same event id",
    "webhook_drop_rate": "fraction of events never delivered (only polling finds them)",
    "webhook_reorder_rate": "fraction of batches delivered last event first",
    "webhook_old_secret_rate": "fraction of events signed with old_webhook_secret",
    "pay_twice_rate": "fraction of auto-payments that pay the QR twice",
    "pay_wrong_amount_rate": "fraction of auto-payments with an amount one paise short",
    "pay_fail_first_rate": "fraction of auto-payments sent as payment.failed then captured",
    "pay_after_close_rate": "fraction of auto-payments that still land on an already closed QR",
}


@dataclass
class Faults:
    seed: int | None = None
    api_error_next: int = 0
    api_error_rate: float = 0.0
    api_error_kind: ApiErrorKind = "server"
    api_slow_next: int = 0
    api_slow_rate: float = 0.0
    api_slow_s: float = 0.0
    refund_hold_s: float = 0.0
    webhook_delay_s: float = 0.0
    webhook_duplicate_rate: float = 0.0
    webhook_drop_rate: float = 0.0
    webhook_reorder_rate: float = 0.0
    webhook_old_secret_rate: float = 0.0
    pay_twice_rate: float = 0.0
    pay_wrong_amount_rate: float = 0.0
    pay_fail_first_rate: float = 0.0
    pay_after_close_rate: float = 0.0
    rng: random.Random = field(default_factory=random.Random, repr=False, compare=False)

    def update(self, changes: dict[str, Any]) -> None:
        names = {f.name for f in dataclasses.fields(self)} - {"rng"}
        unknown = sorted(set(changes) - names)
        if unknown:
            raise SandboxError(f"unknown fault knob(s): {', '.join(unknown)}", field=unknown[0])
        for name, value in changes.items():
            _check_knob(name, value)
        for name, value in changes.items():
            setattr(self, name, value)
        if "seed" in changes:
            self.rng.seed(self.seed)

    def snapshot(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "rng"}

    def chance(self, rate: float) -> bool:
        return rate > 0 and self.rng.random() < rate

    def take_api_error(self) -> ApiErrorKind | None:
        if self.api_error_next > 0:
            self.api_error_next -= 1
            return self.api_error_kind
        return self.api_error_kind if self.chance(self.api_error_rate) else None

    def take_api_slow(self) -> float:
        if self.api_slow_next > 0:
            self.api_slow_next -= 1
            return self.api_slow_s
        return self.api_slow_s if self.chance(self.api_slow_rate) else 0.0


def _check_knob(name: str, value: Any) -> None:
    if name == "seed":
        ok = value is None or (isinstance(value, int) and not isinstance(value, bool))
    elif name == "api_error_kind":
        ok = value in ("server", "gateway", "html")
    elif name.endswith("_next"):
        ok = isinstance(value, int) and not isinstance(value, bool) and value >= 0
    elif name.endswith("_rate"):
        ok = isinstance(value, int | float) and not isinstance(value, bool) and 0 <= value <= 1
    else:  # durations in seconds
        ok = isinstance(value, int | float) and not isinstance(value, bool) and value >= 0
    if not ok:
        raise SandboxError(f"fault knob {name} has an invalid value: {value!r}", field=name)
