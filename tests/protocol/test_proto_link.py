"""Link: handshake, delivery, ACKs, windows, timers, addressing, queue limits, stats."""

from __future__ import annotations

import pytest
from proto_harness import HELLO, KEY, UID, Pair, received

from protocol import (
    HEADER_SIZE,
    Cancel,
    CancelReason,
    Flags,
    FrameDecoder,
    Header,
    Link,
    LinkError,
    Log,
    MessageReceived,
    MsgType,
    OrderRejected,
    RejectReason,
    Role,
    SendFailed,
    TransportConfig,
    VendApproved,
    VendOutcome,
    VendResult,
    base_rto,
)


def frames_of(wire: bytes) -> list[Header]:
    return [Header.unpack(f) for f in FrameDecoder().feed(wire)]


def test_handshake_then_money_frames_are_authenticated_both_ways() -> None:
    p = Pair()
    p.handshake()
    p.hub.send(VendApproved("ORD1", bytes(range(8)), 1, 30), p.now)
    p.board.send(VendResult("ORD1", VendOutcome.SUCCESS, 0, 1), p.now)
    p.pump()
    assert p.board_events == [MessageReceived(VendApproved("ORD1", bytes(range(8)), 1, 30), True)]
    assert p.hub_events == [MessageReceived(VendResult("ORD1", VendOutcome.SUCCESS, 0, 1), True)]
    assert p.board.pending == 0 and p.hub.pending == 0
    assert p.board.next_timeout() is None and p.hub.next_timeout() is None


def test_hub_frames_carry_from_hub_and_board_frames_do_not() -> None:
    p = Pair()
    p.board.send(HELLO, 0.0)
    board_wire = p.board.data_to_send()
    (h,) = frames_of(board_wire)
    assert h.type == MsgType.HELLO and not h.flags & Flags.FROM_HUB
    assert h.flags & Flags.RELIABLE and not h.flags & Flags.MAC  # HELLO is never MAC'd
    assert h.seq == 1 and h.peer_epoch == 0 and h.epoch == p.board.epoch
    p.hub.receive_data(board_wire, 0.0)
    (ack,) = frames_of(p.hub.data_to_send())
    assert ack.type == MsgType.ACK and ack.flags == Flags.ACK | Flags.FROM_HUB
    assert ack.ack == 1 and ack.peer_epoch == p.board.epoch


def test_window_limits_frames_in_flight_and_acks_release_the_rest() -> None:
    p = Pair(config=TransportConfig(window=3))
    p.handshake()
    msgs = [Log(20, i, f"line {i}") for i in range(7)]
    for m in msgs:
        p.board.send(m, p.now)
    first = p.board.data_to_send()
    assert [h.seq for h in frames_of(first)] == [2, 3, 4]  # HELLO was seq 1
    assert p.board.pending == 7
    p.hub_events += p.hub.receive_data(first, p.now)
    (ack,) = frames_of(p.hub.data_to_send())
    assert ack.ack == 4
    p.board.receive_data(encode_frame_of(ack), p.now)
    assert [h.seq for h in frames_of(p.board.data_to_send())] == [5, 6, 7]
    p.pump(rounds=20)
    assert p.board.pending == 4  # 5..7 were discarded above; the 7th message waits for room
    t = p.board.next_timeout()
    assert t is not None
    p.board.handle_timeout(t)
    p.pump(rounds=20)
    assert received(p.hub_events) == msgs
    assert p.board.pending == 0


def test_lost_frame_is_retransmitted_after_the_baud_derived_timeout() -> None:
    p = Pair(baud=9600)
    p.handshake()
    p.board.send(Log(20, 1, "x" * 80), p.now)
    lost = p.board.data_to_send()
    assert lost
    due = p.board.next_timeout()
    assert due is not None
    wire = len(lost)
    assert due == pytest.approx(base_rto(9600, wire, p.board.config.rto_slack_s))
    assert p.board.handle_timeout(due - 1e-6) == []
    assert p.board.data_to_send() == b""
    p.now = due
    assert p.board.handle_timeout(p.now) == []
    assert p.board.stats.retransmits == 1
    again = p.board.next_timeout()
    assert again is not None and again - p.now == pytest.approx(2 * (due - 0.0))
    p.pump()
    assert received(p.hub_events) == [Log(20, 1, "x" * 80)]


