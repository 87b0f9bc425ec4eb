"""COBS framing with a 0x00 delimiter before and after every frame, and a streaming decoder.

Wire: `0x00 ‖ COBS(frame ‖ CRC32_LE(frame)) ‖ 0x00` where `frame` is header ‖ body. The decoder
splits the byte stream at every 0x00, so junk between frames (or a frame cut short by a cable
pull) costs only itself: the next delimiter starts over. It never raises on bad input; it
counts each discarded piece by reason in `DecoderStats`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from cobs.cobs import (  # type: ignore[import-untyped]  # C extension without stubs
    DecodeError as _CobsError,
)
from cobs.cobs import decode as _cobs_decode
from cobs.cobs import encode as _cobs_encode

from protocol.crc import CRC_SIZE, RESIDUE, append_crc, crc32
from protocol.errors import EncodeError
from protocol.header import HEADER_SIZE

DELIMITER: Final = b"\x00"
MAX_BODY: Final = 1024  # bytes after the header, before the CRC (MAC trailer included)
MAX_FRAME: Final = HEADER_SIZE + MAX_BODY  # header ‖ body, before the CRC
MAX_RAW: Final = MAX_FRAME + CRC_SIZE  # what COBS encodes
MIN_RAW: Final = HEADER_SIZE + CRC_SIZE
# COBS adds one code byte per started block of 254 data bytes (and one for an empty input).
MAX_ENCODED: Final = MAX_RAW + (MAX_RAW + 253) // 254
MAX_WIRE: Final = MAX_ENCODED + 2  # with both delimiters


def cobs_overhead(raw_len: int) -> int:
    """Bytes COBS adds to `raw_len` bytes (at least 1, then 1 per 254)."""
    return max(1, (raw_len + 253) // 254)


def wire_length(frame_len: int) -> int:
    """Bytes on the wire for a frame (header ‖ body) of `frame_len` bytes."""
    raw = frame_len + CRC_SIZE
    return raw + cobs_overhead(raw) + 2


def encode_frame(frame: bytes) -> bytes:
    """`0x00 ‖ COBS(frame ‖ CRC32_LE(frame)) ‖ 0x00` for `frame` = header ‖ body."""
    if len(frame) < HEADER_SIZE:
        raise EncodeError(f"frame of {len(frame)} bytes is shorter than the header")
    if len(frame) > MAX_FRAME:
        raise EncodeError(f"frame body of {len(frame) - HEADER_SIZE} bytes exceeds {MAX_BODY}")
    encoded: bytes = _cobs_encode(append_crc(frame))
    return DELIMITER + encoded + DELIMITER


@dataclass(slots=True)
class DecoderStats:
    """What the decoder delivered and discarded, by reason."""

    frames: int = 0  # frames delivered (COBS and CRC good)
    crc_errors: int = 0  # COBS-valid pieces whose CRC did not match
    cobs_errors: int = 0  # pieces that are not valid COBS
    too_long: int = 0  # pieces over MAX_ENCODED, or decoding to more than MAX_RAW bytes
    too_short: int = 0  # valid pieces shorter than header + CRC
    junk_bytes: int = 0  # bytes of every discarded piece, whatever the reason


class FrameDecoder:
    """Streaming COBS/CRC decoder: bytes in, verified frames (header ‖ body, no CRC) out."""

    __slots__ = ("_buf", "_skipping", "stats")

    def __init__(self) -> None:
        self._buf = b""
        self._skipping = False  # inside an over-long piece: drop bytes up to the next 0x00
        self.stats = DecoderStats()

    def feed(self, data: bytes | bytearray | memoryview) -> list[bytes]:
        """Consume `data`; return the frames it completed, in order. Never raises."""
        buf = self._buf + bytes(data) if self._buf else bytes(data)
        parts = buf.split(DELIMITER)
        rest = parts.pop()
        stats = self.stats
        out: list[bytes] = []
        if self._skipping and parts:
            # The over-long piece ends at this first delimiter.
            stats.junk_bytes += len(parts[0])
            parts[0] = b""
            self._skipping = False
        for piece in parts:
            n = len(piece)
            if not n:
                continue
            if n > MAX_ENCODED:
                stats.too_long += 1
                stats.junk_bytes += n
                continue
            try:
                raw: bytes = _cobs_decode(piece)
            except _CobsError:
                stats.cobs_errors += 1
                stats.junk_bytes += n
                continue
            m = len(raw)
            if m < MIN_RAW:
                stats.too_short += 1
                stats.junk_bytes += n
                continue
            if m > MAX_RAW:  # COBS overhead depends on the zeros: check the decoded length too
                stats.too_long += 1
                stats.junk_bytes += n
                continue
            if crc32(raw) != RESIDUE:
                stats.crc_errors += 1
                stats.junk_bytes += n
                continue
            out.append(raw[:-CRC_SIZE])
        if self._skipping:
            stats.junk_bytes += len(rest)
            rest = b""
        elif len(rest) > MAX_ENCODED:
            stats.too_long += 1
            stats.junk_bytes += len(rest)
            rest = b""
            self._skipping = True
        self._buf = rest
        stats.frames += len(out)
        return out

    @property
    def buffered(self) -> int:
        """Bytes held waiting for a delimiter."""
        return len(self._buf)

    def reset(self) -> None:
        """Forget any partial frame (for example after the port was reopened)."""
        self._buf = b""
        self._skipping = False
