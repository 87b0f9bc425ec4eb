"""Webhook delivery: Razorpay's envelope, PHP-style escaped `/`, HMAC signature, retries, faults.

Each call that causes events hands them over as one batch. A batch task waits the configured delay,
then sends each event's first attempt in order (reversed under the reorder fault). A failed attempt
(non-2xx, no answer within webhook_timeout_s, connection error) is retried in its own task with
exponential backoff, so later events are not held up, just as Razorpay's retries overtake nothing.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import aiohttp

from .config import SandboxConfig
from .entities import new_id
from .errors import SandboxError
from .faults import Faults
from .store import Event

log = logging.getLogger(__name__)

MAX_LOG = 10_000
USER_AGENT = "Razorpay-Webhook/v1 (sandbox)"


def serialise(envelope: dict[str, Any]) -> bytes:
    """Compact JSON with `/` escaped as `\\/` (as PHP's json_encode does): a receiver that
    re-serialises the body before verifying the signature gets a different byte string."""
    return json.dumps(envelope, separators=(",", ":")).replace("/", "\\/").encode()


def sign(secret: str, raw: bytes) -> str:
    return hmac.new(secret.encode(), raw, hashlib.sha256).hexdigest()


@dataclass(frozen=True)
class WebhookOverrides:
    """Per-call fault choices; None = decide by the fault rates."""

    drop: bool | None = None
    duplicates: int | None = None  # extra deliveries under the same event id
    reorder: bool | None = None
    delay_s: float | None = None
    old_secret: bool | None = None

    @classmethod
    def parse(cls, value: Any) -> WebhookOverrides:
        if value is None:
            return cls()
        if not isinstance(value, dict):
            raise SandboxError("webhooks must be an object", field="webhooks")
        allowed = {"drop", "duplicates", "reorder", "delay_s", "old_secret"}
        unknown = sorted(set(value) - allowed)
        if unknown:
            names = ", ".join(unknown)
            raise SandboxError(f"unknown webhooks option(s): {names}", field="webhooks")
        for name in ("drop", "reorder", "old_secret"):
            if name in value and not isinstance(value[name], bool):
                raise SandboxError(f"webhooks.{name} must be a boolean", field="webhooks")
        dup = value.get("duplicates")
        if dup is not None and (isinstance(dup, bool) or not isinstance(dup, int) or dup < 0):
            raise SandboxError("webhooks.duplicates must be an int >= 0", field="webhooks")
        delay = value.get("delay_s")
        if delay is not None and (
            isinstance(delay, bool) or not isinstance(delay, int | float) or delay < 0
        ):
            raise SandboxError("webhooks.delay_s must be a number >= 0", field="webhooks")
        return cls(**value)


@dataclass
class _Outgoing:
    event_id: str
    name: str
    body: bytes
    old_secret: bool


class WebhookDispatcher:
    def __init__(
        self, config: Callable[[], SandboxConfig], faults: Faults, session: aiohttp.ClientSession
    ) -> None:
        self._config = config
        self._faults = faults
        self._session = session
        self._tasks: set[asyncio.Task[None]] = set()
        self._sent: OrderedDict[str, _Outgoing] = OrderedDict()  # newest MAX_LOG, for redelivery
        self.deliveries: deque[dict[str, Any]] = deque(maxlen=MAX_LOG)

    # --- public --------------------------------------------------------------------------------
    def emit(self, events: list[Event], overrides: WebhookOverrides | None = None) -> list[str]:
        """Queue a batch; returns the event ids in causal order."""
        if not events:
            return []
        o = overrides or WebhookOverrides()
        f = self._faults
        cfg = self._config()
        batch = []
        for event in events:
            envelope = {
                "entity": "event",
                "account_id": cfg.account_id,
                "event": event.name,
                "contains": list(event.payload),
                "payload": {name: {"entity": e} for name, e in event.payload.items()},
                "created_at": event.created_at,
            }
            old = o.old_secret if o.old_secret is not None else f.chance(f.webhook_old_secret_rate)
            out = _Outgoing(new_id("evt_"), event.name, serialise(envelope), old)
            self._sent[out.event_id] = out
            if len(self._sent) > MAX_LOG:
                self._sent.popitem(last=False)
            batch.append(out)
        ids = [out.event_id for out in batch]
        reorder = o.reorder if o.reorder is not None else f.chance(f.webhook_reorder_rate)
        if reorder:
            batch.reverse()
        plan: list[tuple[_Outgoing, int]] = []
        for out in batch:
            drop = o.drop if o.drop is not None else f.chance(f.webhook_drop_rate)
            if drop:
                self._record(out, attempt=0, status=None, outcome="dropped")
                continue
            if o.duplicates is not None:
                copies = 1 + o.duplicates
            else:
                copies = 2 if f.chance(f.webhook_duplicate_rate) else 1
            plan.append((out, copies))
        delay = o.delay_s if o.delay_s is not None else f.webhook_delay_s
        self._spawn(self._run_batch(plan, delay))
        return ids

    def redeliver(self, event_id: str) -> None:
        out = self._sent.get(event_id)
        if out is None:
            raise SandboxError("no such event", field="event_id")
        self._spawn(self._run_batch([(out, 1)], 0.0))

    def event_body(self, event_id: str) -> bytes | None:
        out = self._sent.get(event_id)
        return out.body if out else None

    async def drain(self) -> None:
        """Wait until no delivery or retry is pending."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def aclose(self) -> None:
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    # --- internals -----------------------------------------------------------------------------
    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run_batch(self, plan: list[tuple[_Outgoing, int]], delay: float) -> None:
        if delay > 0:
            await asyncio.sleep(delay)
        for out, copies in plan:
            for _ in range(copies):
                if not await self._attempt(out, 1):
                    self._spawn(self._retry(out))

    async def _retry(self, out: _Outgoing) -> None:
        cfg = self._config()
        wait = cfg.webhook_retry_base_s
        for attempt in range(2, cfg.webhook_max_attempts + 1):
            await asyncio.sleep(wait)
            wait *= 2
            if await self._attempt(out, attempt):
                return
        log.warning("webhook %s %s abandoned after %d attempts", out.name, out.event_id,
                    cfg.webhook_max_attempts)

    async def _attempt(self, out: _Outgoing, attempt: int) -> bool:
        cfg = self._config()
        if cfg.webhook_url is None:
            self._record(out, attempt=attempt, status=None, outcome="no_webhook_url")
            return True
        secret = cfg.old_webhook_secret if out.old_secret else cfg.webhook_secret
        headers = {
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            "X-Razorpay-Event-Id": out.event_id,
            "X-Razorpay-Signature": sign(secret, out.body),
        }
        timeout = aiohttp.ClientTimeout(total=cfg.webhook_timeout_s)
        try:
            async with self._session.post(
                cfg.webhook_url, data=out.body, headers=headers, timeout=timeout
            ) as resp:
                await resp.read()
                ok = 200 <= resp.status < 300
                self._record(out, attempt=attempt, status=resp.status,
                             outcome="delivered" if ok else "failed")
                return ok
        except (aiohttp.ClientError, TimeoutError) as exc:
            self._record(out, attempt=attempt, status=None, outcome=f"error: {type(exc).__name__}")
            return False

    def _record(self, out: _Outgoing, *, attempt: int, status: int | None, outcome: str) -> None:
        self.deliveries.append({
            "event_id": out.event_id,
            "event": out.name,
            "attempt": attempt,
            "status": status,
            "outcome": outcome,
            "signed_with": "old" if out.old_secret else "current",
        })
