"""Transport over a bad line: loss, duplication, reordering, delay, bit errors and reboots of
either end. Whatever happens, each receiver session gets messages exactly once and in order,
and every message that was not reported SendFailed (or lost with a rebooted sender) arrives."""

from __future__ import annotations

import random
from dataclasses import dataclass, field

import pytest
from proto_harness import HELLO, HELLO_ACK, KEY, Channel

from protocol import (
    Hello,
    HelloAck,
    Link,
    LinkError,
    LinkEvent,
    Log,
    Message,
    MessageReceived,
    OrderRejected,
    PeerRestarted,
    RejectReason,
    Role,
    SendFailed,
    TransportConfig,
)

CONFIG = TransportConfig(window=4, max_retries=6, rto_slack_s=0.02, queue_limit=16)


@dataclass
class End:
    """One side's application: a Link plus bookkeeping of what it sent and received."""

    role: Role
    rnd: random.Random
    link: Link = field(init=False)
    incarnation: int = 0
    next_id: int = 0
    # id -> incarnation of the sender that sent it
    sent: dict[int, int] = field(default_factory=dict)
    failed: set[int] = field(default_factory=set)
    lost_with_sender: set[int] = field(default_factory=set)
    in_flight: list[int | None] = field(default_factory=list)  # None: HELLO / HELLO_ACK
    acked: set[int] = field(default_factory=set)
    # ((receiver incarnation, receiver epoch), id) in delivery order
    delivered: list[tuple[tuple[int, int], int]] = field(default_factory=list)
    restarts_seen: int = 0

    def __post_init__(self) -> None:
        self.boot(0.0)

    def boot(self, now: float) -> None:
        self.lost_with_sender.update(i for i in self.in_flight if i is not None)
        self.in_flight = []
        self.incarnation += 1
        key = KEY if self.role is Role.BOARD else None
        self.link = Link(self.role, 0, 115200, key, config=CONFIG)
        if self.role is Role.BOARD:
            self.send_control(HELLO, now)

    def send_control(self, msg: Message, now: float) -> None:
        self.link.send(msg, now)
        self.in_flight.append(None)

    def make(self, i: int) -> Message:
        if self.role is Role.BOARD:
            return Log(20, i & 0xFFFF, f"b{i}")
        return OrderRejected(i & 0xFFFF, RejectReason.BUSY, f"h{i}")

    @staticmethod
    def ident(msg: Message) -> int | None:
        if isinstance(msg, Log):
            return int(msg.text[1:])
        if isinstance(msg, OrderRejected):
            return int(msg.message[1:])
        return None

    def try_send(self, now: float) -> None:
        if self.role is Role.HUB and self.link.key is None:
            return  # the hub talks only after HELLO told it which key to use
        i = self.next_id
        try:
            self.link.send(self.make(i), now)
        except LinkError:
            assert self.link.pending >= CONFIG.queue_limit
            return
        self.next_id += 1
        self.sent[i] = self.incarnation
        self.in_flight.append(i)

    def on_events(self, events: list[LinkEvent], now: float) -> None:
        for ev in events:
            if isinstance(ev, MessageReceived):
                if isinstance(ev.message, Hello) and self.role is Role.HUB:
                    self.link.set_key(KEY)
                    self.send_control(HELLO_ACK, now)
                elif isinstance(ev.message, HelloAck):
                    pass
                else:
                    i = self.ident(ev.message)
                    assert i is not None
                    self.delivered.append(((self.incarnation, self.link.epoch), i))
            elif isinstance(ev, SendFailed):
                i = self.ident(ev.message)
                if i is not None:
                    self.failed.add(i)
                    self.in_flight.remove(i)
                else:
                    self.in_flight.remove(None)
                    if self.role is Role.BOARD and isinstance(ev.message, Hello):
                        self.send_control(HELLO, now)  # keep introducing ourselves
            elif isinstance(ev, PeerRestarted):
                self.restarts_seen += 1
                if self.role is Role.BOARD:
                    self.send_control(HELLO, now)

    def sync(self) -> None:
        """The link releases messages oldest first (ACK) or all at once (SendFailed): whatever
        it no longer holds, and was not reported failed, was acknowledged."""
        extra = len(self.in_flight) - self.link.pending
        if extra > 0:
            self.acked.update(i for i in self.in_flight[:extra] if i is not None)
            del self.in_flight[:extra]


