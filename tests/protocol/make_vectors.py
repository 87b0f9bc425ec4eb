"""Build docs/protocol_vectors.json from the Python implementation.

    .venv/bin/python tests/protocol/make_vectors.py > docs/protocol_vectors.json

The vectors are a scripted conversation between a board and a hub with fixed epochs under the
published test master key, plus negative vectors applied to a receiver that has processed the
whole conversation. test_proto_vectors.py checks the file in both directions and that this
script still reproduces it byte for byte.
"""

from __future__ import annotations

import json
import sys
from enum import IntEnum
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import qrcode
from cobs.cobs import encode as cobs_encode  # type: ignore[import-untyped]

from protocol import (
    CHECK_VALUE,
    HEADER_SIZE,
    MAX_BODY,
    MAX_ENCODED,
    TEST_MASTER_KEY,
    BoardState,
    Cancel,
    CancelReason,
    Flags,
    FrameDecoder,
    Header,
    Hello,
    HelloAck,
    Link,
    Log,
    Message,
    MsgType,
    OrderRejected,
    OrderRequest,
    PaymentQr,
    RejectReason,
    Role,
    Status,
    StatusRequest,
    VendApproved,
    VendOutcome,
    VendResult,
    VendStarted,
    append_crc,
    crc32,
    derive_board_key,
    encode_frame,
    make_trailer,
    pack_bitmap,
)
from protocol.transport import TransportConfig

UID = bytes.fromhex("3f0034000e51333437363930")  # an STM32 96-bit unique id
ADDR = 3
BOARD_EPOCH = 0xB0A4D001
HUB_EPOCH = 0x4B1D0002
NOW = 0.0
UPI = "upi://pay?pa=vendco@okaxis&pn=VendCo&am=20.00&cu=INR&tr=ORD7Q2"


def qr_rows(text: str) -> list[list[bool]]:
    qr = qrcode.QRCode(border=0, error_correction=qrcode.constants.ERROR_CORRECT_M)
    qr.add_data(text)
    qr.make(fit=True)
    return [[bool(x) for x in row] for row in qr.get_matrix()]


def field_json(msg: Message) -> tuple[dict[str, Any], dict[str, str]]:
    fields: dict[str, Any] = {}
    names: dict[str, str] = {}
    for f in msg._FIELDS:
        v = getattr(msg, f.name)
        if isinstance(v, bytes):
            fields[f.name] = v.hex()
        elif isinstance(v, tuple):
            fields[f.name] = list(v)
        elif isinstance(v, IntEnum):
            fields[f.name] = int(v)
            names[f.name] = v.name
        else:
            fields[f.name] = v
    return fields, names


def header_json(h: Header) -> dict[str, Any]:
    flag_names = [f.name for f in Flags if f.value and h.flags & f.value]
    try:
        type_name = MsgType(h.type).name
    except ValueError:
        type_name = None
    return {
        "version": h.version,
        "type": h.type,
        "type_name": type_name,
        "flags": h.flags,
        "flag_names": flag_names,
        "addr": h.addr,
        "epoch": h.epoch,
        "peer_epoch": h.peer_epoch,
        "seq": h.seq,
        "ack": h.ack,
    }


