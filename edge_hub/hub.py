"""The hub's core: boards, their vend sessions, and the purchase from order to vend result.

Rules this module keeps (docs/hub.md, INVARIANTS):
- every session transition is committed (with audit row and outbox event) before any frame that
  depends on it is sent;
- only MAC-authenticated messages (``authenticated=True``) decide an order, a cancel or a vend
  outcome; HELLO only names the board (and so its key);
- a vend is approved only for a confirmed payment of exactly the order's amount and currency,
  before the order's monotonic vend deadline; otherwise it is reported not vended;
- an outcome the hub cannot learn from the board is reported unknown, never guessed.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sqlite3
import time
from collections.abc import Callable
from typing import Any

from edge_hub import commands, deadlines
from edge_hub.boards import BoardInfo
from edge_hub.clock import Clock
from edge_hub.config import HubConfig
from edge_hub.ports import BoardConnection
from edge_hub.qr import render_qr
from edge_hub.store import Session, StaleTransition, Store
from edge_hub.uplink.client import GatewayClient, GatewayError, GatewayUnavailable
from edge_hub.vend import ACTIVE, CANCEL_NAMES, IN_VEND, InvalidTransition, VendState
from protocol import (
    BoardState,
    Cancel,
    CancelReason,
    Hello,
    HelloAck,
    Log,
    OrderRejected,
    OrderRequest,
    PaymentQr,
    RejectReason,
    Status,
    StatusRequest,
    VendApproved,
    VendOutcome,
    VendResult,
    VendStarted,
    derive_board_key,
)
from protocol.events import AuthFailed, LinkEvent, MessageReceived, PeerRestarted, SendFailed
from protocol.hub_api import CancelReasonName, Command, CreateOrder, EventType

log = logging.getLogger(__name__)

PROTOCOL_VERSION = 1
S = VendState
REJECT_BY_CODE = {"unknown_product": RejectReason.UNKNOWN_PRODUCT,
                  "sold_out": RejectReason.SOLD_OUT, "unavailable": RejectReason.SOLD_OUT,
                  "not_found": RejectReason.UNKNOWN_PRODUCT}


class Hub:
    def __init__(self, config: HubConfig, store: Store, client: GatewayClient, clock: Clock,
                 notify: Callable[[dict[str, Any]], None] = lambda ev: None) -> None:
        self.config = config
        self.store = store
        self.client = client
        self.clock = clock
        self.limits = config.limits
        self.notify = notify
        self.boards: dict[str, BoardInfo] = {}
        self.sessions: dict[int, Session] = {}  # active sessions only
        self._tasks: set[asyncio.Task[None]] = set()
        self.counters = {"orders": 0, "rejected_offline": 0, "unauthenticated_dropped": 0}
        self.wake_sender: Callable[[], None] = lambda: None

    # --- start / resume ----------------------------------------------------------------------
    async def load(self) -> None:
        for row in await self.store.boards():
            self.boards[row["board_uid"]] = BoardInfo.from_row(row)
        for s in await self.store.active_sessions():
            self.sessions[s.id] = s
            await self._resume(s)

    async def _resume(self, s: Session) -> None:
        """After a restart: nothing is assumed about what happened while the hub was gone."""
        same_boot = s.boot_id == self.clock.boot_id
        if s.state is S.ORDERING:
            # The board got no QR from this hub process; the gateway's order (if any) expires.
            await self.move(s, S.REJECTED, "hub restarted while ordering")
        elif s.state is S.AWAITING_PAYMENT and not same_boot:
            await self.move(s, S.EXPIRED, "hub rebooted: QR deadline unknown",
                             event_data={"reason": CancelReasonName.EXPIRED.value})
        elif s.state in (S.APPROVED, S.VENDING):
            await self.move(s, S.CHECKING, "hub restarted mid-vend: asking the board")
        if not same_boot:
            # Monotonic times from another boot mean nothing here: forget them (in memory).
            s.vend_deadline_mono = s.qr_expires_mono = None
        if s.state is S.CHECKING:
            s.extra["checking_since"] = time.monotonic()

    def spawn(self, coro: Any, name: str) -> None:
        task = asyncio.create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("task %s failed", task.get_name(), exc_info=task.exception())

    async def stop(self) -> None:
        for t in list(self._tasks):
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    # --- state ------------------------------------------------------------------------------
    @property
    def not_taking_orders_reason(self) -> str | None:
        if self.store.write_error:
            return f"cannot store vend records: {self.store.write_error}"
        if self.store.outbox.full_reason:
            return self.store.outbox.full_reason
        try:
            st = os.statvfs(self.config.hub.data_dir)
        except OSError as e:
            return f"data directory unusable: {e.strerror}"
        if st.f_bavail * st.f_frsize < self.limits.min_free_bytes:
            return (f"disk almost full: {st.f_bavail * st.f_frsize} bytes free in "
                    f"{self.config.hub.data_dir} (limit {self.limits.min_free_bytes})")
        return None

    def session_for_board(self, uid: str) -> Session | None:
        for s in self.sessions.values():
            if s.board_uid == uid:
                return s
        return None

    def session_for_order(self, order_id: str) -> Session | None:
        for s in self.sessions.values():
            if s.order_id == order_id:
                return s
        return None

    async def move(self, s: Session, target: VendState, reason: str, **kw: Any) -> bool:
        """Commit a transition; False when it lost a race or the table forbids it (logged)."""
        try:
            await self.store.transition(s, target, reason, **kw)
        except (StaleTransition, InvalidTransition) as e:
            log.warning("board %s order %s: %s", s.board_uid, s.order_id or "-", e)
            return False
        except (sqlite3.Error, OSError) as e:  # Store.write_error now stops new orders
            log.critical("board %s order %s: cannot commit %s -> %s: %s", s.board_uid,
                         s.order_id or "-", s.state, target, e)
            raise
        if target not in ACTIVE:
            self.sessions.pop(s.id, None)
        self.wake_sender()
        self.notify({"kind": "order", "order_id": s.order_id, "board_uid": s.board_uid,
                     "state": s.state.value})
        return True

    def send(self, uid: str, message: Any) -> bool:
        board = self.boards.get(uid)
        if board is None or board.conn is None:
            log.warning("board %s not connected: %s not sent", uid, type(message).__name__)
            return False
        return board.conn.send(message)

    # --- link events --------------------------------------------------------------------------
    async def on_events(self, conn: BoardConnection, events: list[LinkEvent]) -> None:
        for ev in events:
            if isinstance(ev, MessageReceived):
                await self._on_message(conn, ev.message, ev.authenticated)
            elif isinstance(ev, PeerRestarted):
                await self._on_peer_restarted(conn, ev)
            elif isinstance(ev, SendFailed):
                await self._on_send_failed(conn, ev)
            elif isinstance(ev, AuthFailed):
                self.counters["unauthenticated_dropped"] += 1
                log.warning("port %s (board %s): dropped a frame of type 0x%02x that failed "
                            "authentication", conn.port, conn.uid or "?", ev.msg_type)
            else:
                log.warning("port %s (board %s): %s", conn.port, conn.uid or "?", ev)

    def on_closed(self, conn: BoardConnection) -> None:
        if conn.uid and (b := self.boards.get(conn.uid)) is not None and b.conn is conn:
            b.conn = None
            b.link_since = None
            self.notify({"kind": "board", "board_uid": conn.uid, "link_up": False})

    async def _on_message(self, conn: BoardConnection, msg: Any, authenticated: bool) -> None:
        if isinstance(msg, Hello):
            await self._on_hello(conn, msg)
            return
        uid = conn.uid
        if uid is None:
            log.warning("port %s: %s before HELLO ignored", conn.port, type(msg).__name__)
            return
        board = self.boards[uid]
        if not authenticated:
            # Only MAC'd frames may decide anything (rule 13); the link normally drops these.
            self.counters["unauthenticated_dropped"] += 1
            log.warning("board %s: unauthenticated %s ignored", uid, type(msg).__name__)
            return
        if board.conn is not conn:
            # The board proved its key on this port: it moved here (or reconnected).
            log.warning("board %s moved to port %s", uid, conn.port)
            board.conn, board.port, board.peer_epoch = conn, conn.port, conn.link.peer_epoch
            board.link_since = time.time()
        board.touch()
        if isinstance(msg, OrderRequest):
            await self._on_order_request(board, msg)
        elif isinstance(msg, Cancel):
            await self._on_board_cancel(board, msg)
        elif isinstance(msg, VendStarted):
            await self._on_vend_started(board, msg)
        elif isinstance(msg, VendResult):
            await self._on_vend_result(board, msg)
        elif isinstance(msg, Status):
            await self._on_status(board, msg)
        elif isinstance(msg, Log):
            # Into the journal only from WARNING up (a chatty board must not flood the card);
            # every LOG frame goes to the gateway as telemetry.
            level = msg.level if msg.level >= logging.WARNING else logging.DEBUG
            logging.getLogger("edge_hub.board").log(level, "board %s: [%d] %s", uid, msg.code,
                                                    msg.text)
            await self.store.add_telemetry(EventType.LOG, uid, {"level": msg.level,
                                                         "message": f"[{msg.code}] {msg.text}"})

    async def _on_hello(self, conn: BoardConnection, msg: Hello) -> None:
        uid = msg.uid.hex()
        conn.uid = uid
        conn.link.set_key(derive_board_key(self.config.secrets.master_key, msg.uid))
        board = self.boards.get(uid) or BoardInfo(uid=uid)
        self.boards[uid] = board
        if board.conn is not None and board.conn is not conn:
            # HELLO is not authenticated: another port claiming this uid gets its HELLO_ACK but
            # takes the board over only with its first MAC-verified frame (see _on_message).
            log.warning("board %s says HELLO on port %s while connected on %s", uid, conn.port,
                        board.conn.port)
            self._hello_ack(conn, board)
            return
        board.port, board.addr, board.firmware = conn.port, conn.addr, msg.fw_version
        board.protocol_version = min(max(PROTOCOL_VERSION, msg.proto_min), msg.proto_max)
        board.products = list(msg.products)
        board.peer_epoch = conn.link.peer_epoch
        board.conn = conn
        board.link_since = time.time()
        board.touch()
        async with self.store.transaction() as tx:
            await self.store.upsert_board(tx, uid, port=conn.port, addr=conn.addr,
                                          firmware=msg.fw_version,
                                          protocol_version=board.protocol_version,
                                          products=list(msg.products))
        self._hello_ack(conn, board)
        log.info("board %s (fw %s) on port %s", uid, msg.fw_version, conn.port)
        self.notify({"kind": "board", "board_uid": uid, "link_up": True})
        if not board.registered:
            self.spawn(self._register(board), f"register:{uid}")
        s = self.session_for_board(uid)
        if s is not None and s.state in IN_VEND | {S.AWAITING_PAYMENT}:
            if s.state in (S.APPROVED, S.VENDING):
                await self.move(s, S.CHECKING, "board said HELLO mid-vend")
                s.extra["checking_since"] = time.monotonic()
            conn.send(StatusRequest())

    def _hello_ack(self, conn: BoardConnection, board: BoardInfo) -> None:
        conn.send(HelloAck(version=board.protocol_version or PROTOCOL_VERSION,
                           unix_time=int(self.clock.gateway_now()),
                           time_synced=self.clock.synced, heartbeat_s=self.limits.heartbeat_s,
                           in_service=board.in_service))

    async def _register(self, board: BoardInfo) -> None:
        delay = self.config.gateway.backoff_initial_s
        while not board.registered:
            try:
                await self.client.register_board(board.registration())  # type: ignore[arg-type]
                board.registered = True
                await self.store.set_registered(board.uid)
                log.info("board %s registered with the gateway", board.uid)
            except GatewayError as e:
                log.debug("registering board %s: %s", board.uid, e)
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.config.gateway.backoff_max_s)

    async def _on_peer_restarted(self, conn: BoardConnection, ev: PeerRestarted) -> None:
        uid = conn.uid
        log.warning("port %s (board %s): peer restarted (epoch %08x -> %08x)", conn.port,
                    uid or "?", ev.old_epoch, ev.new_epoch)
        if uid is None:
            return
        self.boards[uid].peer_epoch = ev.new_epoch
        s = self.session_for_board(uid)
        if s is None:
            return
        if s.state in (S.APPROVED, S.VENDING):
            await self.move(s, S.CHECKING, "board restarted mid-vend")
        if s.state is S.CHECKING:
            s.extra["checking_since"] = time.monotonic()
        # The board's MAC'd STATUS decides (a restart notice itself is not authenticated).
        conn.send(StatusRequest())

    async def _on_send_failed(self, conn: BoardConnection, ev: SendFailed) -> None:
        msg = ev.message
        log.warning("port %s (board %s): %s was not acknowledged", conn.port, conn.uid or "?",
                    type(msg).__name__)
        if isinstance(msg, VendApproved) and conn.uid:
            s = self.session_for_order(msg.order_ref)
            if s is not None and s.state is S.APPROVED:
                await self.move(s, S.CHECKING, "vend approval not acknowledged")
                s.extra["checking_since"] = time.monotonic()

    # --- the purchase -------------------------------------------------------------------------
    def _reject(self, board: BoardInfo, request_id: int, reason: RejectReason, text: str) -> None:
        log.info("board %s: order request %d rejected (%s): %s", board.uid, request_id,
                 reason.name, text)
        self.send(board.uid, OrderRejected(request_id=request_id, reason=reason,
                                            message=text.encode()[:200].decode(errors="ignore")))

    async def _on_order_request(self, board: BoardInfo, msg: OrderRequest) -> None:
        received = time.monotonic()
        if not board.in_service:
            self._reject(board, msg.request_id, RejectReason.OUT_OF_SERVICE,
                         board.out_of_service_reason or "out of service")
            return
        why = self.not_taking_orders_reason
        if why is not None:
            self._reject(board, msg.request_id, RejectReason.STORAGE_FULL, why)
            return
        if self.client.offline:
            # Known down (backing off): answer at once, and store nothing for a non-order.
            self.counters["rejected_offline"] += 1
            self._reject(board, msg.request_id, RejectReason.OFFLINE,
                         "payment service unreachable")
            return
        current = self.session_for_board(board.uid)
        if current is not None:
            if current.request_id == msg.request_id and current.board_epoch == board.peer_epoch:
                log.info("board %s: duplicate order request %d ignored", board.uid,
                         msg.request_id)
                return
            if current.state in (S.ORDERING, S.AWAITING_PAYMENT):
                # A new selection replaces an unpaid one the board has given up on.
                await self.cancel(current, CancelReason.CUSTOMER, "replaced by a new order",
                                   tell_board=False)
            else:
                self._reject(board, msg.request_id, RejectReason.BUSY, "a vend is in progress")
                return
        try:
            s = await self.store.create_session(
                board_uid=board.uid, request_id=msg.request_id, board_epoch=board.peer_epoch,
                product=msg.product, options=list(msg.options), quantity=msg.quantity)
        except (sqlite3.Error, OSError) as e:
            log.critical("board %s: cannot store an order: %s", board.uid, e)
            self._reject(board, msg.request_id, RejectReason.STORAGE_FULL, "hub storage error")
            return
        self.sessions[s.id] = s
        self.counters["orders"] += 1
        self.spawn(self._order(board, s, received), f"order:{s.id}")

    async def _order(self, board: BoardInfo, s: Session, received: float) -> None:
        limit = self.limits.order_timeout_s
        budget = limit - min(0.2, limit * 0.1)  # leave room to commit and send the answer
        body: CreateOrder = {"board_uid": board.uid, "product": s.product,
                             "options": list(s.options), "quantity": s.quantity,
                             "idempotency_key": s.idempotency_key, "pay": True}
        reason, text = RejectReason.OFFLINE, "payment service unreachable"
        order = None
        try:
            async with asyncio.timeout_at(asyncio.get_running_loop().time()
                                          + budget - (time.monotonic() - received)):
                if not board.registered:
                    await self.client.register_board(board.registration())  # type: ignore[arg-type]
                    board.registered = True
                order = await self.client.create_order(body, timeout_s=budget)
        except (TimeoutError, GatewayUnavailable) as e:
            self.counters["rejected_offline"] += 1
            log.warning("board %s: order %s failed: %s", board.uid, s.idempotency_key,
                        e or "timed out")
        except GatewayError as e:
            reason = REJECT_BY_CODE.get(e.code, RejectReason.INVALID)
            text = e.message
        if order is not None and board.registered:
            self.spawn(self.store.set_registered(board.uid), f"registered:{board.uid}")
        payment = order.get("payment") if order is not None else None
        if order is not None and not payment:
            # An order without its QR is of no use to the customer: close it on the gateway.
            async with self.store.transaction() as tx:
                await self.store.add_event(tx, EventType.ORDER_CANCELLED, board.uid,
                                           {"reason": CancelReasonName.HUB.value},
                                           order["order_id"])
            self.wake_sender()
        if order is None or not payment:
            await self.move(s, S.REJECTED, f"{reason.name}: {text}")
            if s.state is S.REJECTED:
                self._reject(board, s.request_id, reason, text)
            return
        now_mono = time.monotonic()
        expires_in = max(1, int(payment["expires_in_s"]))
        fields = {"order_id": order["order_id"], "amount": int(order["amount"]),
                  "currency": str(order["currency"]), "upi_uri": payment["upi_uri"],
                  "qr_expires_wall": time.time() + expires_in,
                  "qr_expires_mono": now_mono + expires_in}
        if s.state is not S.ORDERING:
            # Cancelled by the board while the order was being made: close it on the gateway too.
            async with self.store.transaction() as tx:
                await self.store.add_event(tx, EventType.ORDER_CANCELLED, board.uid,
                                           {"reason": CancelReasonName.CUSTOMER.value},
                                           order["order_id"])
            self.wake_sender()
            return
        size, bitmap = render_qr(payment["upi_uri"])
        if not await self.move(s, S.AWAITING_PAYMENT, "QR created", **fields):
            return
        self.send(board.uid, PaymentQr(
            request_id=s.request_id, order_ref=order["order_id"], amount_paise=int(order["amount"]),
            currency=str(order["currency"]), expires_in_s=min(expires_in, 0xFFFF),
            upi_uri=payment["upi_uri"], qr_size=size, qr_bitmap=bitmap))

    async def cancel(self, s: Session, reason: CancelReason, why: str, *,
                      tell_board: bool, expired: bool = False) -> None:
        target = S.EXPIRED if expired else S.CANCELLED
        if not await self.move(s, target, why,
                                event_data={"reason": CANCEL_NAMES[reason].value}):
            return
        if tell_board and s.order_id:
            self.send(s.board_uid, Cancel(order_ref=s.order_id, reason=reason))

    async def _on_board_cancel(self, board: BoardInfo, msg: Cancel) -> None:
        s = self.session_for_board(board.uid)
        if s is None or (msg.order_ref and s.order_id and msg.order_ref != s.order_id):
            log.info("board %s: cancel of %r matches no open order", board.uid, msg.order_ref)
            return
        if s.state not in (S.ORDERING, S.AWAITING_PAYMENT):
            log.warning("board %s: cancel of %s in state %s ignored (already paid)", board.uid,
                        s.order_id, s.state)
            return
        await self.cancel(s, msg.reason if msg.reason in CANCEL_NAMES else CancelReason.CUSTOMER,
                           f"board cancelled ({msg.reason.name})", tell_board=False)

    async def _on_vend_started(self, board: BoardInfo, msg: VendStarted) -> None:
        s = self.session_for_order(msg.order_ref)
        if s is None or s.board_uid != board.uid or s.state not in (S.APPROVED, S.CHECKING):
            log.warning("board %s: VEND_STARTED for %s ignored (no approved vend)", board.uid,
                        msg.order_ref)
            return
        if await self.move(s, S.VENDING, "board started the vend"):
            s.extra["vending_since"] = time.monotonic()

    async def _on_vend_result(self, board: BoardInfo, msg: VendResult) -> None:
        s = self.session_for_order(msg.order_ref)
        if s is None or s.board_uid != board.uid or s.state not in IN_VEND:
            log.warning("board %s: VEND_RESULT for %s ignored (no vend in progress)", board.uid,
                        msg.order_ref)
            return
        await self._apply_outcome(s, msg.outcome, msg.dispensed, f"board reported {msg.reason}")

    async def _apply_outcome(self, s: Session, outcome: VendOutcome, dispensed: int,
                             why: str) -> None:
        if outcome is VendOutcome.SUCCESS:
            target, name = S.DONE, "success"
        elif outcome is VendOutcome.FAILED:
            target, name = S.FAILED, "failed"
        elif outcome is VendOutcome.NOT_STARTED:
            target, name, dispensed = S.NOT_VENDED, "not_vended", 0
        elif outcome is VendOutcome.IN_PROGRESS:
            if s.state is not S.VENDING and await self.move(s, S.VENDING, why):
                s.extra["vending_since"] = time.monotonic()
            return
        else:
            return
        await self.move(s, target, why, dispensed=dispensed,
                         event_data={"outcome": name, "dispensed": dispensed, "reason": why})

    async def _on_status(self, board: BoardInfo, msg: Status) -> None:
        board.board_state = msg.state.name.lower()
        board.last_status = {"state": board.board_state, "error_code": msg.error_code,
                             "uptime_s": msg.uptime_s, "vends_ok": msg.vends_ok,
                             "vends_failed": msg.vends_failed, "last_order": msg.last_order,
                             "last_outcome": msg.last_outcome.name.lower(),
                             "last_dispensed": msg.last_dispensed}
        await self.store.add_telemetry(EventType.BOARD_STATUS, board.uid, dict(board.last_status))
        self.notify({"kind": "board", "board_uid": board.uid})
        s = self.session_for_board(board.uid)
        if s is None:
            return
        if s.state in IN_VEND and msg.last_order == s.order_id and \
                msg.last_outcome is not VendOutcome.NONE:
            outcome = msg.last_outcome
            if msg.state is BoardState.VENDING and outcome is VendOutcome.NOT_STARTED:
                # A board writes NOT_STARTED to flash when it accepts the approval, before the
                # motor runs (docs/protocol.md, board rules): while it still says VENDING that
                # means "in progress", not "never started". Taking it as final approved goods
                # AND a refund (found by bench/chaos.py). Wait for VEND_RESULT instead.
                outcome = VendOutcome.IN_PROGRESS
            await self._apply_outcome(s, outcome, msg.last_dispensed,
                                      "board status after an interruption")
            return
        rebooted = board.peer_epoch != s.board_epoch
        if s.state in (S.ORDERING, S.AWAITING_PAYMENT) and rebooted and \
                msg.state not in (BoardState.ORDERING, BoardState.AWAITING_PAYMENT):
            await self.cancel(s, CancelReason.BOARD_RESET, "board restarted and lost the order",
                               tell_board=False)
        elif s.state is S.CHECKING and msg.last_order != s.order_id and \
                msg.state is not BoardState.VENDING:
            if rebooted:
                await self.move(s, S.UNKNOWN, "board restarted and has no record of the vend",
                                 event_data={"outcome": "unknown", "dispensed": 0,
                                             "reason": "board restarted mid-vend"})
            elif s.vend_deadline_mono is not None and time.monotonic() > s.vend_deadline_mono:
                await self.move(s, S.NOT_VENDED, "board never started it; deadline passed",
                                 dispensed=0, event_data={"outcome": "not_vended",
                                                          "dispensed": 0,
                                                          "reason": "vend never started"})

    # --- commands and deadlines (edge_hub/commands.py, edge_hub/deadlines.py) ----------------
    async def apply_command(self, cmd: Command) -> None:
        await commands.apply_command(self, cmd)

    async def tick(self) -> None:
        await deadlines.tick(self)

    # --- operator actions ---------------------------------------------------------------------
    def resend_pending(self, uid: str) -> bool:
        """Send the pending QR or vend approval to the board again (KeyError: unknown board)."""
        if uid not in self.boards:
            raise KeyError(uid)
        s = self.session_for_board(uid)
        if s is None or s.order_id is None:
            return False
        if s.state is S.AWAITING_PAYMENT and s.upi_uri and s.qr_expires_mono:
            left = int(s.qr_expires_mono - time.monotonic())
            if left <= 0:
                return False
            size, bitmap = render_qr(s.upi_uri)
            return self.send(uid, PaymentQr(
                request_id=s.request_id, order_ref=s.order_id, amount_paise=s.amount or 0,
                currency=s.currency or "INR", expires_in_s=min(left, 0xFFFF), upi_uri=s.upi_uri,
                qr_size=size, qr_bitmap=bitmap))
        if s.state is S.APPROVED and s.vend_auth and s.vend_deadline_mono:
            left = int(s.vend_deadline_mono - time.monotonic())
            if left <= 0:
                return False
            return self.send(uid, VendApproved(order_ref=s.order_id, auth=s.vend_auth,
                                                quantity=s.quantity, deadline_s=min(left, 0xFFFF)))
        return False
