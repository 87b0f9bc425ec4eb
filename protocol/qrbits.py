"""Packing of a square QR module matrix into PAYMENT_QR's bitmap: row-major, MSB first, 1 = dark.

Module (row r, column c) of an n x n matrix is bit `7 - (i % 8)` of byte `i // 8`, where
`i = r * n + c`. Padding bits after the last module are 0.
"""

from __future__ import annotations

from protocol.errors import DecodeError, DecodeReason, EncodeError
from protocol.fields import bitmap_bytes

MAX_QR_SIZE = 255


def pack_bitmap(rows: list[list[bool]]) -> bytes:
    """Pack a square matrix of modules (True = dark) into bytes."""
    n = len(rows)
    if n > MAX_QR_SIZE:
        raise EncodeError(f"QR matrix of {n} modules per side exceeds {MAX_QR_SIZE}")
    out = bytearray(bitmap_bytes(n))
    for r, row in enumerate(rows):
        if len(row) != n:
            raise EncodeError(f"QR matrix row {r} has {len(row)} modules, expected {n}")
        base = r * n
        for c, dark in enumerate(row):
            if dark:
                i = base + c
                out[i >> 3] |= 0x80 >> (i & 7)
    return bytes(out)


def unpack_bitmap(size: int, data: bytes) -> list[list[bool]]:
    """Inverse of `pack_bitmap` for a `size` x `size` matrix."""
    if len(data) != bitmap_bytes(size):
        raise DecodeError(
            DecodeReason.BAD_LENGTH,
            f"{size}x{size} bitmap needs {bitmap_bytes(size)} bytes, got {len(data)}",
        )
    return [
        [bool(data[(r * size + c) >> 3] & (0x80 >> ((r * size + c) & 7))) for c in range(size)]
        for r in range(size)
    ]
