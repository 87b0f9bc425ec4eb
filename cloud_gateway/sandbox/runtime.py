"""The running sandbox: state, faults, webhooks and timers (auto-pay, refund processing)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Coroutine
from typing import Any

import aiohttp

from .config import SandboxConfig
from .errors import SandboxError
from .faults import Faults
from .idempotency import IdempotencyKeys
from .store import PayOptions, Store
from .webhooks import WebhookDispatcher, WebhookOverrides

log = logging.getLogger(__name__)


class Sandbox:
    def __init__(self, config: SandboxConfig, session: aiohttp.ClientSession) -> None:
        self.faults = Faults()
        self.store = Store(config=config, clock=time.time)
        self.webhooks = WebhookDispatcher(lambda: self.store.config, self.faults, session)
        self.idempotency = IdempotencyKeys()
        self._timers: set[asyncio.Task[None]] = set()

    @property
    def config(self) -> SandboxConfig:
        return self.store.config

    def reconfigure(self, updates: dict[str, Any]) -> SandboxConfig:
        self.store.config = self.store.config.with_updates(updates)
        return self.store.config

    # --- actions with side effects -------------------------------------------------------------
    def pay_qr(
        self, qr_id: str, options: PayOptions, times: int = 1,
        overrides: WebhookOverrides | None = None,
    ) -> tuple[list[dict[str, Any]], list[str]]:
        """Pay a QR `times` times; returns the payments and the ids of the events they caused."""
        payments, event_ids = [], []
        for _ in range(times):
            payment, events = self.store.pay_qr(qr_id, options)
            event_ids += self.webhooks.emit(events, overrides)
            payments.append(payment)
            log.info("sandbox: %s paid %d paise on %s", payment["id"], payment["amount"], qr_id)
        return payments, event_ids

    def qr_created(self, qr: dict[str, Any]) -> None:
        delay = self.config.auto_pay_after_s
        if delay is not None:
            self._spawn(self._auto_pay(qr["id"], delay))

    def refund_created(self, refund: dict[str, Any]) -> None:
        delay = self.config.refund_process_after_s
        if delay <= 0:
            self.webhooks.emit(self.store.process_refund(refund["id"]))
        else:
            self._spawn(self._process_refund_later(refund["id"], delay))

    async def drain(self) -> None:
        """Wait for pending timers and webhook deliveries (tests, demo shutdown)."""
        while self._timers:
            await asyncio.gather(*list(self._timers), return_exceptions=True)
        await self.webhooks.drain()

    async def aclose(self) -> None:
        timers = list(self._timers)
        for task in timers:
            task.cancel()
        await asyncio.gather(*timers, return_exceptions=True)
        await self.webhooks.aclose()

    # --- timers --------------------------------------------------------------------------------
    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._timers.add(task)
        task.add_done_callback(self._timers.discard)

    async def _auto_pay(self, qr_id: str, delay: float) -> None:
        await asyncio.sleep(delay)
        f = self.faults
        qr = self.store.qr(qr_id)
        if qr["status"] != "active" and not f.chance(f.pay_after_close_rate):
            log.info("sandbox: auto-pay skipped, %s is %s", qr_id, qr["status"])
            return
        amount = qr["payment_amount"]
        if amount is None:
            return
        if f.chance(f.pay_wrong_amount_rate):
            amount -= 1
        options = PayOptions(amount=max(amount, 1), fail_first=f.chance(f.pay_fail_first_rate))
        times = 2 if f.chance(f.pay_twice_rate) else 1
        try:
            self.pay_qr(qr_id, options, times)
        except SandboxError as exc:
            log.warning("sandbox: auto-pay of %s refused: %s", qr_id, exc.description)

    async def _process_refund_later(self, refund_id: str, delay: float) -> None:
        await asyncio.sleep(delay)
        self.webhooks.emit(self.store.process_refund(refund_id))
