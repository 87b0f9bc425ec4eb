"""Sends the outbox to the gateway: in order, in batches, pipelined, deleted only once acked.

The money lane goes first (a vend result is never stuck behind a telemetry backlog); each lane is
sent in id order; up to ``pipeline`` batches are in flight, and two batches in flight never hold
events of the same order. Each event's id is its idempotency key, so a batch resent after a lost
answer is harmless. Failures back off with jitter.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from edge_hub.backoff import Backoff
from edge_hub.store.outbox import Lane, Outbox, OutboxRow
from edge_hub.supervisor import BEAT_EVERY_S
from edge_hub.uplink.client import GatewayClient, GatewayError
from protocol.hub_api import EventStatus

log = logging.getLogger(__name__)

ACKED = frozenset({EventStatus.APPLIED, EventStatus.DUPLICATE, EventStatus.IGNORED})


class OutboxSender:
    def __init__(self, outbox: Outbox, client: GatewayClient, *, batch: int, pipeline: int,
                 backoff: Backoff, beat: Callable[[], None] = lambda: None,
                 idle_wake_s: float = 1.0) -> None:
        self.outbox = outbox
        self.client = client
        self.batch = batch
        self.pipeline = pipeline
        self.backoff = backoff
        self._beat = beat
        self._wake = asyncio.Event()
        self._draining = asyncio.Lock()
        self.idle_wake_s = idle_wake_s
        self.sent = 0
        self.rejected = 0

    def wake(self) -> None:
        self._wake.set()

    async def run(self) -> None:
        while True:
            self._beat()
            try:
                await self.drain()
                self.backoff.reset()
            except GatewayError as e:
                delay = self.backoff.next_delay()
                log.debug("outbox send failed (%s); retrying in %.2f s", e, delay)
                await self._sleep(delay)
                continue
            await self._sleep(self.idle_wake_s)

    async def _sleep(self, delay: float) -> None:
        """Wait for new events or the delay, reporting progress every second meanwhile."""
        self._wake.clear()
        end = time.monotonic() + delay
        while not self._wake.is_set():
            left = end - time.monotonic()
            if left <= 0:
                return
            self._beat()
            try:
                async with asyncio.timeout(min(BEAT_EVERY_S, left)):
                    await self._wake.wait()
            except TimeoutError:
                pass

    async def drain(self) -> int:
        """Send everything there is now; returns the number of events acknowledged.
        One drain at a time (the status page's "sync now" waits for the running one)."""
        async with self._draining:
            return await self._drain()

    async def _drain(self) -> int:
        await self.outbox.flush_telemetry()
        await self.outbox.enforce_limits()
        after = {lane: 0 for lane in Lane}
        busy: dict[asyncio.Task[list[OutboxRow]], set[str]] = {}
        try:
            return await self._pump(after, busy)
        finally:
            for task in busy:  # cancelled mid-drain (shutdown): no batch is left running
                task.cancel()
            await asyncio.gather(*busy, return_exceptions=True)

    async def _pump(self, after: dict[Lane, int],
                    busy: dict[asyncio.Task[list[OutboxRow]], set[str]]) -> int:
        failure: GatewayError | None = None
        acked = 0
        while True:
            while failure is None and len(busy) < self.pipeline:
                keys = set().union(*busy.values()) if busy else set()
                rows: list[OutboxRow] = []
                for lane in (Lane.MONEY, Lane.TELEMETRY):
                    rows = await self.outbox.next_batch(lane, after[lane], self.batch, keys)
                    if rows:
                        after[lane] = rows[-1].id
                        break
                if not rows:
                    break
                task = asyncio.create_task(self._send(rows))
                busy[task] = {r.order_key for r in rows if r.order_key is not None}
            if not busy:
                break
            done, _ = await asyncio.wait(busy, return_when=asyncio.FIRST_COMPLETED)
            ok: list[OutboxRow] = []
            for task in done:
                del busy[task]
                try:
                    ok.extend(task.result())
                except GatewayError as e:
                    failure = failure or e
            # Deleted only now that the gateway acknowledged each of them.
            await self.outbox.delete(ok)
            acked += len(ok)
            self.sent += len(ok)
            self._beat()
        if failure is not None:
            raise failure
        return acked

    async def _send(self, rows: list[OutboxRow]) -> list[OutboxRow]:
        ans = await self.client.post_events([r.body for r in rows])
        by_id = {r["id"]: r for r in ans.get("results", [])}
        done: list[OutboxRow] = []
        for row in rows:
            res = by_id.get(row.event_id)
            if res is None:
                continue  # not answered: stays in the outbox, resent later
            status = res.get("status")
            if status == EventStatus.REJECTED:
                self.rejected += 1
                log.error("gateway rejected event %s (%s): %s; dropping it", row.event_id,
                          row.lane, res.get("error", "no reason given"))
            elif status not in ACKED:
                continue
            done.append(row)
        return done