class Script:
    """Drive two real Links through a vend cycle and record every frame on the wire."""

    def __init__(self) -> None:
        cfg = TransportConfig()
        self.key = derive_board_key(TEST_MASTER_KEY, UID)
        self.board = Link(Role.BOARD, ADDR, 115200, self.key, BOARD_EPOCH, config=cfg)
        self.hub = Link(Role.HUB, ADDR, 115200, None, HUB_EPOCH, config=cfg)
        self.frames: list[dict[str, Any]] = []
        self.sent: dict[int, Message] = {}  # frame index -> message carried

    def _record(self, wire: bytes, direction: str, msgs: list[Message]) -> None:
        pending = list(msgs)
        for frame in FrameDecoder().feed(wire):
            h = Header.unpack(frame)
            entry: dict[str, Any] = {
                "index": len(self.frames),
                "direction": direction,
                "header": header_json(h),
            }
            body = frame[HEADER_SIZE:]
            if h.type == MsgType.ACK:
                entry["message"] = None
                payload = body
            else:
                msg = pending.pop(0)
                assert msg.TYPE == h.type
                fields, names = field_json(msg)
                entry["message"] = {"name": type(msg).__name__, "fields": fields}
                if names:
                    entry["message"]["enum_names"] = names
                payload = body[:-12] if h.flags & Flags.MAC else body
            entry["payload"] = payload.hex()
            if h.flags & Flags.MAC:
                entry["mac"] = {
                    "counter": int.from_bytes(body[-12:-8], "little"),
                    "tag": body[-8:].hex(),
                }
            else:
                entry["mac"] = None
            entry["frame"] = frame.hex()
            entry["crc"] = append_crc(frame)[-4:].hex()
            entry["wire"] = encode_frame(frame).hex()
            self.frames.append(entry)
        assert not pending

    def board_says(self, *msgs: Message) -> None:
        for m in msgs:
            self.board.send(m, NOW)
        wire = self.board.data_to_send()
        self._record(wire, "board_to_hub", list(msgs))
        self.hub_events = self.hub.receive_data(wire, NOW)

    def hub_says(self, *msgs: Message) -> None:
        for m in msgs:
            self.hub.send(m, NOW)
        wire = self.hub.data_to_send()
        self._record(wire, "hub_to_board", list(msgs))
        self.board_events = self.board.receive_data(wire, NOW)

    def run(self) -> None:
        rows = qr_rows(UPI)
        self.board_says(Hello(UID, "vm-2.3.1", 1, 1, 0x00000003, ("COF01", "TEA02", "H2O03")))
        self.hub.set_key(derive_board_key(TEST_MASTER_KEY, UID))
        self.hub_says(HelloAck(1, 1_764_800_000, True, 30, True))
        self.board_says()  # pure ACK of HELLO_ACK
        self.hub_says(StatusRequest())
        self.board_says(Status(BoardState.IDLE, 0, 3600, 41, 2, "ORD7Q1", VendOutcome.SUCCESS, 1))
        self.board_says(OrderRequest(1, "COF01", ("sugar:2", "milk"), 1))
        self.hub_says(PaymentQr(1, "ORD7Q2", 2000, "INR", 300, UPI, len(rows), pack_bitmap(rows)))
        self.board_says()
        self.hub_says(VendApproved("ORD7Q2", bytes.fromhex("a1b2c3d4e5f60718"), 1, 60))
        self.board_says(VendStarted("ORD7Q2"))
        self.board_says(VendResult("ORD7Q2", VendOutcome.SUCCESS, 0, 1))
        self.board_says(OrderRequest(2, "TEA02", (), 1))
        self.hub_says(OrderRejected(2, RejectReason.SOLD_OUT, "Tea is sold out"))
        self.board_says(OrderRequest(3, "H2O03", (), 2))
        self.hub_says(PaymentQr(3, "ORD7Q3", 4000, "INR", 120, "upi://pay?tr=ORD7Q3", 0, b""))
        self.board_says(Cancel("ORD7Q3", CancelReason.CUSTOMER))
        self.hub_says(Cancel("ORD7Q3", CancelReason.HUB))
        self.board_says(Log(30, 0x0102, "coin mech absent; cashless only"))
        self.hub_says()  # pure ACK: the board's last frames are acknowledged


def replay_into(script_frames: list[dict[str, Any]], role: Role, key: bytes) -> Link:
    """A receiver of `role` after the whole conversation (what negative vectors start from)."""
    if role is Role.HUB:
        link = Link(Role.HUB, ADDR, 115200, key, HUB_EPOCH)
        inbound = "board_to_hub"
    else:
        link = Link(Role.BOARD, ADDR, 115200, key, BOARD_EPOCH)
        inbound = "hub_to_board"
    for f in script_frames:
        if f["direction"] == inbound:
            link.receive_data(bytes.fromhex(f["wire"]), NOW)
    link.data_to_send()
    return link


