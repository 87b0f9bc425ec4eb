"""MAC rules: forgery, replay, missing MAC, wrong session, and the pymavlink replay-state bug."""

from __future__ import annotations

import hashlib
import hmac

from hypothesis import given, settings
from hypothesis import strategies as st
from proto_harness import HELLO, KEY, UID, Pair, received

from protocol import (
    HEADER_SIZE,
    TEST_MASTER_KEY,
    AuthFailed,
    CancelReason,
    Flags,
    FrameDecoder,
    Header,
    Link,
    Log,
    MessageReceived,
    MsgType,
    Role,
    VendApproved,
    VendOutcome,
    VendResult,
    derive_board_key,
    encode_frame,
    make_trailer,
)
from protocol import Cancel as CancelMsg

APPROVE = VendApproved("ORD-1", bytes.fromhex("0011223344556677"), 1, 30)
RESULT = VendResult("ORD-1", VendOutcome.FAILED, 3, 0)


def decode(wire: bytes) -> list[bytes]:
    return FrameDecoder().feed(wire)


def craft(link_to: Link, sender_epoch: int, msg_type: int, payload: bytes, *, seq: int,
          key: bytes | None, counter: int, from_hub: bool, peer_epoch: int | None = None) -> bytes:
    flags = Flags.RELIABLE | (Flags.FROM_HUB if from_hub else 0) | (Flags.MAC if key else 0)
    pe = link_to.epoch if peer_epoch is None else peer_epoch
    hdr = Header(1, msg_type, int(flags), link_to.addr, sender_epoch, pe, seq, 0).pack()
    body = payload + (make_trailer(key, hdr, payload, counter) if key else b"")
    return encode_frame(hdr + body)


def test_board_key_derivation_matches_the_spec() -> None:
    expect = hmac.new(TEST_MASTER_KEY, b"upv1 board key" + UID, hashlib.sha256).digest()
    assert derive_board_key(TEST_MASTER_KEY, UID) == expect == KEY
    assert derive_board_key(TEST_MASTER_KEY, bytes(12)) != KEY


def test_frame_mac_is_truncated_hmac_over_header_payload_counter() -> None:
    p = Pair()
    p.handshake()
    p.board.send(RESULT, 0.0)
    (frame,) = decode(p.board.data_to_send())
    hdr, body = frame[:HEADER_SIZE], frame[HEADER_SIZE:]
    assert Header.unpack(hdr).flags & Flags.MAC
    payload, counter, tag = body[:-12], body[-12:-8], body[-8:]
    assert payload == RESULT.encode()
    assert int.from_bytes(counter, "little") == 1  # HELLO is unsigned: first MAC'd frame
    assert tag == hmac.new(KEY, hdr + payload + counter, hashlib.sha256).digest()[:8]


def test_forged_approval_without_the_key_is_dropped() -> None:
    p = Pair()
    p.handshake()
    wrong = derive_board_key(bytes(range(1, 33)), UID)
    wire = craft(p.board, p.hub.epoch, MsgType.VEND_APPROVED, APPROVE.encode(), seq=2,
                 key=wrong, counter=99, from_hub=True)
    assert p.board.receive_data(wire, 0.0) == [AuthFailed(MsgType.VEND_APPROVED)]
    assert p.board.stats.mac_failures == 1
    assert p.board.data_to_send() == b""  # not even acknowledged


def test_unsigned_frames_are_refused_once_keyed() -> None:
    p = Pair()
    p.handshake()
    for mtype, payload in [(MsgType.VEND_APPROVED, APPROVE.encode()),
                           (MsgType.LOG, Log(20, 1, "x").encode()),
                           (MsgType.CANCEL, CancelMsg("ORD-1", CancelReason.HUB).encode())]:
        wire = craft(p.board, p.hub.epoch, mtype, payload, seq=2, key=None, counter=0,
                     from_hub=True)
        assert p.board.receive_data(wire, 0.0) == [AuthFailed(mtype)]
    assert p.board.stats.mac_failures == 3


def test_money_frames_are_never_taken_unauthenticated_even_on_an_unkeyed_link() -> None:
    hub = Link(Role.HUB)  # no key yet
    wire = craft(hub, 0x1111, MsgType.VEND_RESULT, RESULT.encode(), seq=1, key=None,
                 counter=0, from_hub=False, peer_epoch=0)
    assert hub.receive_data(wire, 0.0) == [AuthFailed(MsgType.VEND_RESULT)]
    # ... and a MAC'd one the unkeyed hub cannot check is refused too.
    wire = craft(hub, 0x1111, MsgType.VEND_RESULT, RESULT.encode(), seq=1, key=KEY,
                 counter=1, from_hub=False, peer_epoch=hub.epoch)
    assert hub.receive_data(wire, 0.0) == [AuthFailed(MsgType.VEND_RESULT)]
    # Non-money frames on an unkeyed link are delivered, flagged unauthenticated.
    wire = craft(hub, 0x1111, MsgType.LOG, Log(20, 1, "hi").encode(), seq=1, key=None,
                 counter=0, from_hub=False, peer_epoch=0)
    assert hub.receive_data(wire, 0.0) == [MessageReceived(Log(20, 1, "hi"), False)]


