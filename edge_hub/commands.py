"""Commands pushed by the gateway, applied to the vend sessions.

A command's effect and the new cursor commit in one transaction; only then is the command acked
(by the push channel) and any frame it causes sent. ``payment_confirmed`` is where rule 1 and
rule 7 are kept: the payment must be exactly the order's amount and currency and arrive before the
order's vend deadline (turned into a monotonic deadline on receipt), or the order is reported not
vended and the gateway refunds it.
"""

from __future__ import annotations

import logging
import os
import time
from typing import TYPE_CHECKING, Any

from edge_hub.store import StaleTransition
from edge_hub.store.store import CURSOR_KEY, Session
from edge_hub.vend import ACTIVE, CANCEL_CODES, IN_VEND, InvalidTransition, VendState
from protocol import Cancel, CancelReason, VendApproved
from protocol.hub_api import CancelReasonName, Command, CommandType

if TYPE_CHECKING:
    from edge_hub.hub import Hub

log = logging.getLogger(__name__)
S = VendState
async def apply_command(hub: Hub, cmd: Command) -> None:
    """Apply one pushed command; its effect and the new cursor commit together."""
    seq = int(cmd["seq"])
    order_id = cmd.get("order_id")
    s = hub.session_for_order(order_id) if order_id else None
    if s is None and order_id:
        s = await hub.store.session_by_order(order_id)
    kind = cmd["type"]
    frame: Any = None
    try:
        async with hub.store.transaction() as tx:
            await hub.store.set_meta(tx, CURSOR_KEY, str(seq))
            if s is None:
                log.info("command %d (%s) for unknown order %s: nothing to do", seq, kind,
                         order_id)
            elif kind == CommandType.PAYMENT_CONFIRMED:
                frame = await _payment_confirmed(hub, tx, s, cmd["data"])
            elif kind == CommandType.ORDER_CANCELLED and s.state in (S.ORDERING,
                                                                     S.AWAITING_PAYMENT):
                reason = str(cmd["data"].get("reason", CancelReasonName.HUB.value))
                code = CANCEL_CODES.get(reason, CancelReason.OPERATOR)
                target = S.EXPIRED if code is CancelReason.EXPIRED else S.CANCELLED
                await hub.store.transition(s, target, f"gateway cancelled ({reason})",
                                            tx=tx, event_data={"reason": reason})
                frame = Cancel(order_ref=s.order_id or "", reason=code)
    except (StaleTransition, InvalidTransition) as e:
        log.warning("command %d (%s): %s; recorded as applied", seq, kind, e)
        frame = None
        async with hub.store.transaction() as tx:
            await hub.store.set_meta(tx, CURSOR_KEY, str(seq))
    if s is not None:
        if s.state not in ACTIVE:
            hub.sessions.pop(s.id, None)
        hub.notify({"kind": "order", "order_id": s.order_id, "state": s.state.value})
        hub.wake_sender()
    if frame is not None and s is not None:
        if isinstance(frame, VendApproved):
            s.extra["approved_at"] = time.monotonic()
        hub.send(s.board_uid, frame)

async def _payment_confirmed(hub: Hub, tx: Any, s: Session, data: dict[str, Any]) -> Any:
    now = time.monotonic()
    if s.state in IN_VEND or s.state in (S.DONE, S.FAILED, S.NOT_VENDED, S.UNKNOWN):
        log.info("order %s: payment confirmed again (state %s): no effect", s.order_id,
                 s.state)
        return None
    problem = None
    amount, currency = data.get("amount"), data.get("currency")
    deadline_in = data.get("vend_deadline_in_s")
    board = hub.boards.get(s.board_uid)
    if s.state is not S.AWAITING_PAYMENT:
        problem = f"payment arrived after the order was {s.state}"
    elif not isinstance(amount, int) or isinstance(amount, bool) or amount != s.amount \
            or currency != s.currency:
        problem = f"paid {amount!r} {currency!r}, order is {s.amount} {s.currency}"
    elif not isinstance(deadline_in, int | float) or deadline_in <= 0:
        problem = "vend deadline already passed"
    elif board is None or board.conn is None:
        problem = "board not connected"
    elif not board.in_service:
        problem = "board out of service"
    if problem is not None:
        showing_qr = s.state is S.AWAITING_PAYMENT
        await hub.store.transition(s, S.NOT_VENDED, problem, tx=tx, dispensed=0,
                                    event_data={"outcome": "not_vended", "dispensed": 0,
                                                "reason": problem})
        log.warning("order %s not vended: %s", s.order_id, problem)
        # A board still showing the QR is told the order is over (the gateway refunds).
        return Cancel(order_ref=s.order_id or "", reason=CancelReason.PAYMENT_FAILED) \
            if showing_qr else None
    assert isinstance(deadline_in, int | float)
    auth = os.urandom(8)
    await hub.store.transition(s, S.APPROVED, "payment confirmed", tx=tx,
                                payment_id=str(data.get("payment_id", "")),
                                vend_deadline_mono=now + float(deadline_in), vend_auth=auth)
    return VendApproved(order_ref=s.order_id or "", auth=auth, quantity=s.quantity,
                        deadline_s=max(1, min(int(deadline_in), 0xFFFF)))
