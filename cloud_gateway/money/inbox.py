"""The webhook inbox: every verified Razorpay event is stored, then acted on from its row.

`Inbox.accept_tx(tx, event_id, raw, headers, received_ts, body)` is the webhook route's write
unit: it inserts the raw event (`UNIQUE(event_id)`: a redelivery returns ``"duplicate"`` and
changes nothing) and then, under a SAVEPOINT in the same transaction, acts on it. The row is
written first and commits with the effects or alone: if acting raises, only the effects roll
back, the row keeps ``processed_ts IS NULL`` plus the error, and `recover()` (the reconciler, at
start and on every pass) acts on it again. A crash between persisting and acting therefore loses
nothing, and the 2xx answer waits for one group commit only.

Event names -> actions: `qr_code.credited`, `payment.captured|authorized|failed`, `order.paid`
-> `PaymentLedger.apply_tx`; `refund.processed|failed|created` -> `Refunds.on_refund_entity_tx`
(and the payment entity they carry); anything else is stored with outcome ``ignored``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import Any, Final

from ..db import Database, Tx
from .payments import MalformedEvent, PaymentLedger
from .refunds import Refunds

log = logging.getLogger(__name__)

PAYMENT_EVENTS: Final = frozenset(
    {"payment.captured", "payment.authorized", "payment.failed", "order.paid"})
REFUND_EVENTS: Final = frozenset({"refund.processed", "refund.failed", "refund.created"})


def _entity(body: Mapping[str, Any], name: str) -> object:
    payload = body.get("payload")
    if not isinstance(payload, dict):
        raise MalformedEvent("event without a payload object")
    wrapper = payload.get(name)
    if not isinstance(wrapper, dict) or "entity" not in wrapper:
        raise MalformedEvent(f"event without payload.{name}.entity")
    return wrapper["entity"]


class Inbox:
    def __init__(self, db: Database, ledger: PaymentLedger, refunds: Refunds) -> None:
        self._db = db
        self._ledger = ledger
        self._refunds = refunds

    # --- acting on one event ------------------------------------------------------------------
    def act_tx(self, tx: Tx, body: Mapping[str, Any]) -> str:
        """Apply one event's effects; returns the outcome. Raises MalformedEvent."""
        name = body.get("event")
        if name == "qr_code.credited":
            qr = _entity(body, "qr_code")
            qr_id = qr.get("id") if isinstance(qr, dict) else None
            return self._ledger.apply_tx(tx, _entity(body, "payment"), "webhook",
                                         qr_id if isinstance(qr_id, str) else None)
        if name in PAYMENT_EVENTS:
            return self._ledger.apply_tx(tx, _entity(body, "payment"), "webhook")
        if name in REFUND_EVENTS:
            refund = _entity(body, "refund")
            if not isinstance(refund, dict):
                raise MalformedEvent("refund entity is not an object")
            payload = body.get("payload")
            if isinstance(payload, dict) and "payment" in payload:
                self._ledger.apply_tx(tx, _entity(body, "payment"), "webhook")
            return self._refunds.on_refund_entity_tx(tx, refund)
        return "ignored"

    def process_row_tx(self, tx: Tx, row_id: int, body: Mapping[str, Any]) -> str:
        tx.execute("SAVEPOINT webhook_effect")
        try:
            outcome = self.act_tx(tx, body)
        except MalformedEvent as exc:
            tx.execute("ROLLBACK TO webhook_effect")
            outcome = "invalid"
            log.warning("webhook event not usable: %s", exc, extra={"inbox_id": row_id})
            tx.execute("UPDATE webhook_inbox SET error = ? WHERE id = ?", (str(exc), row_id))
        except Exception as exc:  # a bug or a broken row: keep the event for recover()
            tx.execute("ROLLBACK TO webhook_effect")
            tx.execute("RELEASE webhook_effect")
            log.exception("webhook event failed; kept for a retry", extra={"inbox_id": row_id})
            tx.execute("UPDATE webhook_inbox SET error = ? WHERE id = ?",
                       (f"{type(exc).__name__}: {exc}"[:500], row_id))
            return "error"
        tx.execute("RELEASE webhook_effect")
        tx.execute("UPDATE webhook_inbox SET processed_ts = ?, outcome = ? WHERE id = ?",
                   (tx.now, outcome, row_id))
        return outcome

    def accept_tx(self, tx: Tx, event_id: str, raw: bytes, headers: Mapping[str, str],
                  received_ts: float, body: Mapping[str, Any]) -> str:
        name = body.get("event")
        row = tx.one("INSERT INTO webhook_inbox (event_id, event, raw, headers, received_ts) "
                     "VALUES (?, ?, ?, ?, ?) ON CONFLICT (event_id) DO NOTHING RETURNING id",
                     (event_id, name if isinstance(name, str) else None, raw,
                      json.dumps(dict(headers)), received_ts))
        if row is None:
            return "duplicate"
        return self.process_row_tx(tx, int(row["id"]), body)

    # --- recovery -----------------------------------------------------------------------------
    def unprocessed(self, limit: int = 500) -> list[int]:
        rows = self._db.query("SELECT id FROM webhook_inbox WHERE processed_ts IS NULL "
                              "ORDER BY id LIMIT ?", (limit,))
        return [int(r["id"]) for r in rows]

    def _recover_tx(self, tx: Tx, row_id: int) -> str:
        row = tx.one("SELECT raw, processed_ts FROM webhook_inbox WHERE id = ?", (row_id,))
        if row is None or row["processed_ts"] is not None:
            return "already_processed"
        try:
            body = json.loads(row["raw"])
        except ValueError:
            body = None
        if not isinstance(body, dict):
            tx.execute("UPDATE webhook_inbox SET processed_ts = ?, outcome = 'invalid' "
                       "WHERE id = ?", (tx.now, row_id))
            return "invalid"
        return self.process_row_tx(tx, row_id, body)

    async def _recover_one(self, row_id: int) -> str:
        return await self._db.write(lambda tx: self._recover_tx(tx, row_id))

    async def recover(self) -> int:
        """Act on stored events that were never processed; returns how many were tried."""
        ids = self.unprocessed()
        for row_id in ids:
            outcome = await self._recover_one(row_id)
            log.info("inbox event recovered: %s", outcome, extra={"inbox_id": row_id})
        return len(ids)


__all__ = ["Inbox", "MalformedEvent"]