def test_faster_baud_gives_shorter_timeouts() -> None:
    assert base_rto(9600, 100, 0.0) == pytest.approx(12 * base_rto(115200, 100, 0.0))
    assert base_rto(460800, 100, 0.05) < base_rto(115200, 100, 0.05) < base_rto(9600, 100, 0.05)


def test_retry_limit_gives_send_failed_and_a_new_epoch() -> None:
    cfg = TransportConfig(max_retries=2)
    p = Pair(config=cfg)
    p.handshake()
    old_epoch = p.board.epoch
    msgs = [Log(20, i, "t") for i in range(3)]
    for m in msgs:
        p.board.send(m, p.now)
    events = []
    for _ in range(cfg.max_retries + 1):
        t = p.board.next_timeout()
        assert t is not None
        events += p.board.handle_timeout(t)
        p.board.data_to_send()  # lost
    assert events == [SendFailed(m) for m in msgs]
    assert p.board.stats.send_failures == 3 and p.board.stats.retransmits == 3 * cfg.max_retries
    assert p.board.epoch != old_epoch and p.board.pending == 0
    # The link recovers: the hub sees a new board session and later frames get through.
    p.board.send(Log(20, 9, "after"), p.now)
    p.pump()
    assert p.hub.stats.peer_restarts == 1
    assert Log(20, 9, "after") in received(p.hub_events)
    # ... and so does the other direction: the hub restarted its stream towards the board's
    # new epoch, and the board expects that stream from seq 1 again.
    p.hub.send(OrderRejected(5, RejectReason.BUSY, "busy"), p.now)
    p.pump()
    assert received(p.board_events) == [OrderRejected(5, RejectReason.BUSY, "busy")]
    assert p.board.pending == 0 and p.hub.pending == 0


def test_duplicates_are_suppressed_and_reacked() -> None:
    p = Pair()
    p.handshake()
    p.board.send(Log(20, 1, "once"), p.now)
    p.hub_events += p.hub.receive_data(p.board.data_to_send(), p.now)
    p.hub.data_to_send()  # the ACK is lost
    t = p.board.next_timeout()
    assert t is not None
    p.board.handle_timeout(t)  # retransmission: same seq, new MAC counter
    p.hub_events += p.hub.receive_data(p.board.data_to_send(), t)
    assert received(p.hub_events) == [Log(20, 1, "once")]
    assert p.hub.stats.duplicates == 1 and p.hub.stats.replays == 0
    (ack,) = frames_of(p.hub.data_to_send())
    p.board.receive_data(encode_frame_of(ack), t)
    assert p.board.pending == 0


def encode_frame_of(h: Header) -> bytes:
    from protocol import encode_frame

    return encode_frame(h.pack())


def test_send_queue_is_bounded_with_a_clear_error() -> None:
    p = Pair(config=TransportConfig(window=2, queue_limit=4))
    p.handshake()
    for i in range(4):
        p.board.send(Log(20, i, "q"), p.now)
    with pytest.raises(LinkError, match="send queue full"):
        p.board.send(Log(20, 5, "q"), p.now)


def test_money_messages_need_a_key_to_send() -> None:
    hub = Link(Role.HUB)
    with pytest.raises(LinkError, match="needs a link key"):
        hub.send(VendApproved("X", bytes(8), 1, 10), 0.0)
    with pytest.raises(LinkError, match="not a protocol message"):
        hub.send("hello", 0.0)  # type: ignore[arg-type]


def test_constructor_and_key_validation() -> None:
    with pytest.raises(LinkError, match="addr"):
        Link(Role.HUB, addr=248)
    with pytest.raises(LinkError, match="baud"):
        Link(Role.HUB, baud=0)
    with pytest.raises(LinkError, match="32 bytes"):
        Link(Role.HUB, key=b"short")
    with pytest.raises(LinkError, match="epoch"):
        Link(Role.HUB, epoch=0)
    assert Link(Role.HUB, epoch=7).epoch == 7


