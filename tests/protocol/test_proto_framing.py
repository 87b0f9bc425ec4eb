"""Framing: COBS + CRC, the streaming decoder three ways, junk, bit flips, limits."""

from __future__ import annotations

import random
import zlib

from hypothesis import given, settings
from hypothesis import strategies as st

from protocol import (
    CHECK_VALUE,
    HEADER_SIZE,
    MAX_BODY,
    MAX_ENCODED,
    FrameDecoder,
    append_crc,
    check_crc,
    crc32,
    encode_frame,
    wire_length,
)

frames = st.binary(min_size=HEADER_SIZE, max_size=HEADER_SIZE + 200)


def test_crc_check_value_and_byte_order() -> None:
    assert crc32(b"123456789") == CHECK_VALUE == zlib.crc32(b"123456789")
    assert append_crc(b"123456789")[-4:] == bytes.fromhex("2639f4cb")  # little-endian
    assert check_crc(append_crc(b"any data"))
    assert not check_crc(append_crc(b"any data")[:-1] + b"\x00")


def test_wire_format_has_delimiters_and_no_inner_zero() -> None:
    wire = encode_frame(bytes(HEADER_SIZE) + b"\x00\x01")
    assert wire[0] == 0 and wire[-1] == 0
    assert 0 not in wire[1:-1]
    assert len(wire) == wire_length(HEADER_SIZE + 2)


@settings(max_examples=100, deadline=None)
@given(st.lists(frames, min_size=1, max_size=8), st.randoms(use_true_random=False))
def test_decoder_whole_bytewise_and_random_splits(msgs: list[bytes], rnd: random.Random) -> None:
    stream = b"".join(encode_frame(m) for m in msgs)
    assert FrameDecoder().feed(stream) == msgs
    dec = FrameDecoder()
    assert [f for i in range(len(stream)) for f in dec.feed(stream[i : i + 1])] == msgs
    dec = FrameDecoder()
    out: list[bytes] = []
    i = 0
    while i < len(stream):
        n = rnd.randint(1, 64)
        out += dec.feed(stream[i : i + n])
        i += n
    assert out == msgs
    assert dec.stats.frames == len(msgs) and dec.stats.junk_bytes == 0


@settings(max_examples=100, deadline=None)
@given(
    st.lists(st.tuples(frames, st.binary(min_size=1, max_size=7)), min_size=1, max_size=10)
)
def test_junk_between_frames_loses_no_frame(pairs: list[tuple[bytes, bytes]]) -> None:
    stream = b"".join(encode_frame(m) + junk for m, junk in pairs)
    got = FrameDecoder().feed(stream)
    # Junk can only ever add frames if it forms a valid COBS+CRC piece (p ~ 2^-32): none here.
    assert got == [m for m, _ in pairs]


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=2000))
def test_garbage_never_raises_and_is_counted(blob: bytes) -> None:
    dec = FrameDecoder()
    out = dec.feed(blob) + dec.feed(b"\x00")
    s = dec.stats
    discarded = s.crc_errors + s.cobs_errors + s.too_long + s.too_short
    assert len(out) + discarded <= blob.count(0) + 2
    assert all(len(f) >= HEADER_SIZE for f in out)


def test_single_bit_flips_are_never_delivered() -> None:
    rnd = random.Random(7)
    msg = bytes(rnd.getrandbits(8) for _ in range(HEADER_SIZE + 100))
    wire = encode_frame(msg)
    good_raw = b"G" * HEADER_SIZE
    good = encode_frame(good_raw)
    for bit in range(8, (len(wire) - 1) * 8):  # every bit between the delimiters
        bad = bytearray(wire)
        bad[bit // 8] ^= 1 << (bit % 8)
        dec = FrameDecoder()
        out = dec.feed(bytes(bad) + good)
        assert out == [good_raw], bit
        assert dec.stats.junk_bytes > 0


def test_over_long_piece_is_dropped_up_to_the_next_delimiter() -> None:
    dec = FrameDecoder()
    good = encode_frame(bytes(HEADER_SIZE) + b"ok")
    junk = b"\x01" * (MAX_ENCODED + 10)
    out = []
    for i in range(0, len(junk), 100):
        out += dec.feed(junk[i : i + 100])
    out += dec.feed(b"\x05\x05\x00" + good)
    assert out == [bytes(HEADER_SIZE) + b"ok"]
    assert dec.stats.too_long == 1
    assert dec.stats.junk_bytes == len(junk) + 2
    assert dec.buffered == 0


def test_max_body_frame_round_trips_and_bigger_is_refused() -> None:
    import pytest

    from protocol import EncodeError

    biggest = bytes(range(256)) * 4
    frame = bytes(HEADER_SIZE) + biggest[:MAX_BODY]
    assert FrameDecoder().feed(encode_frame(frame)) == [frame]
    with pytest.raises(EncodeError, match="exceeds"):
        encode_frame(frame + b"x")


def test_short_and_crc_errors_are_counted_separately() -> None:
    dec = FrameDecoder()
    from cobs.cobs import encode  # type: ignore[import-untyped]

    short = b"\x00" + encode(append_crc(b"abc")) + b"\x00"
    bad_crc = encode_frame(bytes(HEADER_SIZE))[:-2] + b"\x07\x00"
    assert dec.feed(short + bad_crc + b"\x00\x01\x00") == []
    assert dec.stats.too_short == 2  # "abc" and the empty frame that b"\x01" encodes
    assert dec.stats.crc_errors == 1


def test_decoded_length_is_checked_even_when_the_encoding_fits() -> None:
    from cobs.cobs import encode

    from protocol.framing import MAX_FRAME

    # One body byte too many, full of zeros: COBS adds only one byte, so the encoded piece is
    # within MAX_ENCODED, yet the frame is too long.
    frame = bytes(HEADER_SIZE) + bytes(MAX_BODY + 1)
    piece = encode(append_crc(frame))
    assert len(frame) == MAX_FRAME + 1 and len(piece) <= MAX_ENCODED
    dec = FrameDecoder()
    assert dec.feed(b"\x00" + piece + b"\x00") == []
    assert dec.stats.too_long == 1
