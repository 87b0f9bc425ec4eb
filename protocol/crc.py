"""CRC-32 of the serial frames: CRC-32/ISO-HDLC as computed by `zlib.crc32`.

Parameters: width 32, poly 0x04C11DB7 (reflected 0xEDB88320), init 0xFFFFFFFF, refin and refout
true, xorout 0xFFFFFFFF, check value 0xCBF43926 for b"123456789". On the wire the CRC is sent
little-endian after the bytes it covers. Because of that byte order the CRC of (data ‖ crc_le)
is always the constant `RESIDUE`, which lets a receiver check a frame with one pass and no slice.
"""

from __future__ import annotations

import struct
import zlib
from typing import Final

CRC_SIZE: Final = 4
CHECK_VALUE: Final = 0xCBF43926  # crc32(b"123456789")
RESIDUE: Final = 0x2144DF1C  # crc32(data ‖ crc32(data) as u32 LE) for every data

_U32: Final = struct.Struct("<I")


def crc32(data: bytes | bytearray | memoryview) -> int:
    """CRC-32/ISO-HDLC of `data` (identical to `zlib.crc32(data)`)."""
    return zlib.crc32(data)


def append_crc(data: bytes) -> bytes:
    """`data ‖ CRC32_LE(data)`."""
    return data + _U32.pack(zlib.crc32(data))


def check_crc(frame: bytes | bytearray | memoryview) -> bool:
    """True when `frame` ends with the little-endian CRC-32 of everything before it."""
    return len(frame) >= CRC_SIZE and zlib.crc32(frame) == RESIDUE
