"""Session epochs: reboots of either end resynchronise; stale ACKs and old epochs are ignored."""

from __future__ import annotations

from proto_harness import HELLO, HELLO_ACK, KEY, Pair, received

from protocol import (
    Flags,
    FrameDecoder,
    Header,
    Link,
    Log,
    MessageReceived,
    MsgType,
    PeerRestarted,
    Role,
    SendFailed,
    encode_frame,
)


def headers(wire: bytes) -> list[Header]:
    return [Header.unpack(f) for f in FrameDecoder().feed(wire)]


def test_stale_ack_from_the_previous_board_session_is_ignored() -> None:
    """MIN issue 40: after an MCU reset the host ACKs stale sequence numbers."""
    p = Pair()
    p.handshake()
    old_board_epoch = p.board.epoch
    p.board.send(Log(20, 1, "before reset"), 0.0)
    p.hub.receive_data(p.board.data_to_send(), 0.0)
    stale_ack = p.hub.data_to_send()
    (h,) = headers(stale_ack)
    assert h.peer_epoch == old_board_epoch and h.ack == 2  # HELLO was 1, the LOG 2
    # The board resets and says HELLO (seq 1 of its new session); then the stale ACK arrives.
    p.board = Link(Role.BOARD, 0, 115200, KEY)
    p.board.send(HELLO, 0.0)
    p.board.data_to_send()
    p.board.send(Log(20, 2, "x"), 0.0)  # held until the hub's epoch is known
    events = p.board.receive_data(stale_ack, 0.0)
    assert events == []  # learns the hub's epoch (first contact), nothing else
    assert p.board.pending == 2  # HELLO is NOT acknowledged by the old session's ACK
    assert p.board.peer_epoch == p.hub.epoch


def test_board_reboot_resynchronises_both_directions() -> None:
    p = Pair()
    p.handshake()
    p.hub.send(Log(20, 7, "in flight to the old board"), 0.0)
    p.hub.data_to_send()  # lost: the board is rebooting
    old = p.board.epoch
    p.board = Link(Role.BOARD, 0, 115200, KEY)
    p.board.send(HELLO, 0.0)
    p.pump()
    assert p.hub_events[:2] == [
        SendFailed(Log(20, 7, "in flight to the old board")),
        PeerRestarted(old, p.board.epoch),
    ]
    assert p.hub_events[2] == MessageReceived(HELLO, False)
    p.hub.send(HELLO_ACK, 0.0)
    p.board.send(Log(20, 8, "after"), 0.0)
    p.pump()
    assert received(p.board_events) == [HELLO_ACK]
    assert Log(20, 8, "after") in received(p.hub_events)
    assert p.hub.pending == 0 and p.board.pending == 0


def test_hub_reboot_is_detected_by_the_board_which_says_hello_again() -> None:
    p = Pair()
    p.handshake()
    old_hub = p.hub.epoch
    p.hub = Link(Role.HUB, 0, 115200, None)  # new process, no key yet
    p.board.send(Log(20, 1, "to the old hub"), 0.0)
    p.pump()
    # The new hub refuses a frame meant for its previous life and answers with its epoch.
    assert p.hub.stats.stale_frames == 1 and p.hub_events == []
    assert p.board_events == [SendFailed(Log(20, 1, "to the old hub")),
                              PeerRestarted(old_hub, p.hub.epoch)]
    p.board.send(HELLO, 0.0)
    p.pump()
    assert received(p.hub_events) == [HELLO]
    (h,) = [e for e in p.hub_events if isinstance(e, MessageReceived)]
    assert not h.authenticated


def test_replaced_epoch_is_never_accepted_again() -> None:
    p = Pair()
    p.handshake()
    first = p.board.epoch
    p.board.send(Log(20, 1, "a"), 0.0)
    from_first = p.board.data_to_send()
    p.board = Link(Role.BOARD, 0, 115200, KEY)
    p.board.send(HELLO, 0.0)
    p.pump()
    second = p.board.epoch
    assert PeerRestarted(first, second) in p.hub_events
    # Even an unsigned HELLO from the old epoch cannot switch the hub back.
    old_hello = Header(1, MsgType.HELLO, int(Flags.RELIABLE), 0, first, 0, 1, 0).pack()
    p.hub_events.clear()
    assert p.hub.receive_data(encode_frame(old_hello + HELLO.encode()), 0.0) == []
    assert p.hub.receive_data(from_first, 0.0) == []
    assert p.hub.peer_epoch == second


def test_both_ends_reboot() -> None:
    p = Pair()
    p.handshake()
    p.board = Link(Role.BOARD, 0, 115200, KEY)
    p.hub = Link(Role.HUB, 0, 115200, None)
    p.handshake()
    p.board.send(Log(20, 1, "fresh"), 0.0)
    p.pump()
    assert received(p.hub_events) == [Log(20, 1, "fresh")]


def test_first_frame_of_a_new_session_must_be_seq_1() -> None:
    """If HELLO (seq 1) is lost and seq 2 arrives first, the hub waits for 1 (no gap)."""
    p = Pair()
    p.board.send(HELLO, 0.0)
    p.board.data_to_send()  # HELLO lost
    p.hub.set_key(KEY)
    # Board's next frame (unsigned: it has no hub epoch yet, only HELLO can go). Craft seq 2:
    hdr = Header(1, MsgType.LOG, int(Flags.RELIABLE), 0, p.board.epoch, 0, 2, 0).pack()
    unsigned = Link(Role.HUB, 0)
    assert unsigned.receive_data(encode_frame(hdr + Log(20, 1, "x").encode()), 0.0) == []
    assert unsigned.stats.out_of_order == 1
    (ack,) = headers(unsigned.data_to_send())
    assert ack.ack == 0  # nothing taken yet
    t = p.board.next_timeout()
    assert t is not None
    p.board.handle_timeout(t)
    p.now = t
    p.pump()
    assert received(p.hub_events) == [HELLO]


def test_session_table_covers_every_state_and_event() -> None:
    from protocol.session import (
        TRANSITIONS,
        Action,
        SessionEvent,
        SessionState,
        transition,
    )

    assert set(TRANSITIONS) == {(s, e) for s in SessionState for e in SessionEvent}
    # Only a restart of a known peer reports PeerRestarted; only a give-up changes our epoch.
    for (state, event), (_, actions) in TRANSITIONS.items():
        assert (Action.REPORT_RESTART in actions) == (
            state is SessionState.PEER and event is SessionEvent.NEW_PEER_EPOCH
        )
        assert (Action.NEW_OWN_EPOCH in actions) == (event is SessionEvent.GIVE_UP)
        assert Action.RESET_RX in actions  # every session change restarts the peer's stream
    assert transition(SessionState.NO_PEER, SessionEvent.NEW_PEER_EPOCH)[0] is SessionState.PEER


def test_link_session_state_follows_the_table() -> None:
    from protocol.session import SessionState

    p = Pair()
    assert p.board.session is SessionState.NO_PEER and p.hub.session is SessionState.NO_PEER
    p.handshake()
    assert p.board.session is SessionState.PEER and p.hub.session is SessionState.PEER
