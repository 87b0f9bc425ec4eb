"""POST /webhooks/razorpay: verify the signature over the raw bytes, store, act, answer fast.

The order of checks (issue 3 item 8, razorpay.md sections 5-8):
1. size: a body over `max_bytes` is refused (400) before it is read;
2. `raw = await request.read()`, nothing parsed yet;
3. `X-Razorpay-Signature` must be the hex HMAC-SHA256 of `raw` under the current webhook secret
   or, during a rotation, the previous one; compared with `hmac.compare_digest` on bytes. Missing,
   non-ASCII or wrong: 400 `invalid_signature`, nothing stored;
4. `X-Razorpay-Event-Id` is required (Razorpay dedupes on it; the body carries no id);
5. the body must be a JSON object (400 `validation_error` otherwise);
6. one write unit (`Inbox.accept_tx`) stores the raw event and acts on it; a known event id is
   ``duplicate`` (200, no effect). Unknown event types are stored and answered 200.

The answer waits for one group commit; Razorpay API calls (refunds) happen after it, in tasks.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import re
import time
from collections.abc import Callable, Sequence
from typing import Final

from aiohttp import web

from ..db import Database
from ..errors import GatewayError, ValidationError
from ..http import RouteSpec, json_response
from ..metrics import Metrics
from .inbox import Inbox

log = logging.getLogger(__name__)

PATH: Final = "/webhooks/razorpay"
# Razorpay events are a few KiB; anything near this is not one of theirs.
DEFAULT_MAX_BYTES: Final = 64 * 1024
_EVENT_ID_RE = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")
_KEPT_HEADERS: Final = ("Content-Type", "Content-Length", "User-Agent", "X-Razorpay-Event-Id",
                        "X-Razorpay-Signature", "X-Request-Id")


class InvalidSignature(GatewayError):
    status = 400
    code = "invalid_signature"


def signature_ok(raw: bytes, header: str | None, secrets: Sequence[bytes]) -> bool:
    """Constant-time check of `header` against HMAC-SHA256(secret, raw) for each secret."""
    if not header:
        return False
    try:
        given = header.strip().encode("ascii")
    except UnicodeEncodeError:
        return False
    ok = False
    for secret in secrets:  # no early exit: every configured secret costs the same
        expected = hmac.new(secret, raw, hashlib.sha256).hexdigest().encode("ascii")
        ok |= hmac.compare_digest(expected, given)
    return ok


class WebhookReceiver:
    def __init__(self, db: Database, inbox: Inbox, metrics: Metrics, secrets: Sequence[str],
                 *, max_bytes: int = DEFAULT_MAX_BYTES,
                 clock: Callable[[], float] = time.time) -> None:
        usable = [s.encode() for s in secrets if s]
        if not usable:
            raise ValueError("at least one webhook secret is required")
        self._db = db
        self._inbox = inbox
        self._metrics = metrics
        self._secrets = tuple(usable)
        self._max_bytes = max_bytes
        self._clock = clock

    def _count(self, outcome: str) -> None:
        self._metrics.inc("gateway_webhooks_total", {"outcome": outcome})

    def _too_large(self) -> ValidationError:
        self._count("rejected_too_large")
        return ValidationError(invalid={"body": f"larger than {self._max_bytes} bytes"})

    async def handle(self, request: web.Request) -> web.Response:
        if request.content_length is not None and request.content_length > self._max_bytes:
            raise self._too_large()
        try:
            raw = await request.read()
        except web.HTTPRequestEntityTooLarge:
            raise self._too_large() from None
        if len(raw) > self._max_bytes:
            raise self._too_large()
        if not signature_ok(raw, request.headers.get("X-Razorpay-Signature"), self._secrets):
            self._count("rejected_signature")
            log.warning("webhook with a missing or wrong signature refused",
                        extra={"remote": request.remote, "bytes": len(raw)})
            raise InvalidSignature("X-Razorpay-Signature missing or not valid for this body")
        event_id = request.headers.get("X-Razorpay-Event-Id", "")
        if not _EVENT_ID_RE.match(event_id):
            self._count("rejected_malformed")
            raise ValidationError(invalid={"X-Razorpay-Event-Id": "missing or malformed"})
        try:
            body = json.loads(raw)
        except (ValueError, UnicodeDecodeError) as exc:
            self._count("rejected_malformed")
            raise ValidationError(invalid={"body": f"malformed JSON: {exc}"}) from None
        if not isinstance(body, dict):
            self._count("rejected_malformed")
            raise ValidationError(invalid={"body": "must be a JSON object (a Razorpay event)"})
        headers = {h: request.headers[h] for h in _KEPT_HEADERS if h in request.headers}
        received = self._clock()
        outcome = await self._db.write(
            lambda tx: self._inbox.accept_tx(tx, event_id, raw, headers, received, body))
        self._count(outcome)
        log.info("webhook %s: %s", body.get("event"), outcome, extra={"event_id": event_id})
        return json_response({"status": outcome, "event_id": event_id})


__all__ = ["DEFAULT_MAX_BYTES", "PATH", "InvalidSignature", "RouteSpec", "WebhookReceiver",
           "signature_ok"]
