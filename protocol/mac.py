"""Link authentication: per-board keys, the 12-byte MAC trailer and replay counters.

    board_key = HMAC-SHA256(master_key, b"upv1 board key" ‖ uid12)            (32 bytes)
    trailer   = counter u32 LE ‖ HMAC-SHA256(board_key, header16 ‖ payload ‖ counter_le)[:8]

`header16` is the header exactly as sent (MAC flag set). A receiver checks the tag first and
only then the counter (> last verified); its replay state advances only after both pass, so a
forged frame can never move it (the pymavlink signing bug).
"""

from __future__ import annotations

import hmac
import struct
from typing import Final

from protocol.errors import LinkError

KEY_SIZE: Final = 32
MASTER_KEY_MIN: Final = 16
UID_LEN: Final = 12
TAG_SIZE: Final = 8
COUNTER_SIZE: Final = 4
TRAILER_SIZE: Final = COUNTER_SIZE + TAG_SIZE
MAX_COUNTER: Final = 0xFFFFFFFF
KEY_LABEL: Final = b"upv1 board key"
TEST_MASTER_KEY: Final = bytes(range(32))  # published test key: never use in production

_U32: Final = struct.Struct("<I")


def derive_board_key(master_key: bytes, uid: bytes) -> bytes:
    """The 32-byte key of the board with STM32 unique id `uid` (12 bytes)."""
    if len(master_key) < MASTER_KEY_MIN:
        raise LinkError(f"master key must be at least {MASTER_KEY_MIN} bytes")
    if len(uid) != UID_LEN:
        raise LinkError(f"board uid must be {UID_LEN} bytes, got {len(uid)}")
    return hmac.digest(master_key, KEY_LABEL + uid, "sha256")


def compute_tag(key: bytes, header: bytes, payload: bytes, counter: int) -> bytes:
    """The 8-byte truncated HMAC-SHA256 over header ‖ payload ‖ counter_le."""
    return hmac.digest(key, header + payload + _U32.pack(counter), "sha256")[:TAG_SIZE]


def make_trailer(key: bytes, header: bytes, payload: bytes, counter: int) -> bytes:
    """counter_le ‖ tag, to append to the payload."""
    return _U32.pack(counter) + compute_tag(key, header, payload, counter)


def split_trailer(body: bytes) -> tuple[bytes, int, bytes] | None:
    """(payload, counter, tag) of a MAC'd body, or None when it is too short to hold one."""
    if len(body) < TRAILER_SIZE:
        return None
    cut = len(body) - TRAILER_SIZE
    (counter,) = _U32.unpack_from(body, cut)
    return body[:cut], counter, body[cut + COUNTER_SIZE :]


def verify_tag(key: bytes, header: bytes, payload: bytes, counter: int, tag: bytes) -> bool:
    """Constant-time check of a received tag."""
    return hmac.compare_digest(compute_tag(key, header, payload, counter), tag)


class TxCounter:
    """Sender side: 1, 2, 3, ... for the life of one sender epoch."""

    __slots__ = ("last",)

    def __init__(self) -> None:
        self.last = 0

    def next(self) -> int:
        if self.last >= MAX_COUNTER:
            raise LinkError("MAC counter exhausted: start a new session epoch")
        self.last += 1
        return self.last


class ReplayGuard:
    """Receiver side: the last verified counter of the peer's current epoch."""

    __slots__ = ("last",)

    def __init__(self) -> None:
        self.last = 0

    def fresh(self, counter: int) -> bool:
        """True when `counter` has not been accepted yet (call only after the tag verified)."""
        return counter > self.last

    def commit(self, counter: int) -> None:
        """Advance after a frame's tag verified and its counter was fresh."""
        self.last = counter

    def reset(self) -> None:
        self.last = 0
