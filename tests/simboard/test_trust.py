"""Keys: a board with a wrong key or none never gets a vend result trusted, and the board
itself never acts on an approval without a valid MAC (INVARIANTS rule 13)."""

from __future__ import annotations

import os

import pytest

from edge_hub.simboard import Behaviour, KeyMode, PurchaseState
from protocol import (
    AuthFailed,
    Flags,
    Header,
    LinkError,
    MsgType,
    OrderRequest,
    VendApproved,
    VendOutcome,
    VendResult,
    encode_frame,
)

FAILED_VEND = VendResult(order_ref="order_0001", outcome=VendOutcome.FAILED, reason=5,
                         dispensed=0)


async def test_wrong_key_board_is_never_trusted(make_pair) -> None:
    board, hub = await make_pair(Behaviour(key_mode=KeyMode.WRONG, hello_retry_s=0.2),
                                 connect=False)
    await hub.until(lambda: hub.hello is not None)
    await hub.until(lambda: board.link.peer_epoch != 0)  # the hub's ACK of HELLO got through
    p = await board.request("espresso", timeout_s=0.5)
    assert p.state is PurchaseState.UNDELIVERED  # the hub threw the order away
    board.inject(FAILED_VEND)  # signed, but with the wrong key
    await hub.until(lambda: hub.link.stats.mac_failures >= 2)
    assert AuthFailed(MsgType.ORDER_REQUEST) in hub.events
    assert not any(isinstance(m, VendResult | OrderRequest) for m, _ in hub.received)
    assert not board.connected  # and the hub's HELLO_ACK never verified on the board
    assert board.counters.auth_failures > 0


async def test_keyless_board_cannot_report_a_vend(make_pair) -> None:
    board, hub = await make_pair(Behaviour(key_mode=KeyMode.NONE, hello_retry_s=0.2))
    with pytest.raises(LinkError):
        board.inject(FAILED_VEND)  # the link refuses to send money frames without a key
    board.forge(FAILED_VEND)  # so a rogue board writes the frame by hand, unsigned
    await hub.until(lambda: AuthFailed(MsgType.VEND_RESULT) in hub.events)
    assert hub.messages(VendResult, authenticated=None) == []
    hub.approve("order_0001")  # and an approval it cannot verify is never acted on
    await hub.until(lambda: board.counters.auth_failures > 0)
    assert board.link.stats.mac_failures > 0
    assert board.ledger == {}


async def test_unsigned_approval_never_dispenses(make_pair) -> None:
    board, hub = await make_pair()
    p = await board.request("espresso")
    link = hub.link
    forged = Header(1, MsgType.VEND_APPROVED, int(Flags.RELIABLE | Flags.ACK | Flags.FROM_HUB),
                    0, link.epoch, link.peer_epoch, 2, 0).pack()
    payload = VendApproved(order_ref=p.order_ref, auth=b"12345678", quantity=1,
                           deadline_s=60).encode()
    assert hub._fd is not None
    os.write(hub._fd, encode_frame(forged + payload))
    await hub.until(lambda: board.counters.auth_failures > 0)
    assert p.state is PurchaseState.SHOWING_QR
    assert board.ledger == {}
