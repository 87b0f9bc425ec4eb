"""The 16-byte frame header (little-endian), the same in every protocol version.

| off | size | field      |
|-----|------|------------|
| 0   | 1    | version    |
| 1   | 1    | type       |
| 2   | 1    | flags      |
| 3   | 1    | addr       |
| 4   | 4    | epoch      |
| 8   | 4    | peer_epoch |
| 12  | 2    | seq        |
| 14  | 2    | ack        |
"""

from __future__ import annotations

import struct
from enum import IntFlag
from typing import Final, NamedTuple

from protocol.errors import DecodeError, DecodeReason, EncodeError

PROTOCOL_VERSION: Final = 1
SUPPORTED_VERSIONS: Final = frozenset({1})
HEADER_SIZE: Final = 16
MAX_ADDR: Final = 247
U16_MOD: Final = 0x10000

HEADER_STRUCT: Final = struct.Struct("<BBBBIIHH")
_unpack_from = HEADER_STRUCT.unpack_from
_tuple_new = tuple.__new__


class Flags(IntFlag):
    """Header flag bits. Bits 4..7 are reserved: senders set 0, receivers ignore them."""

    NONE = 0
    RELIABLE = 0x01  # carries a seq and must be acknowledged
    ACK = 0x02  # the ack field is valid
    MAC = 0x04  # the body ends with the 12-byte MAC trailer
    FROM_HUB = 0x08  # set on every hub -> board frame


KNOWN_FLAGS: Final = int(Flags.RELIABLE | Flags.ACK | Flags.MAC | Flags.FROM_HUB)


class Header(NamedTuple):
    """A decoded frame header. `flags` and `type` are plain ints (unknown values are kept)."""

    version: int
    type: int
    flags: int
    addr: int
    epoch: int
    peer_epoch: int
    seq: int
    ack: int

    def pack(self) -> bytes:
        """The 16 header bytes; raises EncodeError when a field is out of range."""
        try:
            return HEADER_STRUCT.pack(*self)
        except struct.error as exc:
            raise EncodeError(f"header field out of range: {self!r} ({exc})") from None

    @classmethod
    def unpack(cls, frame: bytes) -> Header:
        """Decode the first 16 bytes of `frame` (raises DecodeError if shorter)."""
        if len(frame) < HEADER_SIZE:
            raise DecodeError(
                DecodeReason.SHORT_FRAME, f"{len(frame)} bytes, a header needs {HEADER_SIZE}"
            )
        return _tuple_new(cls, _unpack_from(frame))
