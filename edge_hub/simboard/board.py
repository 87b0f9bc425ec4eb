"""``SimBoard``: a simulated vending board on a real pseudo-terminal, and its buttons.

The board's behaviour is ``firmware.BoardFirmware`` (what a correct board does); this class adds
what a person or a test does to a board: power it, pull its cable, choose a product, press
cancel, wait for the end of a purchase, or make it misbehave (``inject``, ``forge``).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Iterable

from edge_hub.simboard.firmware import DEFAULT_PRODUCTS, TEST_MASTER_KEY, BoardFirmware
from edge_hub.simboard.model import BoardEvent, Purchase, PurchaseState, VendPlan
from edge_hub.simboard.pty import PtyLine
from protocol import BoardState, Cancel, CancelReason, Link, Log, Message, OrderRequest

__all__ = ["DEFAULT_PRODUCTS", "TEST_MASTER_KEY", "BoardError", "SimBoard"]


class BoardError(RuntimeError):
    """The simulated customer asked for something the board cannot do now."""


class SimBoard(BoardFirmware):
    """One simulated board. See the package docstring for the API in one page.

    ``SimBoard(uid12, master_key, link_path=..., products=..., behaviour=Behaviour(...),
    name=..., on_purchase=callback)``; ``master_key`` None (or ``KeyMode.NONE``) = no key.
    """

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
        self._reset()

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
    def line(self) -> PtyLine:
        """The cable: ``line.slave_path`` is the pty, ``line.port`` what the hub opens."""
        return self.wire.line

    @property
    def link(self) -> Link:
        if self.wire.link is None:
            raise BoardError(f"{self.name} is powered off")
        return self.wire.link

    @property
    def current(self) -> Purchase | None:
        return self._current

    def dispensed(self, order_ref: str) -> int:
        """Items that physically left the machine for this order (the ledger)."""
        record = self.ledger.get(order_ref)
        return record.dispensed if record else 0

    def set_noise(self, junk_rate: float | None = None, flip_rate: float | None = None) -> None:
        self.wire.set_noise(junk_rate, flip_rate)

    @property
    def noise_counters(self) -> dict[str, int]:
        return self.wire.noise_counters

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
        self._require_running()
        self.wire.send(message)

    def forge(self, message: Message) -> None:
        """Put an unsigned frame for ``message`` on the line, bypassing the link's rules: what a
        board without the key that wants to report, say, a failed vend would do."""
        self._require_running()
        self.wire.forge(message)

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
