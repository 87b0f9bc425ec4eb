"""The sessions' deadlines, checked on a short tick with the monotonic clock: QR expiry, a vend
that never started, a vend that never ended, and how long the hub asks a board for an outcome
before reporting it unknown."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from edge_hub.vend import VendState
from protocol import CancelReason, StatusRequest

if TYPE_CHECKING:
    from edge_hub.hub import Hub

S = VendState


async def tick(hub: Hub) -> None:
    now = time.monotonic()
    for s in list(hub.sessions.values()):
        if s.state is S.AWAITING_PAYMENT and s.qr_expires_mono is not None \
                and now >= s.qr_expires_mono:
            await hub.cancel(s, CancelReason.EXPIRED, "QR expired unpaid",
                               tell_board=True, expired=True)
        elif s.state is S.APPROVED and s.vend_deadline_mono is not None \
                and now >= s.vend_deadline_mono + hub.limits.vend_start_grace_s:
            if await hub.move(s, S.CHECKING, "vend not started by its deadline"):
                s.extra["checking_since"] = now
        elif s.state is S.VENDING and \
                now >= s.extra.get("vending_since", now) + hub.limits.vend_result_timeout_s:
            if await hub.move(s, S.CHECKING, "no vend result in time"):
                s.extra["checking_since"] = now
        elif s.state is S.CHECKING:
            since = s.extra.setdefault("checking_since", now)
            if now >= since + hub.limits.vend_unknown_wait_s:
                await hub.move(s, S.UNKNOWN, "board never told the outcome",
                                 event_data={"outcome": "unknown", "dispensed": 0,
                                             "reason": "no answer from the board"})
            elif now >= s.extra.get("asked_at", 0.0) + hub.limits.status_retry_s:
                s.extra["asked_at"] = now
                hub.send(s.board_uid, StatusRequest())
