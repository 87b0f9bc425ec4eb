"""A minimal hub side of the serial link, for testing the simulator alone (not the real hub).

It opens the board's pty like a hub opens /dev/ttyUSB0, runs a HUB-role ``protocol.Link`` on it,
keys the link from the HELLO's uid, answers HELLO with HELLO_ACK, and (when ``auto_qr``) answers
ORDER_REQUEST with a real PAYMENT_QR. Everything else the test does by hand: ``approve()``,
``cancel()``, ``send()``; and everything the hub saw is kept in ``received`` / ``events``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import termios
import time
import tty
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import qrcode
import qrcode.constants

from protocol import (
    AuthFailed,
    Cancel,
    CancelReason,
    Hello,
    HelloAck,
    Link,
    LinkEvent,
    Message,
    MessageReceived,
    OrderRejected,
    OrderRequest,
    PaymentQr,
    RejectReason,
    Role,
    VendApproved,
    derive_board_key,
    pack_bitmap,
)

M = TypeVar("M", bound=Message)
POLL_S = 0.02


def render(uri: str) -> tuple[int, bytes]:
    code = qrcode.QRCode(border=0, error_correction=qrcode.constants.ERROR_CORRECT_M)
    code.add_data(uri)
    code.make(fit=True)
    matrix = [[bool(m) for m in row] for row in code.get_matrix()]
    return len(matrix), pack_bitmap(matrix)


@dataclass
class Order:
    ref: str
    request: OrderRequest
    amount_paise: int


@dataclass
class MiniHub:
    port: str
    master_key: bytes
    heartbeat_s: int = 0
    expires_in_s: int = 30
    auto_qr: bool = True
    reject: RejectReason | None = None
    in_service: bool = True
    auto_approve_s: float | None = None  # approve every QR this long after sending it
    link: Link = field(default_factory=lambda: Link(role=Role.HUB))
    received: list[tuple[Message, bool]] = field(default_factory=list)
    events: list[LinkEvent] = field(default_factory=list)
    orders: dict[str, Order] = field(default_factory=dict)
    hello: Hello | None = None
    _fd: int | None = None
    _timer: asyncio.TimerHandle | None = None
    _changed: asyncio.Event = field(default_factory=asyncio.Event)

    # --- plumbing -----------------------------------------------------------------------------
    def open(self) -> None:
        fd = os.open(self.port, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
        tty.setraw(fd)
        termios.tcflush(fd, termios.TCIOFLUSH)
        self._fd = fd
        asyncio.get_running_loop().add_reader(fd, self._readable)

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._fd is not None:
            asyncio.get_running_loop().remove_reader(self._fd)
            with contextlib.suppress(OSError):
                os.close(self._fd)
            self._fd = None

    def reopen(self, port: str | None = None) -> None:
        """Close and open the port again with a fresh link (what a hub does after an unplug)."""
        self.close()
        if port is not None:
            self.port = port
        self.link = Link(role=Role.HUB)
        self.hello = None
        self.open()

    def _readable(self) -> None:
        assert self._fd is not None
        try:
            data = os.read(self._fd, 65536)
        except BlockingIOError:
            return
        except OSError:  # the board pulled the cable
            self.close()
            return
        self._handle(self.link.receive_data(data, time.monotonic()))
        self._flush()

    def _flush(self) -> None:
        out = self.link.data_to_send()
        if out and self._fd is not None:
            with contextlib.suppress(BlockingIOError, OSError):
                os.write(self._fd, out)
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        when = self.link.next_timeout()
        if when is not None and self._fd is not None:
            delay = max(0.0, when - time.monotonic())
            self._timer = asyncio.get_running_loop().call_later(delay, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        self._handle(self.link.handle_timeout(time.monotonic()))
        self._flush()

    def send(self, message: Message) -> None:
        self.link.send(message, time.monotonic())
        self._flush()

    # --- the hub's side of the protocol -------------------------------------------------------
    def _handle(self, events: list[LinkEvent]) -> None:
        for ev in events:
            self.events.append(ev)
            if not isinstance(ev, MessageReceived):
                continue
            msg = ev.message
            self.received.append((msg, ev.authenticated))
            if isinstance(msg, Hello):
                self.hello = msg
                self.link.set_key(derive_board_key(self.master_key, msg.uid))
                self.send(HelloAck(version=1, unix_time=int(time.time()), time_synced=True,
                                   heartbeat_s=self.heartbeat_s, in_service=self.in_service))
            elif isinstance(msg, OrderRequest) and ev.authenticated:
                self._answer_order(msg)
        self._changed.set()
        self._changed = asyncio.Event()

    def _answer_order(self, req: OrderRequest) -> None:
        if self.reject is not None:
            self.send(OrderRejected(request_id=req.request_id, reason=self.reject,
                                    message="test rejection"))
            return
        if not self.auto_qr:
            return
        ref = f"order_{len(self.orders) + 1:04d}"
        amount = 4500 * req.quantity
        uri = f"upi://pay?pa=vend@testbank&pn=Test&am={amount / 100:.2f}&cu=INR&tr={ref}"
        size, bitmap = render(uri)
        self.orders[ref] = Order(ref, req, amount)
        self.send(PaymentQr(request_id=req.request_id, order_ref=ref, amount_paise=amount,
                            currency="INR", expires_in_s=self.expires_in_s, upi_uri=uri,
                            qr_size=size, qr_bitmap=bitmap))
        if self.auto_approve_s is not None:
            asyncio.get_running_loop().call_later(self.auto_approve_s, self._auto_approve, ref)

    def _auto_approve(self, ref: str) -> None:
        if self._fd is not None:
            self.approve(ref, quantity=self.orders[ref].request.quantity)

    def approve(self, order_ref: str, *, quantity: int = 1, auth: bytes | None = None,
                deadline_s: int = 60) -> bytes:
        auth = auth or secrets.token_bytes(8)
        self.send(VendApproved(order_ref=order_ref, auth=auth, quantity=quantity,
                               deadline_s=deadline_s))
        return auth

    def cancel(self, order_ref: str, reason: CancelReason = CancelReason.HUB) -> None:
        self.send(Cancel(order_ref=order_ref, reason=reason))

    # --- waiting ------------------------------------------------------------------------------
    async def until(self, predicate: Callable[[], Any], timeout_s: float = 5.0) -> Any:
        """Wait until ``predicate()`` is truthy: re-checked whenever the hub receives something,
        and every POLL_S anyway (for predicates about the board's side)."""
        async with asyncio.timeout(timeout_s):
            while not (result := predicate()):
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._changed.wait(), POLL_S)
            return result

    def messages(self, cls: type[M], *, authenticated: bool | None = True) -> list[M]:
        return [m for m, a in self.received
                if isinstance(m, cls) and (authenticated is None or a == authenticated)]

    async def expect(self, cls: type[M], predicate: Callable[[M], bool] = lambda m: True,
                     timeout_s: float = 5.0) -> M:
        """The first authenticated message of ``cls`` matching ``predicate`` (waits for it)."""
        def find() -> M | None:
            return next((m for m in self.messages(cls) if predicate(m)), None)
        found: M = await self.until(find, timeout_s)
        return found

    def auth_failures(self) -> int:
        return sum(isinstance(e, AuthFailed) for e in self.events)