def test_address_filtering_on_a_shared_bus() -> None:
    b3 = Link(Role.BOARD, addr=3, key=KEY)
    b4 = Link(Role.BOARD, addr=4, key=KEY)
    hub3 = Link(Role.HUB, addr=3)
    b3.send(HELLO, 0.0)
    wire = b3.data_to_send()
    assert received(hub3.receive_data(wire, 0.0)) == [HELLO]
    # The other board ignores the board frame (wrong direction) and the hub's ACK (wrong addr).
    assert b4.receive_data(wire, 0.0) == []
    ack = hub3.data_to_send()
    assert b4.receive_data(ack, 0.0) == []
    assert b4.stats.filtered == 2
    hub4 = Link(Role.HUB, addr=4)
    assert hub4.receive_data(wire, 0.0) == [] and hub4.stats.filtered == 1
    # A board never accepts another board's frame, even for its own address (no FROM_HUB).
    b3_twin = Link(Role.BOARD, addr=3, key=KEY)
    assert b3_twin.receive_data(wire, 0.0) == [] and b3_twin.stats.filtered == 1


def test_stats_count_junk_and_crc_errors() -> None:
    p = Pair()
    p.board.send(HELLO, 0.0)
    wire = bytearray(p.board.data_to_send())
    wire[10] ^= 0x40
    p.hub.receive_data(b"\x00\x13\x37\x00" + bytes(wire), 0.0)
    s = p.hub.stats
    assert s.frames_rx == 0
    assert s.crc_errors + s.cobs_errors == 2 and s.junk_bytes > 0


def test_unknown_type_is_acked_and_reported() -> None:
    from protocol import UnknownMessage, encode_frame

    hub = Link(Role.HUB)
    hdr = Header(1, 0x7E, int(Flags.RELIABLE), 0, 0x1234, 0, 1, 0).pack()
    events = hub.receive_data(encode_frame(hdr + b"future"), 0.0)
    assert events == [UnknownMessage(0x7E, 1)]
    (ack,) = frames_of(hub.data_to_send())
    assert ack.ack == 1  # acknowledged: it does not block the stream behind it
    hdr2 = Header(2, 0x10, int(Flags.RELIABLE), 0, 0x1234, 0, 2, 0).pack()
    assert hub.receive_data(encode_frame(hdr2 + b"v2"), 0.0) == [UnknownMessage(0x10, 2)]
    assert hub.stats.unknown == 2


def test_invalid_payload_is_reported_not_raised() -> None:
    from protocol import DecodeReason, InvalidMessage, encode_frame

    hub = Link(Role.HUB)
    hdr = Header(1, MsgType.LOG, int(Flags.RELIABLE), 0, 0x99, 0, 1, 0).pack()
    (ev,) = hub.receive_data(encode_frame(hdr + b"\x14"), 0.0)
    assert isinstance(ev, InvalidMessage) and ev.reason is DecodeReason.TRUNCATED
    assert hub.stats.invalid == 1


def test_uid_and_header_size_constants() -> None:
    assert len(UID) == 12 and HEADER_SIZE == 16
    assert Cancel("A", CancelReason.EXPIRED).TYPE == MsgType.CANCEL


def test_backoff_doubles_then_caps() -> None:
    cfg = TransportConfig(max_retries=6, max_backoff=4)
    p = Pair(config=cfg)
    p.handshake()
    p.board.send(Log(20, 1, "x"), p.now)
    p.board.data_to_send()
    gaps = []
    last = p.now
    for _ in range(cfg.max_retries):
        t = p.board.next_timeout()
        assert t is not None
        gaps.append(t - last)
        last = t
        assert p.board.handle_timeout(t) == []
        p.board.data_to_send()
    ratios = [round(g / gaps[0], 6) for g in gaps]
    assert ratios == [1, 2, 4, 4, 4, 4]


def test_a_dead_peer_is_logged_once_and_its_return_once(caplog: pytest.LogCaptureFixture) -> None:
    import logging

    cfg = TransportConfig(max_retries=1)
    p = Pair(config=cfg)
    p.handshake()
    caplog.set_level(logging.DEBUG, logger="protocol.link")
    for round_ in range(3):  # three give-ups in a row while the hub is unplugged
        p.board.send(Log(20, round_, "x"), p.now)
        while (t := p.board.next_timeout()) is not None:
            p.board.handle_timeout(t)
            p.board.data_to_send()
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "not acknowledging" in warnings[0].getMessage()
    p.board.send(Log(20, 9, "back"), p.now)
    p.pump()
    infos = [r.getMessage() for r in caplog.records if r.levelno == logging.INFO]
    assert any("acknowledging again" in m for m in infos)
