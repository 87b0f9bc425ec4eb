"""Money: Razorpay webhooks, automatic refunds and the reconciler (INVARIANTS rules 1-4, 12).

`app.create_app` registers `MONEY_ROUTES` and appends `money_ctx` to `cleanup_ctx` after the
core services (it needs the database, the Razorpay adapter, the order service and the command
queue). Modules:

* `webhooks` - POST /webhooks/razorpay: size, signature over the raw bytes, inbox, 200 fast;
* `inbox`    - the stored events and what each event name does; crash recovery;
* `payments` - the payment ledger: one decision per captured payment (paid, or refund why);
* `refunds`  - the refund state machine, derived idempotency keys, list-before-deciding;
* `reconciler` - expiry, polling for lost webhooks, refund retries, unknown-outcome alerts.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from aiohttp import web

from ..http import RouteSpec
from ..keys import CLOCK, COMMANDS, DB, METRICS, ORDERS, RAZORPAY, SETTINGS
from .inbox import Inbox
from .payments import PaymentLedger
from .reconciler import PassReport, Reconciler
from .refunds import RefundReason, Refunds, RefundState, refund_key
from .webhooks import DEFAULT_MAX_BYTES, PATH, WebhookReceiver, signature_ok

WEBHOOKS = web.AppKey("webhooks", WebhookReceiver)
REFUNDS = web.AppKey("refunds", Refunds)
LEDGER = web.AppKey("payment_ledger", PaymentLedger)
INBOX = web.AppKey("webhook_inbox", Inbox)
RECONCILER = web.AppKey("reconciler", Reconciler)


async def razorpay_webhook(request: web.Request) -> web.Response:
    return await request.app[WEBHOOKS].handle(request)


MONEY_ROUTES: tuple[RouteSpec, ...] = (
    RouteSpec("POST", PATH, razorpay_webhook,
              "Razorpay webhook (X-Razorpay-Signature over the raw body; deduped on "
              "X-Razorpay-Event-Id)", auth=False),
)


async def money_ctx(app: web.Application) -> AsyncIterator[None]:
    s, db, clock, metrics = app[SETTINGS], app[DB], app[CLOCK], app[METRICS]
    orders = app[ORDERS]
    refunds = Refunds(db, app[RAZORPAY], orders, metrics, clock,
                      retry_base_s=s.reconcile_interval_s)
    ledger = PaymentLedger(db, orders, app[COMMANDS], refunds)
    inbox = Inbox(db, ledger, refunds)
    secrets = [s.webhook_secret.reveal(), s.webhook_previous_secret.reveal()]
    max_bytes = min(s.max_request_bytes, DEFAULT_MAX_BYTES)
    app[WEBHOOKS] = WebhookReceiver(db, inbox, metrics, secrets, max_bytes=max_bytes,
                                    clock=clock)
    reconciler = Reconciler(db, orders, app[RAZORPAY], ledger, refunds, inbox,
                            interval_s=s.reconcile_interval_s,
                            unknown_outcome_deadline_s=s.unknown_outcome_deadline_s,
                            created_ttl_s=s.qr_ttl_s,
                            clock=clock)
    app[REFUNDS], app[LEDGER], app[INBOX], app[RECONCILER] = refunds, ledger, inbox, reconciler
    orders.add_hook(refunds.on_order_transition)
    task = asyncio.create_task(reconciler.run_forever(), name="reconciler")
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    await refunds.aclose()


__all__ = ["INBOX", "LEDGER", "MONEY_ROUTES", "RECONCILER", "REFUNDS", "WEBHOOKS", "Inbox",
           "PassReport", "PaymentLedger", "Reconciler", "RefundReason", "RefundState", "Refunds",
           "WebhookReceiver", "money_ctx", "refund_key", "signature_ok"]
