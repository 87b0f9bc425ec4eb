"""Codec benchmark: our full frame decoder against pymavlink, plus junk and bit-error runs.

Run: .venv/bin/python bench/codec.py [--frames N] [--ber-frames N] [--seed S]

Figures, all from one run in one process:
  decode_fps            frames/s through FrameDecoder (COBS, CRC) + header + message decode, on
                        LOG frames with a 101-byte payload, fed in 4 KiB reads
  encode_fps            frames/s for message encode + header pack + CRC + COBS
  pymavlink_decode_fps  frames/s for pymavlink 2.4.50 `parse_buffer` on MAVLink v2 GPS_RTCM_DATA
                        frames with a 100-byte payload (after v2 zero truncation), same reads
  ratio                 decode_fps / pymavlink_decode_fps
  junk_frames_lost      valid frames not delivered from a stream with junk runs of 1-7 random
                        bytes between frames (for comparison pymavlink's loss is printed too)
  corrupted_delivered   delivered frames whose bytes differ from any frame sent, over a stream
                        with independent bit errors at the given bit-error rate
The last line is machine-readable; nothing here asserts on speed.
"""

from __future__ import annotations

import argparse
import logging
import random
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from protocol import (
    HEADER_SIZE,
    DecodeError,
    Flags,
    FrameDecoder,
    Header,
    Log,
    Message,
    MsgType,
    decode_message,
    encode_frame,
)

log = logging.getLogger("bench.codec")

READ_SIZE = 4096
TEXT_LEN = 97  # Log payload = level 1 + code 2 + len 1 + text 97 = 101 bytes
EPOCH = 0x5EED1234


def make_messages(n: int, rnd: random.Random) -> list[Log]:
    alphabet = "abcdefghijklmnopqrstuvwxyz0123456789 "
    base = "".join(rnd.choice(alphabet) for _ in range(TEXT_LEN))
    return [Log(20, i & 0xFFFF, f"{i:08d}" + base[8:]) for i in range(n)]


def encode_one(msg: Log, seq: int) -> bytes:
    hdr = Header(1, MsgType.LOG, int(Flags.RELIABLE), 0, EPOCH, 0, seq & 0xFFFF, 0).pack()
    return encode_frame(hdr + msg.encode())


def decode_stream(
    stream: bytes, on_frame: Callable[[bytes, Header, Message], None] | None
) -> int:
    """The full decoder: framing + CRC + header + message decode. Returns messages decoded."""
    dec = FrameDecoder()
    unpack = Header.unpack
    n = 0
    for i in range(0, len(stream), READ_SIZE):
        for frame in dec.feed(stream[i : i + READ_SIZE]):
            hdr = unpack(frame)
            try:
                msg = decode_message(hdr.type, frame[HEADER_SIZE:])
            except DecodeError:
                continue  # the Link reports these as InvalidMessage / UnknownMessage
            if on_frame is not None:
                on_frame(frame, hdr, msg)
            n += 1
    return n


def best_of(runs: int, fn: Callable[[], int]) -> tuple[float, int]:
    best = float("inf")
    count = 0
    for _ in range(runs):
        t0 = time.perf_counter()
        count = fn()
        best = min(best, time.perf_counter() - t0)
    return best, count


def encode_all(msgs: list[Log]) -> list[bytes]:
    return [encode_one(m, i) for i, m in enumerate(msgs)]


def mavlink_frames(n: int) -> list[bytes]:
    from pymavlink.dialects.v20 import common as mavlink2

    mav = mavlink2.MAVLink(None, srcSystem=1, srcComponent=1)
    frames = []
    for i in range(n):
        data = [((i + j) % 255) + 1 for j in range(98)] + [0] * 82  # 98 non-zero: 100-byte payload
        frames.append(mavlink2.MAVLink_gps_rtcm_data_message(i & 0xFF, 98, data).pack(mav))
    if frames[0][1] != 100:
        raise SystemExit(f"MAVLink payload is {frames[0][1]} bytes, expected 100")
    return frames


def mavlink_parse(stream: bytes) -> int:
    from pymavlink.dialects.v20 import common as mavlink2

    mav = mavlink2.MAVLink(None)
    mav.robust_parsing = True
    n = 0
    for i in range(0, len(stream), READ_SIZE):
        got = mav.parse_buffer(stream[i : i + READ_SIZE])
        if got:
            n += sum(1 for m in got if m.get_type() != "BAD_DATA")
    return n


def junk_run(
    frames: list[bytes], runs: int, rnd: random.Random
) -> tuple[bytes, int]:
    """Frames with `runs` junk runs of 1-7 random bytes inserted between them."""
    slots = set(rnd.sample(range(1, len(frames)), runs))
    parts: list[bytes] = []
    for i, f in enumerate(frames):
        if i in slots:
            parts.append(rnd.randbytes(rnd.randint(1, 7)))
        parts.append(f)
    return b"".join(parts), len(slots)


