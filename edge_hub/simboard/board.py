"""``SimBoard``: what a correct vending-machine board does, on a real pseudo-terminal.

Read top to bottom as the firmware's main loop: boot (HELLO), then react to frames from the
hub, while the customer (the Python API or a script) presses buttons. Section names in the
comments refer to docs/protocol.md.

The link itself is ``protocol.Link`` (sans-IO): this module only moves bytes between it and the
pty, and runs its timers (``link.next_timeout()`` / ``link.handle_timeout()``) on the event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
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
    BoardCounters,
    BoardEvent,
    BoardMachine,
    DispenseRecord,
    FlashState,
    Purchase,
    PurchaseState,
    QrSeen,
    RebootStage,
    VendPlan,
)
from edge_hub.simboard.noise import LineNoise
from edge_hub.simboard.pty import PtyLine
from protocol import (
    PROTOCOL_VERSION,
    BoardState,
    Cancel,
    CancelReason,
    Flags,
    Header,
    Hello,
    HelloAck,
    Link,
    LinkError,
    Log,
    Message,
    MessageReceived,
    OrderRejected,
    OrderRequest,
    PaymentQr,
    PeerRestarted,
    Role,
    SendFailed,
    Status,
    StatusRequest,
    VendApproved,
    VendOutcome,
    VendResult,
    VendStarted,
    derive_board_key,
    encode_frame,
)
from protocol import AuthFailed as LinkAuthFailed

logger = logging.getLogger(__name__)

TEST_MASTER_KEY = bytes(range(32))  # docs/architecture.md: the published test master key
WRONG_MASTER_KEY = bytes(range(255, 223, -1))  # any other key: a board from another site
# The product codes of cloud_gateway/examples/catalog.toml.
DEFAULT_PRODUCTS = ("cappuccino", "espresso", "masala_chai", "water")
DEFAULT_FW = "simboard-1.0"


class BoardError(RuntimeError):
    """The simulated customer asked for something the board cannot do now."""


class KeyMode(enum.StrEnum):
    CORRECT = "correct"  # provisioned with this site's board key
    NONE = "none"  # never provisioned: sends nothing MAC'd, so the hub trusts nothing from it
    WRONG = "wrong"  # provisioned for another site: every MAC fails at the hub


@dataclass(frozen=True)
class Behaviour:
    """Board-wide settings (per-vend mechanics are a ``VendPlan``)."""

    key_mode: KeyMode = KeyMode.CORRECT
    junk_rate: float = 0.0  # junk bytes per byte on the line (both directions)
    flip_rate: float = 0.0  # bit flips per byte on the line (both directions)
    seed: int | None = None  # for the noise and the request ids
    fw_version: str = DEFAULT_FW
    baud: int = 115200
    hello_retry_s: float = 1.0  # HELLO again this long after it went unanswered
    order_timeout_s: float = 5.0  # give up on an order with no QR and no rejection
    heartbeat_s: float | None = None  # None: what HELLO_ACK says


@dataclass
class _Timers:
    link: asyncio.TimerHandle | None = None
    link_when: float | None = None
    heartbeat: asyncio.TimerHandle | None = None
    hello: asyncio.TimerHandle | None = None
    expiry: asyncio.TimerHandle | None = None
    tasks: set[asyncio.Task[None]] = field(default_factory=set)


class SimBoard:
    """One simulated board. See the package docstring for the API in one page."""

    def __init__(
        self,
        uid: bytes,
        master_key: bytes | None = TEST_MASTER_KEY,
        *,
        link_path: Path | str | None = None,
        products: Iterable[str] = DEFAULT_PRODUCTS,
        behaviour: Behaviour | None = None,
        name: str | None = None,
        on_purchase: Callable[[SimBoard, Purchase], None] | None = None,
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
        self._rx_noise = LineNoise(self.behaviour.junk_rate, self.behaviour.flip_rate,
                                   seed=self._rng.randrange(1 << 32))
        self._tx_noise = LineNoise(self.behaviour.junk_rate, self.behaviour.flip_rate,
                                   seed=self._rng.randrange(1 << 32))
        self.line = PtyLine(self._on_line_data, link_path=link_path)
        self.flash = FlashState()  # survives reboot() (and stop/start of the same object)
        self.ledger: dict[str, DispenseRecord] = {}  # goods that physically left, per order
        self.purchases: list[Purchase] = []
        self.counters = BoardCounters()
        self.hub_time: tuple[int, bool] | None = None  # (unix_time, synced) from HELLO_ACK
        self._machine = BoardMachine()
        self._link: Link | None = None
        self._timers = _Timers()
        self._current: Purchase | None = None
        self._connected = False
        self._running = False
        self._boot_at = 0.0
        self._request_id = 0
        self._heartbeat_s: float = 0.0
        self._progress = asyncio.Event()

    # === lifecycle ==========================================================================
    async def start(self) -> str:
        """Plug in the cable and power on. Returns the port path the hub should open."""
        if self._running:
            raise BoardError(f"{self.name} is already running")
        self.line.open()
        self._running = True
        self._power_on()
        return self.port

    async def stop(self) -> None:
        """Power off and unplug; flash and ledger are kept on the object."""
        if not self._running:
            return
        self._running = False
        self._power_off()
        self.line.close()

    async def reboot(self) -> None:
        """Reset the board now: RAM state lost, new session epoch, flash kept (protocol.md)."""
        self._require_running()
        self._power_off()
        self._power_on()

    async def unplug(self) -> None:
        """Pull the cable (the pty and its symlink go away); the board keeps running."""
        self._require_running()
        self.counters.unplugs += 1
        self.line.close()

    async def replug(self) -> str:
        """Plug the cable back in: a new pty behind the same symlink. Returns the port path."""
        self._require_running()
        if not self.line.is_open:
            self.line.open()
            self._connected = False
            self._send_hello()  # a USB-CDC board sees the host come back and says hello again
        return self.port

    @property
    def port(self) -> str:
        return self.line.port

    @property
    def state(self) -> BoardState:
        return self._machine.state

    @property
    def connected(self) -> bool:
        """True once the hub answered HELLO (and the link has not failed since)."""
        return self._connected

    @property
    def link(self) -> Link:
        if self._link is None:
            raise BoardError(f"{self.name} is powered off")
        return self._link

    @property
    def current(self) -> Purchase | None:
        return self._current

    def dispensed(self, order_ref: str) -> int:
        """Items that physically left the machine for this order (the ledger)."""
        record = self.ledger.get(order_ref)
        return record.dispensed if record else 0

    def set_noise(self, junk_rate: float | None = None, flip_rate: float | None = None) -> None:
        for noise in (self._rx_noise, self._tx_noise):
            noise.set_rates(noise.junk_rate if junk_rate is None else junk_rate,
                            noise.flip_rate if flip_rate is None else flip_rate)

    @property
    def noise_counters(self) -> dict[str, int]:
        return {
            "junk_bytes": self._rx_noise.counters.junk_bytes + self._tx_noise.counters.junk_bytes,
            "bits_flipped": self._rx_noise.counters.bits_flipped
            + self._tx_noise.counters.bits_flipped,
        }

    async def wait_connected(self, timeout_s: float = 5.0) -> None:
        await self._until(lambda: self._connected, timeout_s, "HELLO_ACK")

    # === the customer =======================================================================
    async def request(
        self,
        product: str,
        options: Iterable[str] = (),
        quantity: int = 1,
        *,
        plan: VendPlan | None = None,
        timeout_s: float | None = None,
    ) -> Purchase:
        """The customer picks a product: ORDER_REQUEST, then wait for the QR or a rejection.

        Returns the purchase once it shows a QR (``SHOWING_QR``) or is closed (rejected, no
        answer within ``timeout_s`` / ``behaviour.order_timeout_s``). ``plan`` says how the
        machine will behave if the order gets approved.
        """
        self._require_running()
        if not self._machine.allows(BoardEvent.ORDER_SENT):
            raise BoardError(f"{self.name} cannot take an order in state {self.state.name}")
        self._request_id = self._request_id % 0xFFFF + 1
        p = Purchase(request_id=self._request_id, product=product, options=tuple(options),
                     quantity=quantity, plan=plan or VendPlan())
        self.purchases.append(p)
        self._current = p
        self._machine.fire(BoardEvent.ORDER_SENT)
        self.counters.orders_sent += 1
        p.t_order_sent = time.monotonic()
        # docs/protocol.md "purchase": ORDER_REQUEST is reliable and MAC'd.
        self._send(OrderRequest(request_id=p.request_id, product=product,
                                options=p.options, quantity=quantity))
        wait = self.behaviour.order_timeout_s if timeout_s is None else timeout_s
        try:
            await self._until(lambda: p.state is not PurchaseState.REQUESTED, wait, "PAYMENT_QR")
        except TimeoutError:
            if p.state is PurchaseState.REQUESTED:
                self._close(p, PurchaseState.UNDELIVERED, BoardEvent.REJECTED)
        return p

    async def buy(
        self,
        product: str,
        options: Iterable[str] = (),
        quantity: int = 1,
        *,
        plan: VendPlan | None = None,
        timeout_s: float = 30.0,
    ) -> Purchase:
        """Request, then wait (up to ``timeout_s``) until the purchase is closed one way or another:
        vended, failed, expired, cancelled by the hub, rejected."""
        p = await self.request(product, options, quantity, plan=plan)
        await self.wait_closed(p, timeout_s)
        return p

    async def cancel(self, purchase: Purchase | None = None) -> Purchase:
        """The customer presses cancel while the QR is on the display (CANCEL, reason CUSTOMER)."""
        p = purchase or self._current
        if p is None or p is not self._current or p.state is not PurchaseState.SHOWING_QR:
            raise BoardError(f"{self.name}: no QR on the display to cancel")
        assert p.order_ref is not None
        p.cancel_reason = CancelReason.CUSTOMER
        self.counters.cancels_sent += 1
        self._send(Cancel(order_ref=p.order_ref, reason=CancelReason.CUSTOMER))
        self._close(p, PurchaseState.CANCELLED, BoardEvent.CANCELLED)
        return p

    async def wait_closed(self, purchase: Purchase, timeout_s: float = 30.0) -> Purchase:
        await self._until(lambda: purchase.done, timeout_s, "the end of the purchase")
        return purchase

    async def send_logs(self, count: int, *, level: int = 20, code: int = 1,
                        text: str = "telemetry", timeout_s: float = 60.0) -> None:
        """Send ``count`` LOG frames as fast as the link takes them (telemetry load)."""
        self._require_running()
        async with asyncio.timeout(timeout_s):
            for i in range(count):
                while not self._send(Log(level=level, code=code, text=f"{text} {i}"), quiet=True):
                    await self._progress_or(0.05)
                self.counters.logs_sent += 1

    # === chaos: what a broken or rogue board does ===========================================
    def inject(self, message: Message) -> None:
        """Send any message through the board's link now, whatever the board's state (signed
        with whatever key the board has). Raises LinkError as ``Link.send`` does."""
        self.link.send(message, time.monotonic())
        self._service()

    def forge(self, message: Message) -> None:
        """Put an unsigned frame for ``message`` on the line, bypassing the link's rules: what a
        board without the key that wants to report, say, a failed vend would do."""
        link = self.link
        header = Header(PROTOCOL_VERSION, int(message.TYPE), int(Flags.RELIABLE), link.addr,
                        link.epoch, link.peer_epoch, 1, 0)
        self.line.write(self._tx_noise.apply(encode_frame(header.pack() + message.encode())))

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
        self._link = Link(role=Role.BOARD, addr=0, baud=self.behaviour.baud, key=self._key,
                          epoch=None)
        self._connected = False
        self._send_hello()

    def _power_off(self) -> None:
        """Everything in RAM is gone; whatever was mid-way is interrupted."""
        t = self._timers
        for handle in (t.link, t.heartbeat, t.hello, t.expiry):
            if handle is not None:
                handle.cancel()
        t.link = t.heartbeat = t.hello = t.expiry = None
        t.link_when = None
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
        self._link = None
        self._connected = False
        self._notify()

    # === bytes in, bytes out ================================================================
    def _on_line_data(self, data: bytes) -> None:
        if self._link is None:
            return  # powered off: the UART is dead
        data = self._rx_noise.apply(data)
        pending = self._link.pending
        events = self._link.receive_data(data, time.monotonic())
        self._handle(events)
        if not events and self._link is not None and self._link.pending < pending:
            self._notify()  # only ACKs came in, but they made room in the send queue
        self._service()

    def _service(self) -> None:
        """Write what the link wants on the line and re-arm its timer."""
        link = self._link
        if link is None:
            return
        out = link.data_to_send()
        if out:
            self.line.write(self._tx_noise.apply(out))
        when = link.next_timeout()
        t = self._timers
        if when == t.link_when:
            return
        if t.link is not None:
            t.link.cancel()
        t.link_when = when
        t.link = None
        if when is not None:
            delay = max(0.0, when - time.monotonic())
            t.link = asyncio.get_running_loop().call_later(delay, self._on_link_timer)

    def _on_link_timer(self) -> None:
        self._timers.link = None
        self._timers.link_when = None
        if self._link is None:
            return
        self._handle(self._link.handle_timeout(time.monotonic()))
        self._service()

    def _send(self, message: Message, *, quiet: bool = False) -> bool:
        if self._link is None:
            return False
        try:
            self._link.send(message, time.monotonic())
        except LinkError as exc:
            if not quiet:
                self.counters.send_failures += 1
                logger.warning("%s: cannot send %s: %s", self.name, type(message).__name__, exc)
            return False
        self._service()
        return True

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
        if not self._running or self._link is None or self._connected:
            return
        if self._link.pending:
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
        if self._link is not None:
            self._send_status()
            self._schedule_heartbeat()

    def _send_status(self) -> None:
        f = self.flash
        self.counters.statuses_sent += 1
        self._send(Status(state=self.state, error_code=0,
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
        p.qr = inspect_qr(msg)
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
        if await self._reboot_if(plan, RebootStage.APPROVED):
            return
        if plan.item_time_s and time.monotonic() > deadline:
            self._report(p, VendOutcome.NOT_STARTED, DEADLINE_REASON)
            return
        self.flash.start(ref)
        p.state = PurchaseState.VENDING
        p.t_vend_started = time.monotonic()
        self._send(VendStarted(order_ref=ref))
        if await self._reboot_if(plan, RebootStage.STARTED):
            return
        to_drop = quantity if plan.dispense is None else min(plan.dispense, quantity)
        for i in range(to_drop):
            if plan.item_time_s:
                await asyncio.sleep(plan.item_time_s)
            self._drop_item(p, quantity)
            if i == 0 and await self._reboot_if(plan, RebootStage.DISPENSING):
                return
        ok = p.dispensed == quantity
        self.flash.finish(VendOutcome.SUCCESS if ok else VendOutcome.FAILED,
                          0 if ok else plan.reason)
        if await self._reboot_if(plan, RebootStage.DISPENSED):
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

    async def _reboot_if(self, plan: VendPlan, stage: RebootStage) -> bool:
        if plan.reboot_at is not stage:
            return False
        logger.info("%s: scripted reboot at %s", self.name, stage.value)
        await self.reboot()
        return True

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

    async def _progress_or(self, timeout_s: float) -> None:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout_s):
                await self._progress.wait()

    async def _until(self, predicate: Callable[[], bool], timeout_s: float, what: str) -> None:
        try:
            async with asyncio.timeout(timeout_s):
                while not predicate():
                    await self._progress.wait()
        except TimeoutError:
            raise TimeoutError(f"{self.name}: no {what} within {timeout_s} s") from None

    def _require_running(self) -> None:
        if not self._running:
            raise BoardError(f"{self.name} is not running (call start())")


def inspect_qr(msg: PaymentQr) -> QrSeen:
    """What the display makes of PAYMENT_QR: the bitmap's shape, and what it decodes to."""
    seen = QrSeen(order_ref=msg.order_ref, amount_paise=msg.amount_paise, currency=msg.currency,
                  expires_in_s=msg.expires_in_s, upi_uri=msg.upi_uri, size=msg.qr_size,
                  bitmap_ok=False, decoded=None)
    try:
        grid = qrdecode.unpack_bitmap(msg.qr_size, msg.qr_bitmap)
        seen.bitmap_ok = True
        seen.decoded = qrdecode.decode(grid)
    except qrdecode.QrDecodeError as exc:
        seen.problem = str(exc)
        return seen
    if seen.decoded != msg.upi_uri:
        seen.problem = f"QR says {seen.decoded!r} but upi_uri is {msg.upi_uri!r}"
    return seen