def run(seed: int, *, messages: int, reboots: bool, drop: float, dup: float, reorder: float,
        corrupt: float, outages: bool = False) -> tuple[End, End]:
    rnd = random.Random(seed)
    board, hub = End(Role.BOARD, rnd), End(Role.HUB, rnd)
    b2h = Channel(rnd, drop, dup, reorder, corrupt, max_delay=0.03)
    h2b = Channel(rnd, drop, dup, reorder, corrupt, max_delay=0.03)
    now = 0.0
    next_app = 0.0
    end_of_traffic = None
    probes: tuple[int, int] | None = None
    for _step in range(200_000):
        # Move bytes the links produced onto the line.
        b2h.put(board.link.data_to_send(), now)
        h2b.put(hub.link.data_to_send(), now)
        candidates = [
            t for t in (b2h.next_time(), h2b.next_time(), board.link.next_timeout(),
                        hub.link.next_timeout()) if t is not None
        ]
        if end_of_traffic is None:
            candidates.append(next_app)
        if not candidates:
            if probes is None:
                # Settled: one more message each way proves the link works again.
                probes = (board.next_id, hub.next_id)
                assert hub.link.key is not None, "the hub should have been re-keyed by HELLO"
                board.try_send(now)
                hub.try_send(now)
                continue
            break
        now = max(now, min(candidates))
        data = b2h.due(now)
        if data:
            hub.on_events(hub.link.receive_data(data, now), now)
        data = h2b.due(now)
        if data:
            board.on_events(board.link.receive_data(data, now), now)
        board.sync()
        hub.sync()
        for end in (board, hub):
            t = end.link.next_timeout()
            if t is not None and t <= now:
                end.on_events(end.link.handle_timeout(now), now)
        if end_of_traffic is None and now >= next_app:
            next_app = now + rnd.uniform(0.001, 0.02)
            rnd.choice((board, hub)).try_send(now)
            if reboots and rnd.random() < 0.004:
                rnd.choice((board, hub)).boot(now)
            if outages and rnd.random() < 0.003:
                # One direction dies for longer than the retry budget: someone gives up.
                rnd.choice((b2h, h2b)).blackout_until = now + rnd.uniform(3.0, 9.0)
            board.sync()
            hub.sync()
            if board.next_id + hub.next_id >= messages:
                end_of_traffic = now
                for ch in (b2h, h2b):  # the line heals so that everything settles
                    ch.drop = ch.dup = ch.reorder = ch.corrupt = 0.0
                    ch.blackout_until = -1.0
    else:
        pytest.fail("simulation did not settle")
    assert board.link.pending == 0 and hub.link.pending == 0
    board.sync()
    hub.sync()
    assert probes is not None
    assert probes[0] in board.acked and probes[1] in hub.acked, "link did not recover"
    return board, hub


def check_direction(sender: End, receiver: End) -> None:
    per_session: dict[tuple[int, int], list[int]] = {}
    for inc, i in receiver.delivered:
        per_session.setdefault(inc, []).append(i)
    for ids in per_session.values():
        assert ids == sorted(ids), "out of order within a session"
        assert len(ids) == len(set(ids)), "duplicate within a session"
    delivered = {i for _, i in receiver.delivered}
    # Everything acknowledged was delivered; so was everything neither reported failed nor
    # still unacknowledged when its sender rebooted.
    assert sender.acked <= delivered, sorted(sender.acked - delivered)[:10]
    must_arrive = set(sender.sent) - sender.failed - sender.lost_with_sender
    assert must_arrive <= delivered, sorted(must_arrive - delivered)[:10]
    assert not sender.acked & sender.failed
    # Nothing arrives that was never sent.
    assert delivered <= set(sender.sent)


@pytest.mark.parametrize("seed", range(6))
def test_lossy_line_without_reboots_delivers_everything_exactly_once(seed: int) -> None:
    board, hub = run(seed, messages=300, reboots=False, drop=0.1, dup=0.05, reorder=0.05,
                     corrupt=0.03)
    check_direction(board, hub)
    check_direction(hub, board)
    # Without reboots (and with a retry budget the line does not exhaust) nothing fails, and
    # nothing is delivered twice even across the whole run.
    assert not board.failed and not hub.failed
    assert len(hub.delivered) == len({i for _, i in hub.delivered}) == len(board.sent)
    assert len(board.delivered) == len(hub.sent)
    assert board.link.stats.retransmits > 0 and hub.link.stats.crc_errors >= 0


@pytest.mark.parametrize("seed", range(10))
def test_lossy_line_with_reboots_of_either_end(seed: int) -> None:
    board, hub = run(seed, messages=400, reboots=True, drop=0.08, dup=0.05, reorder=0.05,
                     corrupt=0.02)
    check_direction(board, hub)
    check_direction(hub, board)
    assert hub.delivered and board.delivered


@pytest.mark.parametrize("seed", range(8))
def test_outages_long_enough_to_give_up_then_recovery(seed: int) -> None:
    board, hub = run(seed, messages=400, reboots=seed % 2 == 1, drop=0.05, dup=0.02,
                     reorder=0.02, corrupt=0.01, outages=True)
    check_direction(board, hub)
    check_direction(hub, board)
    # Outages made someone give up (run() also checked that both directions recovered).
    assert board.link.stats.send_failures + hub.link.stats.send_failures > 0 or (
        board.failed or hub.failed
    )


def test_harness_really_exercises_reboots_and_failures() -> None:
    """Guard against a simulation that silently stops testing anything hard."""
    restarts = failures = lost = 0
    for seed in range(10):
        board, hub = run(seed, messages=400, reboots=True, drop=0.08, dup=0.05, reorder=0.05,
                         corrupt=0.02)
        restarts += board.restarts_seen + hub.restarts_seen
        failures += len(board.failed) + len(hub.failed)
        lost += len(board.lost_with_sender) + len(hub.lost_with_sender)
        assert len(board.acked) + len(hub.acked) > 150
    assert restarts >= 10 and failures > 0 and lost > 0