def negative_vectors(s: Script) -> list[dict[str, Any]]:
    key = s.key
    last_b2h = max(
        (f for f in s.frames if f["direction"] == "board_to_hub" and f["message"]),
        key=lambda f: f["header"]["seq"],
    )
    next_seq = last_b2h["header"]["seq"] + 1
    next_counter = last_b2h["mac"]["counter"] + 1
    board_ack = max(f["header"]["seq"] for f in s.frames
                    if f["direction"] == "hub_to_board" and f["message"])

    def board_frame(msg_type: int, payload: bytes, *, seq: int = next_seq,
                    counter: int | None = next_counter, peer_epoch: int = HUB_EPOCH,
                    addr: int = ADDR, version: int = 1, flags_extra: int = 0) -> bytes:
        flags = Flags.RELIABLE | Flags.ACK | flags_extra
        if counter is not None:
            flags |= Flags.MAC
        hdr = Header(version, msg_type, int(flags), addr, BOARD_EPOCH, peer_epoch, seq,
                     board_ack).pack()
        body = payload + (make_trailer(key, hdr, payload, counter) if counter is not None else b"")
        return hdr + body

    result = VendResult("ORD7Q9", VendOutcome.FAILED, 7, 0).encode()
    good = board_frame(MsgType.VEND_RESULT, result)
    vectors: list[dict[str, Any]] = []

    def add(name: str, description: str, wire: bytes, expect: dict[str, Any]) -> None:
        vectors.append({"name": name, "description": description, "receiver": "hub",
                        "wire": wire.hex(), "expect": expect})

    add("control_valid_next_frame",
        "Control: the next VEND_RESULT the board would send, correctly MAC'd. It IS delivered; "
        "the negative vectors below are variations of it.",
        encode_frame(good),
        {"delivered": True, "event": "MessageReceived", "msg_type": MsgType.VEND_RESULT,
         "stats": {}})
    wire = bytearray(encode_frame(good))
    wire[-2] ^= 0x55  # inside the COBS-encoded CRC
    add("bad_crc", "One CRC byte changed on the wire.", bytes(wire),
        {"delivered": False, "event": None, "stats": {"crc_errors": 1}})
    bad_tag = good[:-1] + bytes([good[-1] ^ 0x01])
    add("bad_mac", "Last tag byte changed, CRC recomputed (an attacker without the key).",
        encode_frame(bad_tag),
        {"delivered": False, "event": "AuthFailed", "msg_type": MsgType.VEND_RESULT,
         "stats": {"mac_failures": 1}})
    replay = next(f for f in s.frames if f["message"] and f["message"]["name"] == "VendResult")
    add("replayed_counter",
        f"Frame {replay['index']} of the conversation sent again byte for byte: valid MAC, "
        "counter not above the last verified one.",
        bytes.fromhex(replay["wire"]),
        {"delivered": False, "event": "AuthFailed", "msg_type": MsgType.VEND_RESULT,
         "stats": {"replays": 1}})
    add("missing_mac", "The same VEND_RESULT without a MAC trailer, to a keyed hub.",
        encode_frame(board_frame(MsgType.VEND_RESULT, result, counter=None)),
        {"delivered": False, "event": "AuthFailed", "msg_type": MsgType.VEND_RESULT,
         "stats": {"mac_failures": 1}})
    cut = encode_frame(good)
    add("truncated_frame", "The wire frame cut after 20 bytes (cable pulled), then a delimiter.",
        cut[:20] + b"\x00",
        {"delivered": False, "event": None, "stats_any_of": ["crc_errors", "cobs_errors"]})
    add("truncated_payload",
        "Valid CRC and MAC, but the VEND_RESULT payload stops inside order_ref.",
        encode_frame(board_frame(MsgType.VEND_RESULT, result[:3])),
        {"delivered": False, "event": "InvalidMessage", "msg_type": MsgType.VEND_RESULT,
         "reason": "truncated", "stats": {"invalid": 1}})
    long_frame = bytes(HEADER_SIZE) + bytes(MAX_BODY + 1)
    add("too_long",
        f"A {len(long_frame)}-byte frame (body {MAX_BODY + 1} > MAX_BODY {MAX_BODY}) with valid "
        f"CRC and COBS; its encoding still fits in {MAX_ENCODED} bytes, the decoded length "
        "does not.",
        b"\x00" + cobs_encode(append_crc(long_frame)) + b"\x00",
        {"delivered": False, "event": None, "stats": {"too_long": 1}})
    add("too_long_unterminated",
        f"{MAX_ENCODED + 51} non-zero bytes with no delimiter: dropped up to the next 0x00.",
        b"\x00" + b"\x01" * (MAX_ENCODED + 51) + b"\x00",
        {"delivered": False, "event": None, "stats": {"too_long": 1}})
    add("unknown_type",
        "Type 0x7E (not defined in version 1), valid CRC and MAC: reported, acknowledged, "
        "not delivered as a message.",
        encode_frame(board_frame(0x7E, b"future")),
        {"delivered": False, "event": "UnknownMessage", "msg_type": 0x7E, "version": 1,
         "acked": True, "stats": {"unknown": 1}})
    add("unknown_version", "Protocol version 2 in the header: reported, never acknowledged.",
        encode_frame(board_frame(MsgType.VEND_RESULT, result, version=2)),
        {"delivered": False, "event": "UnknownMessage", "msg_type": MsgType.VEND_RESULT,
         "version": 2, "acked": False, "stats": {"unknown": 1}})
    add("stale_session",
        "Correct MAC but peer_epoch names an earlier hub session: not taken; the hub answers "
        "with a pure ACK that carries its epoch.",
        encode_frame(board_frame(MsgType.VEND_RESULT, result, peer_epoch=HUB_EPOCH ^ 0xFF)),
        {"delivered": False, "event": None, "stats": {"stale_frames": 1}})
    add("other_address", "A frame for board address 4 on the same bus.",
        encode_frame(board_frame(MsgType.VEND_RESULT, result, addr=ADDR + 1)),
        {"delivered": False, "event": None, "stats": {"filtered": 1}})
    return vectors


