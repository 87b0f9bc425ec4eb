"""docs/protocol_vectors.json, checked in both directions: fields -> bytes and bytes -> fields."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from cobs.cobs import decode as cobs_decode  # type: ignore[import-untyped]
from cobs.cobs import encode as cobs_encode
from make_vectors import build

from protocol import (
    MESSAGE_CLASSES,
    AuthFailed,
    FrameDecoder,
    Header,
    InvalidMessage,
    Link,
    Message,
    MessageReceived,
    Role,
    UnknownMessage,
    append_crc,
    crc32,
    derive_board_key,
    encode_frame,
    make_trailer,
)

VECTORS_PATH = Path(__file__).resolve().parents[2] / "docs" / "protocol_vectors.json"
V: dict[str, Any] = json.loads(VECTORS_PATH.read_text())
KEYS = V["keys"]
BOARD_KEY = bytes.fromhex(KEYS["board_key"])
CONV: list[dict[str, Any]] = V["conversation"]
EVENT_TYPES = {"AuthFailed": AuthFailed, "UnknownMessage": UnknownMessage,
               "InvalidMessage": InvalidMessage, "MessageReceived": MessageReceived}


def message_from_json(entry: dict[str, Any]) -> Message:
    cls = {c.__name__: c for c in MESSAGE_CLASSES.values()}[entry["name"]]
    values = []
    for f in cls._FIELDS:
        v = entry["fields"][f.name]
        if f.kind in ("bytes", "bitmap"):
            v = bytes.fromhex(v)
        elif f.kind == "strlist8":
            v = tuple(v)
        elif f.kind == "enum8":
            assert f.enum is not None
            v = f.enum(v)
            assert v.name == entry["enum_names"][f.name]
        values.append(v)
    return cls(*values)


def test_file_is_what_the_implementation_produces() -> None:
    assert build() == V, "regenerate: .venv/bin/python tests/protocol/make_vectors.py"


def test_keys_crc_and_cobs_samples() -> None:
    master, uid = bytes.fromhex(KEYS["test_master_key"]), bytes.fromhex(KEYS["uid"])
    assert master == bytes(range(32))
    assert derive_board_key(master, uid) == BOARD_KEY
    assert crc32(bytes.fromhex(V["crc"]["check_input"])) == V["crc"]["check_value"] == 0xCBF43926
    for s in V["crc"]["samples"]:
        assert crc32(bytes.fromhex(s["data"])) == s["crc"]
    for c in V["cobs"]:
        assert cobs_encode(bytes.fromhex(c["raw"])).hex() == c["encoded"]
        assert cobs_decode(bytes.fromhex(c["encoded"])).hex() == c["raw"]


@pytest.mark.parametrize("f", CONV, ids=lambda f: f"{f['index']}-{f['header']['type_name']}")
def test_encode_direction(f: dict[str, Any]) -> None:
    h = f["header"]
    header = Header(h["version"], h["type"], h["flags"], h["addr"], h["epoch"], h["peer_epoch"],
                    h["seq"], h["ack"]).pack()
    payload = b"" if f["message"] is None else message_from_json(f["message"]).encode()
    assert payload.hex() == f["payload"]
    body = payload
    if f["mac"] is not None:
        body += make_trailer(BOARD_KEY, header, payload, f["mac"]["counter"])
        assert body[-8:].hex() == f["mac"]["tag"]
    frame = header + body
    assert frame.hex() == f["frame"]
    assert append_crc(frame)[-4:].hex() == f["crc"]
    assert encode_frame(frame).hex() == f["wire"]


def test_decode_direction_through_real_links() -> None:
    board_cfg, hub_cfg = V["session"]["board"], V["session"]["hub"]
    board = Link(Role.BOARD, board_cfg["addr"], 115200, BOARD_KEY, board_cfg["epoch"])
    hub = Link(Role.HUB, hub_cfg["addr"], 115200, None, hub_cfg["epoch"])
    for f in CONV:
        wire = bytes.fromhex(f["wire"])
        (frame,) = FrameDecoder().feed(wire)
        assert Header.unpack(frame)._asdict() == {
            k: v for k, v in f["header"].items() if k not in ("type_name", "flag_names")
        }
        to = hub if f["direction"] == "board_to_hub" else board
        events = to.receive_data(wire, 0.0)
        if f["message"] is None:
            assert events == []
        else:
            assert events == [MessageReceived(message_from_json(f["message"]),
                                              f["mac"] is not None)]
        if f["index"] == 0:
            hub.set_key(BOARD_KEY)  # the hub keys the link from HELLO's uid
    assert board.stats.mac_failures == hub.stats.mac_failures == 0


def receiver_after_conversation(kind: str) -> Link:
    cfg = V["session"][kind]
    link = Link(Role.HUB if kind == "hub" else Role.BOARD, cfg["addr"], 115200, BOARD_KEY,
                cfg["epoch"])
    inbound = "board_to_hub" if kind == "hub" else "hub_to_board"
    for f in CONV:
        if f["direction"] == inbound:
            link.receive_data(bytes.fromhex(f["wire"]), 0.0)
    link.data_to_send()
    return link


@pytest.mark.parametrize("n", V["negative"], ids=lambda n: n["name"])
def test_negative_vectors(n: dict[str, Any]) -> None:
    link = receiver_after_conversation(n["receiver"])
    before = link.stats
    events = link.receive_data(bytes.fromhex(n["wire"]), 0.0)
    after = link.stats
    exp = n["expect"]
    delivered = [e for e in events if isinstance(e, MessageReceived)]
    assert bool(delivered) == exp["delivered"]
    if exp["event"] is None:
        assert events == []
    else:
        (ev,) = events
        assert type(ev) is EVENT_TYPES[exp["event"]]
        if isinstance(ev, MessageReceived):
            assert int(ev.message.TYPE) == exp["msg_type"] and ev.authenticated
        else:
            assert ev.msg_type == exp["msg_type"]
        if isinstance(ev, UnknownMessage):
            assert ev.version == exp["version"]
        if isinstance(ev, InvalidMessage):
            assert ev.reason.value == exp["reason"]
    changed = {k for k in before.__slots__ if getattr(after, k) != getattr(before, k)}
    for stat, delta in exp.get("stats", {}).items():
        assert getattr(after, stat) - getattr(before, stat) == delta, stat
    if "stats_any_of" in exp:
        assert changed & set(exp["stats_any_of"])
    acks = [Header.unpack(f).ack for f in FrameDecoder().feed(link.data_to_send())]
    if "acked" in exp:
        (frame,) = FrameDecoder().feed(bytes.fromhex(n["wire"]))
        assert (Header.unpack(frame).seq in acks) == exp["acked"]
