"""Reliable delivery: sequence numbers, cumulative ACKs, a go-back-N window, timers.

Pure bookkeeping with no I/O and no clock of its own: the `Link` feeds it times and frames. The
rules (see docs/protocol.md, "Transport"):

* A sender numbers its reliable frames 1, 2, 3, ... (u16, wrapping) from the start of each
  stream; a stream is (sender epoch, receiver epoch) and restarts at 1 when either changes.
* At most `window` frames are unacknowledged. A cumulative ACK `a` acknowledges every frame up
  to and including `a`; ACKs for frames not in flight are ignored.
* The oldest unacknowledged frame has a retransmission deadline. When it passes, every frame in
  flight is resent (go-back-N) and the timeout doubles (up to `max_backoff` times the first);
  after `max_retries` resends the sender
  gives up (SendFailed) and starts a new epoch.
* The receiver delivers only the next expected seq; anything else is a duplicate (behind) or out
  of order (ahead), dropped and answered with an ACK of what it has.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Final

from protocol.framing import MAX_WIRE, wire_length
from protocol.header import HEADER_SIZE, U16_MOD
from protocol.messages import Message

BITS_PER_BYTE: Final = 10  # 8N1: start + 8 data + stop
ACK_WIRE: Final = wire_length(HEADER_SIZE)
SEQ_MASK: Final = U16_MOD - 1
HALF_SEQ: Final = U16_MOD // 2
FIRST_SEQ: Final = 1


@dataclass(frozen=True, slots=True)
class TransportConfig:
    """Tunables. The defaults suit 9600..460800 baud on a UART, USB-serial or RS-485 line."""

    window: int = 4  # reliable frames in flight
    max_retries: int = 5  # resends of the oldest frame before SendFailed
    max_backoff: int = 8  # the timeout doubles per retry up to this multiple of rto0
    rto_slack_s: float = 0.05  # fixed allowance: USB latency timers, OS scheduling, peer work
    queue_limit: int = 32  # messages queued or in flight before send() raises LinkError

    def __post_init__(self) -> None:
        if not 1 <= self.window < HALF_SEQ:
            raise ValueError(f"window must be 1..{HALF_SEQ - 1}, got {self.window}")
        if self.max_retries < 0:
            raise ValueError("max_retries must be >= 0")
        if self.max_backoff < 1:
            raise ValueError("max_backoff must be >= 1")
        if self.rto_slack_s < 0:
            raise ValueError("rto_slack_s must be >= 0")
        if self.queue_limit < self.window:
            raise ValueError("queue_limit must be at least the window")


def seq_add(seq: int, n: int) -> int:
    return (seq + n) & SEQ_MASK


def seq_diff(a: int, b: int) -> int:
    """How far `a` is ahead of `b`, modulo 2^16 (0..65535)."""
    return (a - b) & SEQ_MASK


def byte_time(baud: int) -> float:
    """Seconds one byte takes on an 8N1 line."""
    return BITS_PER_BYTE / baud


def base_rto(baud: int, inflight_wire_bytes: int, slack_s: float) -> float:
    """First retransmission timeout for the oldest frame in flight.

    rto0 = slack + (in-flight wire bytes + one ACK + one maximum frame the peer may be sending
    first) * 10 / baud. Retry k waits rto0 * min(2^k, max_backoff).
    """
    return slack_s + (inflight_wire_bytes + ACK_WIRE + MAX_WIRE) * byte_time(baud)


@dataclass(slots=True)
class Pending:
    """A message queued or in flight. `seq` is 0 until it is first transmitted."""

    message: Message
    payload: bytes
    wire_len: int
    seq: int = 0


class TxWindow:
    """Sender half: queue, window, cumulative ACK and retransmission timer."""

    __slots__ = ("baud", "config", "deadline", "in_flight", "next_seq", "queue", "retries")

    def __init__(self, baud: int, config: TransportConfig) -> None:
        self.baud = baud
        self.config = config
        self.queue: deque[Pending] = deque()
        self.in_flight: deque[Pending] = deque()
        self.next_seq = FIRST_SEQ
        self.retries = 0
        self.deadline: float | None = None

    def __len__(self) -> int:
        return len(self.queue) + len(self.in_flight)

    def has_room(self) -> bool:
        return len(self.in_flight) < self.config.window

    def rto(self) -> float:
        inflight = sum(p.wire_len for p in self.in_flight)
        backoff = min(1 << min(self.retries, 30), self.config.max_backoff)
        return base_rto(self.baud, inflight, self.config.rto_slack_s) * backoff

    def take_next(self, now: float) -> Pending:
        """Move the head of the queue into flight with the next seq."""
        p = self.queue.popleft()
        p.seq = self.next_seq
        self.next_seq = seq_add(self.next_seq, 1)
        self.in_flight.append(p)
        if self.deadline is None:
            self.deadline = now + self.rto()
        return p

    def on_ack(self, ack: int, now: float) -> int:
        """Apply a cumulative ACK; returns how many frames it acknowledged (0 if stale/bogus)."""
        if not self.in_flight:
            return 0
        count = seq_diff(ack, self.in_flight[0].seq) + 1
        if count > len(self.in_flight):
            return 0
        for _ in range(count):
            self.in_flight.popleft()
        self.retries = 0
        self.deadline = now + self.rto() if self.in_flight else None
        return count

    def expired(self, now: float) -> bool:
        return self.deadline is not None and now >= self.deadline

    def back_off(self, now: float) -> bool:
        """Count one retry; False when the retry limit is exhausted (give up)."""
        self.retries += 1
        if self.retries > self.config.max_retries:
            return False
        self.deadline = now + self.rto()
        return True

    def drain(self) -> list[Message]:
        """Drop everything (in flight first, then queued) and restart numbering at 1."""
        failed = [p.message for p in self.in_flight] + [p.message for p in self.queue]
        self.in_flight.clear()
        self.queue.clear()
        self.next_seq = FIRST_SEQ
        self.retries = 0
        self.deadline = None
        return failed


class RxSequencer:
    """Receiver half: next expected seq of the peer's current stream."""

    __slots__ = ("expected",)

    def __init__(self) -> None:
        self.expected = FIRST_SEQ

    def reset(self) -> None:
        self.expected = FIRST_SEQ

    @property
    def ack(self) -> int:
        """Cumulative ACK value: the last seq delivered (0 when none yet in this stream)."""
        return seq_add(self.expected, -1)

    def accept(self, seq: int) -> int:
        """0 = deliver (in order); -1 = duplicate (already delivered); +1 = ahead (out of order)."""
        d = seq_diff(seq, self.expected)
        if d == 0:
            self.expected = seq_add(self.expected, 1)
            return 0
        return -1 if d >= HALF_SEQ else 1