def build() -> dict[str, Any]:
    s = Script()
    s.run()
    return {
        "format": "upi-vend board<->hub serial protocol test vectors",
        "format_version": 1,
        "protocol_version": 1,
        "spec": "docs/protocol.md",
        "conventions": {
            "hex": "lowercase hex, no separators",
            "frame": "header (16 bytes) || body; body = payload || MAC trailer (if flag MAC)",
            "crc": "CRC-32/ISO-HDLC of frame, as the 4 bytes sent (little-endian)",
            "wire": "0x00 || COBS(frame || crc) || 0x00, exactly as sent on the UART",
            "integers": "JSON numbers (epochs are u32, shown in decimal)",
            "fields": "message fields by name: str as JSON string, bytes as hex, lists of str "
            "as arrays, bools as true/false, enums as numbers (names in enum_names)",
            "mac": "counter (u32) and tag (8 bytes hex) of the trailer; null if unsigned",
            "negative": "each negative vector is fed, alone, to a receiver that has processed "
            "every conversation frame travelling towards it and nothing else",
        },
        "keys": {
            "test_master_key": TEST_MASTER_KEY.hex(),
            "uid": UID.hex(),
            "board_key": s.key.hex(),
            "derivation": 'HMAC-SHA256(master_key, b"upv1 board key" || uid)',
        },
        "crc": {
            "algorithm": "CRC-32/ISO-HDLC (zlib.crc32)",
            "check_input": "313233343536373839",
            "check_value": CHECK_VALUE,
            "samples": [
                {"data": d.hex(), "crc": crc32(d)}
                for d in (b"", b"\x00", b"\xff\xff\xff\xff", bytes(range(16)))
            ],
        },
        "cobs": [
            {"raw": r.hex(), "encoded": cobs_encode(r).hex()}
            for r in (b"", b"\x00", b"\x00\x00", b"\x11\x22\x00\x33", b"\x11\x00",
                      bytes(range(1, 255)), bytes(range(1, 256)))
        ],
        "session": {
            "board": {"role": "board", "addr": ADDR, "epoch": BOARD_EPOCH, "keyed": True},
            "hub": {"role": "hub", "addr": ADDR, "epoch": HUB_EPOCH,
                    "keyed": "from frame 1 on (after it decoded HELLO)"},
        },
        "conversation": s.frames,
        "negative": negative_vectors(s),
    }


if __name__ == "__main__":
    json.dump(build(), sys.stdout, indent=1, ensure_ascii=False)
    sys.stdout.write("\n")