def flip_bits(stream: bytes, ber: float, rnd: random.Random) -> tuple[bytes, int]:
    """Independent bit errors at rate `ber` (geometric gaps between flipped bits)."""
    buf = bytearray(stream)
    nbits = len(buf) * 8
    flips = 0
    pos = int(rnd.expovariate(ber))
    while pos < nbits:
        buf[pos >> 3] ^= 1 << (pos & 7)
        flips += 1
        pos += 1 + int(rnd.expovariate(ber))
    return bytes(buf), flips


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--frames", type=int, default=20_000, help="frames for speed and junk runs")
    ap.add_argument("--junk-runs", type=int, default=2_000)
    ap.add_argument("--ber-frames", type=int, default=200_000)
    ap.add_argument("--ber", type=float, default=1e-4)
    ap.add_argument("--seed", type=int, default=2026)
    ap.add_argument("--repeat", type=int, default=5, help="timed runs of each (best is kept)")
    args = ap.parse_args(argv)
    if args.junk_runs >= args.frames:
        ap.error("--junk-runs must be below --frames")
    rnd = random.Random(args.seed)

    msgs = make_messages(args.frames, rnd)
    stream = b"".join(encode_all(msgs))
    mav = mavlink_frames(args.frames)
    mav_stream = b"".join(mav)
    # Interleave the timed runs so that load from other processes hits both decoders alike;
    # keep the best run of each.
    t_dec = t_enc = t_mav = float("inf")
    for _ in range(args.repeat):
        t, got = best_of(1, lambda: decode_stream(stream, None))
        if got != len(msgs):
            raise SystemExit(f"decoder delivered {got} of {len(msgs)} clean frames")
        t_dec = min(t_dec, t)
        t, got = best_of(1, lambda: mavlink_parse(mav_stream))
        if got != len(mav):
            raise SystemExit(f"pymavlink decoded {got} of {len(mav)} clean frames")
        t_mav = min(t_mav, t)
        t_enc = min(t_enc, best_of(1, lambda: len(encode_all(msgs)))[0])
    decode_fps = len(msgs) / t_dec
    encode_fps = len(msgs) / t_enc
    mav_fps = len(mav) / t_mav
    print(f"ours: {len(msgs)} LOG frames, payload {len(msgs[0].encode())} B, "
          f"wire {len(encode_one(msgs[0], 0))} B/frame")
    print(f"pymavlink: {len(mav)} GPS_RTCM_DATA frames, payload 100 B, wire {len(mav[0])} B/frame")

    # Junk between frames: the same positions and junk for both decoders.
    ours_frames = encode_all(msgs)
    junk_rnd = random.Random(args.seed + 1)
    junk_stream, runs = junk_run(ours_frames, args.junk_runs, junk_rnd)
    got_ids: set[int] = set()
    raw_of = {i: m for i, m in enumerate(msgs)}

    def collect(frame: bytes, hdr: Header, msg: Message) -> None:
        i = int(msg.text[:8]) if isinstance(msg, Log) else -1
        if raw_of.get(i) == msg:
            got_ids.add(i)

    decode_stream(junk_stream, collect)
    junk_lost = len(ours_frames) - len(got_ids)
    mav_junk, _ = junk_run(mav, args.junk_runs, random.Random(args.seed + 1))
    mav_lost = max(0, len(mav) - mavlink_parse(mav_junk))
    print(f"junk: {runs} runs of 1-7 bytes in {len(ours_frames)} frames; lost: ours {junk_lost}, "
          f"pymavlink {mav_lost}")

    # Bit errors: every delivered frame is compared with what was sent.
    ber_msgs = make_messages(args.ber_frames, rnd)
    sent_frames = encode_all(ber_msgs)
    sent_set = {f[1:-1] for f in sent_frames}
    noisy, flips = flip_bits(b"".join(sent_frames), args.ber, random.Random(args.seed + 2))
    good = 0
    corrupted = 0

    def check(frame: bytes, hdr: Header, msg: Message) -> None:
        nonlocal good, corrupted
        # Compare the delivered frame's exact bytes (re-encoded the same way) with what was sent.
        if encode_frame(frame)[1:-1] in sent_set:
            good += 1
        else:
            corrupted += 1

    decode_stream(noisy, check)
    print(f"bit errors: {args.ber_frames} frames, BER {args.ber:g}, {flips} flipped bits; "
          f"delivered intact {good}, dropped {args.ber_frames - good - corrupted}, "
          f"corrupted delivered {corrupted}")

    ratio = decode_fps / mav_fps
    print(
        f"codec decode_fps={int(decode_fps)} encode_fps={int(encode_fps)} "
        f"pymavlink_decode_fps={int(mav_fps)} ratio={ratio:.2f} "
        f"junk_frames_lost={junk_lost} corrupted_delivered={corrupted}"
    )
    return 0


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING)
    raise SystemExit(main())