def test_tampered_payload_with_fixed_crc_fails_the_mac() -> None:
    p = Pair()
    p.handshake()
    p.hub.send(VendApproved("ORD-1", bytes(8), 1, 30), 0.0)
    (frame,) = decode(p.hub.data_to_send())
    tampered = bytearray(frame)
    tampered[HEADER_SIZE + 7] ^= 0x01  # quantity/auth byte, CRC recomputed by encode_frame
    assert p.board.receive_data(encode_frame(bytes(tampered)), 0.0) == [
        AuthFailed(MsgType.VEND_APPROVED)
    ]
    tampered_hdr = bytearray(frame)
    tampered_hdr[12] ^= 0x01  # seq changed: the header is covered too
    assert p.board.receive_data(encode_frame(bytes(tampered_hdr)), 0.0) == [
        AuthFailed(MsgType.VEND_APPROVED)
    ]
    assert p.board.receive_data(encode_frame(frame), 0.0) == [
        MessageReceived(VendApproved("ORD-1", bytes(8), 1, 30), True)
    ]


def test_replayed_frame_is_delivered_once() -> None:
    p = Pair()
    p.handshake()
    p.hub.send(APPROVE, 0.0)
    wire = p.hub.data_to_send()
    assert received(p.board.receive_data(wire, 0.0)) == [APPROVE]
    assert p.board.receive_data(wire, 0.0) == [AuthFailed(MsgType.VEND_APPROVED)]
    assert p.board.stats.replays == 1 and p.board.stats.mac_failures == 0


def test_replay_after_sequence_wrap_is_caught_by_the_counter() -> None:
    p = Pair()
    p.handshake()
    p.hub.send(APPROVE, 0.0)
    wire = p.hub.data_to_send()
    assert received(p.board.receive_data(wire, 0.0)) == [APPROVE]
    p.pump()
    # Pretend 65536 frames went by: the board expects the captured seq again.
    p.board._rx.expected = Header.unpack(decode(wire)[0]).seq
    assert p.board.receive_data(wire, 0.0) == [AuthFailed(MsgType.VEND_APPROVED)]
    assert p.board.stats.replays == 1


def test_forged_max_counter_does_not_block_genuine_frames() -> None:
    """pymavlink 2.4.50 stores the timestamp before checking the signature: one forged frame
    with a huge counter blocks the stream. Here the replay state only moves after the MAC."""
    p = Pair()
    p.handshake()
    forged = craft(p.board, p.hub.epoch, MsgType.VEND_APPROVED, APPROVE.encode(), seq=2,
                   key=bytes(32), counter=0xFFFFFFFF, from_hub=True)
    assert p.board.receive_data(forged, 0.0) == [AuthFailed(MsgType.VEND_APPROVED)]
    p.hub.send(APPROVE, 0.0)
    p.pump()
    assert p.board_events == [MessageReceived(APPROVE, True)]


def test_mac_for_another_session_is_not_accepted() -> None:
    p = Pair()
    p.handshake()
    wire = craft(p.board, p.hub.epoch, MsgType.VEND_APPROVED, APPROVE.encode(), seq=2,
                 key=KEY, counter=50, from_hub=True, peer_epoch=p.board.epoch ^ 1)
    assert p.board.receive_data(wire, 0.0) == []
    assert p.board.stats.stale_frames == 1
    # The board answers with its epoch so a confused peer can resynchronise.
    (ack,) = decode(p.board.data_to_send())
    assert Header.unpack(ack).type == MsgType.ACK


def test_frames_of_a_replaced_board_session_are_refused() -> None:
    p = Pair()
    p.handshake()
    p.board.send(RESULT, 0.0)
    old_wire = p.board.data_to_send()
    # The board reboots: new epoch, HELLO again.
    p.board = Link(Role.BOARD, 0, 115200, KEY)
    p.board.send(HELLO, 0.0)
    p.pump()
    assert any(type(e).__name__ == "PeerRestarted" for e in p.hub_events)
    p.hub_events.clear()
    assert p.hub.receive_data(old_wire, 0.0) == []  # retired epoch: not delivered, no ACK
    assert p.hub.stats.stale_frames >= 1


def test_captured_frames_do_not_replay_into_a_restarted_hub() -> None:
    p = Pair()
    p.handshake()
    p.board.send(RESULT, 0.0)
    captured = p.board.data_to_send()
    p.hub_events += p.hub.receive_data(captured, 0.0)
    assert received(p.hub_events) == [RESULT]
    new_hub = Link(Role.HUB, 0, 115200, KEY)  # even a hub keyed from the start
    assert new_hub.receive_data(captured, 0.0) == []  # addressed to the old hub session
    assert new_hub.stats.stale_frames == 1


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_any_single_byte_change_of_a_macd_frame_is_never_delivered(data: st.DataObject) -> None:
    p = Pair()
    p.handshake()
    p.hub.send(APPROVE, 0.0)
    (frame,) = decode(p.hub.data_to_send())
    i = data.draw(st.integers(0, len(frame) - 1))
    x = data.draw(st.integers(1, 255))
    bad = bytearray(frame)
    bad[i] ^= x
    events = p.board.receive_data(encode_frame(bytes(bad)), 0.0)  # CRC made valid again
    assert not [e for e in events if isinstance(e, MessageReceived)]
    # ... and the genuine frame still gets through afterwards (no state was poisoned).
    assert p.board.receive_data(encode_frame(frame), 0.0) == [MessageReceived(APPROVE, True)]


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=600), st.integers(1, 64))
def test_link_never_raises_on_garbage(blob: bytes, chunk: int) -> None:
    p = Pair()
    p.handshake()
    for i in range(0, len(blob), chunk):
        for ev in p.board.receive_data(blob[i : i + chunk], 0.0):
            assert not isinstance(ev, MessageReceived)
