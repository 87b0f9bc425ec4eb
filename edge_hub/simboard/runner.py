"""Play a parsed script (``script.parse``) on a ``SimBoard``."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from edge_hub.simboard.board import SimBoard
from edge_hub.simboard.model import Purchase, PurchaseState
from edge_hub.simboard.script import Buy, Ending, Logs, Noise, Reboot, Replug, Sleep, Step, Unplug

logger = logging.getLogger(__name__)

# How long a scripted purchase may wait for the hub past the QR's own expiry.
CLOSE_GRACE_S = 10.0


@dataclass(frozen=True)
class Played:
    """One scripted purchase and whether the story went as written."""

    step: Buy
    purchase: Purchase

    @property
    def as_expected(self) -> bool:
        return self.purchase.state in self.step.expected


async def play(board: SimBoard, steps: list[Step], *, wait_paid_s: float | None = None
               ) -> list[Played]:
    """Run every step in order; returns the purchases made. ``wait_paid_s`` caps how long a
    ``wait_paid`` waits for VEND_APPROVED (default: until the QR expires, plus a grace)."""
    played: list[Played] = []
    for step in steps:
        if isinstance(step, Buy):
            played.append(Played(step, await _buy(board, step, wait_paid_s)))
        elif isinstance(step, Sleep):
            await asyncio.sleep(step.seconds)
        elif isinstance(step, Noise):
            board.set_noise(step.junk_rate, step.flip_rate)
        elif isinstance(step, Reboot):
            await board.reboot()
        elif isinstance(step, Unplug):
            await board.unplug()
            if step.replug_after_s is not None:
                await asyncio.sleep(step.replug_after_s)
                await board.replug()
        elif isinstance(step, Replug):
            await board.replug()
        elif isinstance(step, Logs):
            await board.send_logs(step.count)
    return played


async def _buy(board: SimBoard, step: Buy, wait_paid_s: float | None) -> Purchase:
    if not board.connected:
        await board.wait_connected(CLOSE_GRACE_S)
    p = await board.request(step.product, step.options, step.quantity, plan=step.plan)
    if p.done:
        return p
    assert p.qr is not None
    if step.ending is Ending.CANCEL:
        await asyncio.sleep(step.cancel_after_s)
        if p.state is PurchaseState.SHOWING_QR:
            await board.cancel(p)
        return p
    limit = p.qr.expires_in_s + CLOSE_GRACE_S
    if step.ending is Ending.PAY and wait_paid_s is not None:
        limit = wait_paid_s
    try:
        await board.wait_closed(p, limit)
    except TimeoutError:
        logger.warning("%s: purchase %s still %s after %.1f s", board.name, p.order_ref,
                       p.state.value, limit)
    return p
