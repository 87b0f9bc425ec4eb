"""The board's UART: a pty, line noise both ways, and ``protocol.Link`` driven on the event loop.

Bytes read from the pty (after noise) go to ``link.receive_data``; whatever the link wants to
send (``data_to_send``) goes back out (after noise); ``link.next_timeout()`` is kept armed as one
``call_later`` and ``link.handle_timeout`` runs when it fires (docs/protocol.md, transport).
Every event the link reports goes to the board's ``on_events`` callback.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path

from edge_hub.simboard.noise import LineNoise
from edge_hub.simboard.pty import PtyLine
from protocol import (
    PROTOCOL_VERSION,
    Flags,
    Header,
    Link,
    LinkEvent,
    Message,
    Role,
    encode_frame,
)

# (events, acked): acked is True when ACKs alone made room in the send queue.
EventSink = Callable[[list[LinkEvent], bool], None]


class BoardWire:
    def __init__(self, on_events: EventSink, *, link_path: Path | str | None, baud: int,
                 junk_rate: float, flip_rate: float, seeds: tuple[int, int]) -> None:
        self._on_events = on_events
        self.baud = baud
        self.line = PtyLine(self._on_data, link_path=link_path)
        self.rx_noise = LineNoise(junk_rate, flip_rate, seed=seeds[0])
        self.tx_noise = LineNoise(junk_rate, flip_rate, seed=seeds[1])
        self.link: Link | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._timer_when: float | None = None

    # --- power: a reset gives a new Link, with a new random session epoch ----------------------
    def power_on(self, key: bytes | None) -> Link:
        self.link = Link(role=Role.BOARD, addr=0, baud=self.baud, key=key, epoch=None)
        return self.link

    def power_off(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer = self._timer_when = None
        self.link = None

    # --- sending ------------------------------------------------------------------------------
    def send(self, message: Message) -> None:
        """Queue on the link (raises LinkError as ``Link.send`` does) and write what is due."""
        if self.link is None:
            raise RuntimeError("the board is powered off")
        self.link.send(message, time.monotonic())
        self.service()

    def forge(self, message: Message) -> None:
        """Write an unsigned reliable frame for ``message`` by hand, bypassing the link."""
        link = self.link
        if link is None:
            raise RuntimeError("the board is powered off")
        header = Header(PROTOCOL_VERSION, int(message.TYPE), int(Flags.RELIABLE), link.addr,
                        link.epoch, link.peer_epoch, 1, 0)
        self.line.write(self.tx_noise.apply(encode_frame(header.pack() + message.encode())))

    def service(self) -> None:
        """Write what the link wants on the line and keep its timer armed."""
        link = self.link
        if link is None:
            return
        out = link.data_to_send()
        if out:
            self.line.write(self.tx_noise.apply(out))
        when = link.next_timeout()
        if when == self._timer_when:
            return
        if self._timer is not None:
            self._timer.cancel()
        self._timer, self._timer_when = None, when
        if when is not None:
            delay = max(0.0, when - time.monotonic())
            self._timer = asyncio.get_running_loop().call_later(delay, self._on_timer)

    # --- receiving ----------------------------------------------------------------------------
    def _on_data(self, data: bytes) -> None:
        link = self.link
        if link is None:
            return  # powered off: the UART is dead
        pending = link.pending
        events = link.receive_data(self.rx_noise.apply(data), time.monotonic())
        acked = link.pending < pending
        self._on_events(events, acked)
        self.service()

    def _on_timer(self) -> None:
        self._timer = self._timer_when = None
        if self.link is None:
            return
        self._on_events(self.link.handle_timeout(time.monotonic()), False)
        self.service()

    # --- noise --------------------------------------------------------------------------------
    def set_noise(self, junk_rate: float | None, flip_rate: float | None) -> None:
        for noise in (self.rx_noise, self.tx_noise):
            noise.set_rates(noise.junk_rate if junk_rate is None else junk_rate,
                            noise.flip_rate if flip_rate is None else flip_rate)

    @property
    def noise_counters(self) -> dict[str, int]:
        rx, tx = self.rx_noise.counters, self.tx_noise.counters
        return {"junk_bytes": rx.junk_bytes + tx.junk_bytes,
                "bits_flipped": rx.bits_flipped + tx.bits_flipped}
