"""Test harness: a board and a hub Link joined by an in-memory line under a virtual clock."""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from protocol import (
    TEST_MASTER_KEY,
    Hello,
    HelloAck,
    Link,
    LinkEvent,
    MessageReceived,
    Role,
    TransportConfig,
    derive_board_key,
)

UID = bytes.fromhex("0102030405060708090a0b0c")
KEY = derive_board_key(TEST_MASTER_KEY, UID)
HELLO = Hello(UID, "fw-1.0", 1, 1, 0, ("A1", "B2"))
HELLO_ACK = HelloAck(1, 1_700_000_000, True, 30, True)


@dataclass
class Pair:
    """Board and hub Links, delivering bytes directly (no loss) unless a Channel is used."""

    baud: int = 115200
    config: TransportConfig = field(default_factory=TransportConfig)
    addr: int = 0
    now: float = 0.0
    board_events: list[LinkEvent] = field(default_factory=list)
    hub_events: list[LinkEvent] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.board = Link(Role.BOARD, self.addr, self.baud, KEY, config=self.config)
        self.hub = Link(Role.HUB, self.addr, self.baud, None, config=self.config)

    def pump(self, rounds: int = 10) -> None:
        for _ in range(rounds):
            b = self.board.data_to_send()
            h = self.hub.data_to_send()
            if not b and not h:
                return
            if b:
                self.hub_events += self.hub.receive_data(b, self.now)
            if h:
                self.board_events += self.board.receive_data(h, self.now)

    def handshake(self) -> None:
        """HELLO, key the hub from the uid, HELLO_ACK: both ends then know both epochs."""
        self.board.send(HELLO, self.now)
        self.pump()
        assert MessageReceived(HELLO, False) in self.hub_events
        self.hub.set_key(derive_board_key(TEST_MASTER_KEY, UID))
        self.hub.send(HELLO_ACK, self.now)
        self.pump()
        assert MessageReceived(HELLO_ACK, True) in self.board_events
        self.board_events.clear()
        self.hub_events.clear()


def received(events: list[LinkEvent]) -> list[object]:
    return [e.message for e in events if isinstance(e, MessageReceived)]


@dataclass
class Channel:
    """One direction of a bad line: drops, duplicates, reorders, delays and corrupts chunks."""

    rnd: random.Random
    drop: float = 0.0
    dup: float = 0.0
    reorder: float = 0.0
    corrupt: float = 0.0
    max_delay: float = 0.0
    blackout_until: float = -1.0  # everything put before this time is lost (cable pulled)
    queue: list[tuple[float, int, bytes]] = field(default_factory=list)
    _n: int = 0

    def put(self, data: bytes, now: float) -> None:
        if now < self.blackout_until:
            return
        # Split at frame boundaries so loss/dup/reorder act on whole frames (as a UART would).
        for chunk in data.split(b"\x00\x00"):
            if not chunk:
                continue
            chunk = b"\x00" + chunk.strip(b"\x00") + b"\x00"
            if self.rnd.random() < self.drop:
                continue
            copies = 2 if self.rnd.random() < self.dup else 1
            for _ in range(copies):
                if self.rnd.random() < self.corrupt:
                    b = bytearray(chunk)
                    i = self.rnd.randrange(len(b))
                    b[i] ^= 1 << self.rnd.randrange(8)
                    chunk = bytes(b)
                t = now + self.rnd.random() * self.max_delay
                if self.rnd.random() < self.reorder:
                    t += self.max_delay + 0.001
                self._n += 1
                self.queue.append((t, self._n, chunk))

    def due(self, now: float) -> bytes:
        self.queue.sort()
        out = b""
        while self.queue and self.queue[0][0] <= now:
            out += self.queue.pop(0)[2]
        return out

    def next_time(self) -> float | None:
        return min((t for t, _, _ in self.queue), default=None)
