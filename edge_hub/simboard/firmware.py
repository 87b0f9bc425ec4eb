"""The firmware of a correct vending board, as the simulator runs it (docs/protocol.md).

``BoardFirmware`` reacts to what ``protocol.Link`` reports (``wire.py`` moves the bytes): boot
and HELLO, HELLO_ACK and heartbeats, STATUS answers from flash, the QR on the display, and the
one vend an approval allows. ``board.SimBoard`` adds the buttons a customer (or a test) presses.

Rules a real board must keep, and this one does:
* act on CANCEL or VEND_APPROVED only with a verified MAC (INVARIANTS rule 13);
* an approval counts only for the order on the display, once (its auth is one-time, and an
  order in the ledger is never dispensed again), and only before its deadline;
* flash is written before anything moves: approval accepted, motor started, each item dropped,
  outcome; after a reset, a vend that was running is reported FAILED with what dropped;
* a stale approval is answered truthfully (the remembered outcome, or NOT_STARTED).
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edge_hub.simboard import qr as qrdecode
from edge_hub.simboard.model import (
    DEADLINE_REASON,
    Behaviour,
    BoardCounters,
    BoardEvent,
    BoardMachine,
    DispenseRecord,
    FlashState,
    KeyMode,
    Purchase,
    PurchaseState,
    RebootStage,
    VendPlan,
)
from edge_hub.simboard.wire import BoardWire
from protocol import (
    PROTOCOL_VERSION,
    Cancel,
    CancelReason,
    Hello,
    HelloAck,
    LinkError,
    Message,
    MessageReceived,
    OrderRejected,
    OrderRequest,
    PaymentQr,
    PeerRestarted,
    SendFailed,
    Status,
    StatusRequest,
    VendApproved,
    VendOutcome,
    VendResult,
    VendStarted,
    derive_board_key,
)
from protocol import AuthFailed as LinkAuthFailed

logger = logging.getLogger(__name__)

TEST_MASTER_KEY = bytes(range(32))  # docs/architecture.md: the published test master key
WRONG_MASTER_KEY = bytes(range(255, 223, -1))  # any other key: a board from another site
# The product codes of cloud_gateway/examples/catalog.toml.
DEFAULT_PRODUCTS = ("cappuccino", "espresso", "masala_chai", "water")


@dataclass
class _Timers:
    heartbeat: asyncio.TimerHandle | None = None
    hello: asyncio.TimerHandle | None = None
    expiry: asyncio.TimerHandle | None = None
    tasks: set[asyncio.Task[None]] = field(default_factory=set)


class BoardFirmware:
    """A board's state and its reactions to the hub. Not used alone: see ``SimBoard``."""

    def __init__(
        self,
        uid: bytes,
        master_key: bytes | None = TEST_MASTER_KEY,
        *,
        link_path: Path | str | None = None,
        products: Iterable[str] = DEFAULT_PRODUCTS,
        behaviour: Behaviour | None = None,
        name: str | None = None,
        on_purchase: Callable[[Any, Purchase], None] | None = None,
    ) -> None:
        if len(uid) != 12:
            raise ValueError(f"a board uid is 12 bytes (STM32 UID), got {len(uid)}")
        self.uid = uid
        self.name = name or f"board-{uid.hex()}"
        self.products = tuple(products)
        self.behaviour = behaviour or Behaviour()
        self.on_purchase = on_purchase
        self._key = self._provisioned_key(master_key)
        self._rng = random.Random(self.behaviour.seed)
        b = self.behaviour
        self.wire = BoardWire(self._on_link_events, link_path=link_path, baud=b.baud,
                              junk_rate=b.junk_rate, flip_rate=b.flip_rate,
                              seeds=(self._rng.randrange(1 << 32), self._rng.randrange(1 << 32)))
        self.flash = FlashState()  # survives reboot() (and stop/start of the same object)
        self.ledger: dict[str, DispenseRecord] = {}  # goods that physically left, per order
        self.purchases: list[Purchase] = []
        self.counters = BoardCounters()
        self.hub_time: tuple[int, bool] | None = None  # (unix_time, synced) from HELLO_ACK
        self._machine = BoardMachine()
        self._timers = _Timers()
        self._current: Purchase | None = None
        self._connected = False
        self._running = False
        self._boot_at = 0.0
        self._request_id = 0
        self._heartbeat_s: float = 0.0
        self._progress = asyncio.Event()


    # === power ==============================================================================
    def _provisioned_key(self, master_key: bytes | None) -> bytes | None:
        mode = self.behaviour.key_mode
        if mode is KeyMode.NONE or master_key is None:
            return None
        return derive_board_key(master_key if mode is KeyMode.CORRECT else WRONG_MASTER_KEY,
                                self.uid)

    def _power_on(self) -> None:
        """Boot: flash recovery, a fresh link with a new random epoch, then HELLO."""
        self.counters.boots += 1
        self._boot_at = time.monotonic()
        self._request_id = self._rng.randrange(0xFFFF)
        self.flash.recover_after_reset()
        self._machine.fire(BoardEvent.RESET)
        self.wire.power_on(self._key)
        self._connected = False
        self._send_hello()

    def _power_off(self) -> None:
        """Everything in RAM is gone; whatever was mid-way is interrupted."""
        t = self._timers
        for handle in (t.heartbeat, t.hello, t.expiry):
            if handle is not None:
                handle.cancel()
        t.heartbeat = t.hello = t.expiry = None
        me = asyncio.current_task()
        for task in list(t.tasks):
            if task is not me:
                task.cancel()
        p = self._current
        if p is not None and not p.done:
            if p.state in (PurchaseState.APPROVED, PurchaseState.VENDING):
                # What the flash will say at the next boot is what the purchase ended as.
                self.flash.recover_after_reset()
                self._finish(p, PurchaseState.INTERRUPTED)
            else:
                p.cancel_reason = CancelReason.BOARD_RESET
                self._finish(p, PurchaseState.CANCELLED)
        self._current = None
        self.wire.power_off()
        self._connected = False
        self._notify()

    # === bytes in, bytes out (wire.py) ======================================================
    def _send(self, message: Message, *, quiet: bool = False) -> bool:
        if self.wire.link is None:
            return False
        try:
            self.wire.send(message)
        except LinkError as exc:
            if not quiet:
                self.counters.send_failures += 1
                logger.warning("%s: cannot send %s: %s", self.name, type(message).__name__, exc)
            return False
        return True

    def _on_link_events(self, events: list[Any], acked: bool) -> None:
        self._handle(events)
        if acked and not events:
            self._notify()  # only ACKs came in, but they made room in the send queue

    # === frames from the hub ================================================================
    def _handle(self, events: list[Any]) -> None:
        for event in events:
            if isinstance(event, MessageReceived):
                self._on_message(event.message, event.authenticated)
            elif isinstance(event, PeerRestarted):
                # The hub restarted (new epoch): it may have lost our key, so introduce again.
                self.counters.hub_restarts += 1
                self._connected = False
                self._send_hello()
            elif isinstance(event, SendFailed):
                self._on_send_failed(event.message)
            elif isinstance(event, LinkAuthFailed):
                self.counters.auth_failures += 1
            else:
                self.counters.unknown_messages += 1
        if events:
            self._notify()

    def _on_message(self, msg: Message, authenticated: bool) -> None:
        if isinstance(msg, HelloAck):
            self._on_hello_ack(msg)
        elif isinstance(msg, StatusRequest):
            self.counters.status_requests += 1
            self._send_status()
        elif isinstance(msg, PaymentQr):
            self._on_payment_qr(msg)
        elif isinstance(msg, OrderRejected):
            self._on_order_rejected(msg)
        elif isinstance(msg, Cancel | VendApproved) and not authenticated:
            # Money and goods move only on a verified MAC (INVARIANTS rule 13).
            self.counters.unauthenticated_dropped += 1
            logger.warning("%s: dropped unauthenticated %s", self.name, type(msg).__name__)
        elif isinstance(msg, Cancel):
            self._on_cancel(msg)
        elif isinstance(msg, VendApproved):
            self._on_vend_approved(msg)
        else:
            self.counters.unknown_messages += 1

    # --- docs/protocol.md "session": HELLO / HELLO_ACK / heartbeat --------------------------
    def _send_hello(self) -> None:
        t = self._timers
        if t.hello is not None:
            t.hello.cancel()
            t.hello = None
        self.counters.hellos_sent += 1
        self._send(Hello(uid=self.uid, fw_version=self.behaviour.fw_version,
                         proto_min=PROTOCOL_VERSION, proto_max=PROTOCOL_VERSION,
                         capabilities=0, products=self.products))
        self._check_hello_later()

    def _check_hello_later(self) -> None:
        t = self._timers
        if t.hello is None:
            t.hello = asyncio.get_running_loop().call_later(self.behaviour.hello_retry_s,
                                                            self._hello_unanswered)

    def _hello_unanswered(self) -> None:
        """No HELLO_ACK yet. While the link still retransmits, keep waiting; once it has given
        up (or the hub acknowledged the frame but never answered), say HELLO again."""
        self._timers.hello = None
        if not self._running or self.wire.link is None or self._connected:
            return
        if self.wire.link.pending:
            self._check_hello_later()
        else:
            self._send_hello()

    def _on_hello_ack(self, msg: HelloAck) -> None:
        t = self._timers
        if t.hello is not None:
            t.hello.cancel()
            t.hello = None
        self.counters.hello_acks += 1
        self._connected = True
        self.hub_time = (msg.unix_time, msg.time_synced)
        if msg.in_service:
            if self._machine.allows(BoardEvent.IN_SERVICE):
                self._machine.fire(BoardEvent.IN_SERVICE)
        elif self._machine.allows(BoardEvent.OUT_OF_SERVICE):
            self._machine.fire(BoardEvent.OUT_OF_SERVICE)
        hb = self.behaviour.heartbeat_s
        self._heartbeat_s = float(msg.heartbeat_s) if hb is None else hb
        self._schedule_heartbeat()
        self._send_status()  # tell the hub where we are right away (flash: last vend)

    def _schedule_heartbeat(self) -> None:
        t = self._timers
        if t.heartbeat is not None:
            t.heartbeat.cancel()
            t.heartbeat = None
        if self._heartbeat_s > 0:
            t.heartbeat = asyncio.get_running_loop().call_later(self._heartbeat_s,
                                                                self._heartbeat)

    def _heartbeat(self) -> None:
        self._timers.heartbeat = None
        if self.wire.link is None:
            return
        if self._connected:  # while the hub is gone the HELLO loop speaks instead
            self._send_status()
        self._schedule_heartbeat()

    def _send_status(self) -> None:
        f = self.flash
        self.counters.statuses_sent += 1
        self._send(Status(state=self._machine.state, error_code=0,
                          uptime_s=int(time.monotonic() - self._boot_at),
                          vends_ok=f.vends_ok, vends_failed=f.vends_failed,
                          last_order=f.last_order, last_outcome=f.last_outcome,
                          last_dispensed=f.last_dispensed))

    def _on_send_failed(self, message: Message) -> None:
        """The link gave up on a reliable frame: the hub is gone."""
        self.counters.send_failures += 1
        p = self._current
        if isinstance(message, OrderRequest) and p is not None and (
            p.request_id == message.request_id and p.state is PurchaseState.REQUESTED
        ):
            self._close(p, PurchaseState.UNDELIVERED, BoardEvent.REJECTED)
        self._connected = False
        self._check_hello_later()

    # --- docs/protocol.md "purchase": PAYMENT_QR / ORDER_REJECTED / CANCEL ------------------
    def _on_payment_qr(self, msg: PaymentQr) -> None:
        p = self._current
        if p is None or p.state is not PurchaseState.REQUESTED or p.request_id != msg.request_id:
            logger.info("%s: PAYMENT_QR for request %d not awaited; ignored", self.name,
                        msg.request_id)
            return
        p.t_qr = time.monotonic()  # the whole frame is here and decoded
        p.order_ref = msg.order_ref
        p.qr = qrdecode.inspect_qr(msg)
        self.counters.qrs_received += 1
        if not p.qr.valid:
            self.counters.qrs_invalid += 1
            logger.warning("%s: QR for %s unusable: %s", self.name, msg.order_ref, p.qr.problem)
        p.state = PurchaseState.SHOWING_QR
        self._machine.fire(BoardEvent.QR_SHOWN)
        self._timers.expiry = asyncio.get_running_loop().call_later(
            msg.expires_in_s, self._qr_expired, p)

    def _qr_expired(self, p: Purchase) -> None:
        """The display's countdown ran out: close the order on both sides (CANCEL EXPIRED)."""
        self._timers.expiry = None
        if p is self._current and p.state is PurchaseState.SHOWING_QR:
            assert p.order_ref is not None
            self.counters.expiries += 1
            p.cancel_reason = CancelReason.EXPIRED
            self._send(Cancel(order_ref=p.order_ref, reason=CancelReason.EXPIRED))
            self._close(p, PurchaseState.EXPIRED, BoardEvent.EXPIRED)

    def _on_order_rejected(self, msg: OrderRejected) -> None:
        p = self._current
        if p is None or p.state is not PurchaseState.REQUESTED or p.request_id != msg.request_id:
            return
        self.counters.rejections += 1
        p.reject_reason, p.reject_message = int(msg.reason), msg.message
        self._close(p, PurchaseState.REJECTED, BoardEvent.REJECTED)

    def _on_cancel(self, msg: Cancel) -> None:
        self.counters.cancels_received += 1
        p = self._current
        if p is None or p.order_ref != msg.order_ref or p.state is not PurchaseState.SHOWING_QR:
            return  # nothing on display for it (a vend in progress cannot be cancelled)
        p.cancel_reason = int(msg.reason)
        state = PurchaseState.EXPIRED if msg.reason == CancelReason.EXPIRED else (
            PurchaseState.CANCELLED)
        self._close(p, state, BoardEvent.CANCELLED)

    # --- docs/protocol.md "vend": VEND_APPROVED -> VEND_STARTED -> VEND_RESULT --------------
    def _on_vend_approved(self, msg: VendApproved) -> None:
        p = self._current
        if p is not None and p.order_ref == msg.order_ref and p.state in (
            PurchaseState.APPROVED, PurchaseState.VENDING
        ):
            self.counters.approvals_refused += 1  # a repeat while vending: the result follows
            return
        showing = (p is not None and p.state is PurchaseState.SHOWING_QR
                   and p.order_ref == msg.order_ref)
        if not showing or msg.auth in self.flash.used_auths or msg.order_ref in self.ledger:
            self.counters.approvals_refused += 1
            self._answer_stale_approval(msg)
            return
        assert p is not None
        if not 1 <= msg.quantity <= p.quantity or msg.deadline_s == 0:
            self.counters.approvals_refused += 1
            self._send(VendResult(order_ref=msg.order_ref, outcome=VendOutcome.NOT_STARTED,
                                  reason=DEADLINE_REASON, dispensed=0))
            return
        self.counters.approvals_accepted += 1
        if self._timers.expiry is not None:
            self._timers.expiry.cancel()
            self._timers.expiry = None
        p.t_approved = time.monotonic()
        p.approved_quantity = msg.quantity
        p.state = PurchaseState.APPROVED
        self._machine.fire(BoardEvent.APPROVED)
        # Written to flash before anything moves: this approval is consumed, for this order.
        self.flash.accept(msg.order_ref, msg.auth)
        deadline = p.t_approved + msg.deadline_s
        task = asyncio.get_running_loop().create_task(self._vend(p, msg.quantity, deadline))
        self._timers.tasks.add(task)
        task.add_done_callback(self._timers.tasks.discard)

    def _answer_stale_approval(self, msg: VendApproved) -> None:
        """An approval for an order not on display (or already used): never dispense. If it is
        the order flash remembers, repeat what happened; otherwise say it was not started."""
        f = self.flash
        if msg.order_ref == f.last_order and f.last_outcome in (
            VendOutcome.SUCCESS, VendOutcome.FAILED, VendOutcome.NOT_STARTED
        ):
            self._send(VendResult(order_ref=f.last_order, outcome=f.last_outcome,
                                  reason=f.last_reason, dispensed=f.last_dispensed))
        elif msg.order_ref != f.last_order and msg.order_ref not in self.ledger:
            self._send(VendResult(order_ref=msg.order_ref, outcome=VendOutcome.NOT_STARTED,
                                  reason=DEADLINE_REASON, dispensed=0))
        logger.warning("%s: refused VEND_APPROVED for %s", self.name, msg.order_ref)

    async def _vend(self, p: Purchase, quantity: int, deadline: float) -> None:
        assert p.order_ref is not None
        ref, plan = p.order_ref, p.plan
        if self._reboot_if(plan, RebootStage.APPROVED):
            return
        if plan.item_time_s and time.monotonic() > deadline:
            self._report(p, VendOutcome.NOT_STARTED, DEADLINE_REASON)
            return
        self.flash.start(ref)
        p.state = PurchaseState.VENDING
        p.t_vend_started = time.monotonic()
        self._send(VendStarted(order_ref=ref))
        if self._reboot_if(plan, RebootStage.STARTED):
            return
        to_drop = quantity if plan.dispense is None else min(plan.dispense, quantity)
        for i in range(to_drop):
            if plan.item_time_s:
                await asyncio.sleep(plan.item_time_s)
            self._drop_item(p, quantity)
            if i == 0 and self._reboot_if(plan, RebootStage.DISPENSING):
                return
        ok = p.dispensed == quantity
        self.flash.finish(VendOutcome.SUCCESS if ok else VendOutcome.FAILED,
                          0 if ok else plan.reason)
        if self._reboot_if(plan, RebootStage.DISPENSED):
            return
        self._report(p, VendOutcome.SUCCESS if ok else VendOutcome.FAILED,
                     0 if ok else plan.reason)

    def _drop_item(self, p: Purchase, approved: int) -> None:
        """One item physically leaves the machine. This is the only place goods move."""
        assert p.order_ref is not None
        p.dispensed += 1
        self.flash.dispensed(p.dispensed)
        self.ledger[p.order_ref] = DispenseRecord(
            order_ref=p.order_ref, product=p.product, approved=approved,
            dispensed=p.dispensed, at=time.monotonic())

    def _reboot_if(self, plan: VendPlan, stage: RebootStage) -> bool:
        if plan.reboot_at is not stage:
            return False
        logger.info("%s: scripted reboot at %s", self.name, stage.value)
        self._reset()
        return True

    def _reset(self) -> None:
        self._power_off()
        self._power_on()

    def _report(self, p: Purchase, outcome: VendOutcome, reason: int) -> None:
        assert p.order_ref is not None
        if outcome is VendOutcome.NOT_STARTED:
            self.flash.finish(outcome, reason)
        if outcome is VendOutcome.SUCCESS:
            self.counters.vends_ok += 1
        else:
            self.counters.vends_failed += 1
        p.outcome = outcome
        p.t_result_sent = time.monotonic()
        self._send(VendResult(order_ref=p.order_ref, outcome=outcome, reason=reason,
                              dispensed=p.dispensed))
        state = {VendOutcome.SUCCESS: PurchaseState.VENDED,
                 VendOutcome.NOT_STARTED: PurchaseState.NOT_STARTED}.get(
            outcome, PurchaseState.FAILED)
        self._close(p, state, BoardEvent.VEND_DONE)

    # === bookkeeping ========================================================================
    def _close(self, p: Purchase, state: PurchaseState, event: BoardEvent) -> None:
        if p is self._current:
            self._current = None
            if self._timers.expiry is not None:
                self._timers.expiry.cancel()
                self._timers.expiry = None
            self._machine.fire(event)
        self._finish(p, state)

    def _finish(self, p: Purchase, state: PurchaseState) -> None:
        p.state = state
        p.t_closed = time.monotonic()
        if state is PurchaseState.INTERRUPTED and p.order_ref == self.flash.last_order:
            p.outcome = self.flash.last_outcome
        self._notify()
        if self.on_purchase is not None:
            self.on_purchase(self, p)

    def _notify(self) -> None:
        self._progress.set()
        self._progress = asyncio.Event()
