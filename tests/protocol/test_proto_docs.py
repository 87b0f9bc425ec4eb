"""docs/protocol.md agrees with the code: message field tables, enums, limits, timeout table."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from protocol import MAX_BODY, MAX_ENCODED, MAX_FRAME, MAX_WIRE, MESSAGE_CLASSES, MsgType, base_rto
from protocol.enums import BoardState, CancelReason, RejectReason, VendOutcome
from protocol.framing import MAX_RAW, wire_length
from protocol.transport import TransportConfig

DOC = (Path(__file__).resolve().parents[2] / "docs" / "protocol.md").read_text()


def section(heading_re: str) -> str:
    m = re.search(heading_re + r".*?\n(.*?)(?=\n### |\n## )", DOC, re.S)
    assert m, heading_re
    return m.group(1)


@pytest.mark.parametrize("cls", list(MESSAGE_CLASSES.values()), ids=lambda c: c.__name__)
def test_every_message_has_a_field_table_in_wire_order(cls: type) -> None:
    body = section(rf"### 0x{int(cls.TYPE):02X} {cls.TYPE.name} ")
    documented = re.findall(r"^\| \d+ \| `(\w+)` \|", body, re.M)
    assert documented == [f.name for f in cls._FIELDS]


def test_message_table_lists_every_type_code() -> None:
    for t in MsgType:
        assert re.search(rf"^\| 0x{int(t):02X} \| {t.name} \|", DOC, re.M), t


@pytest.mark.parametrize("enum", [RejectReason, CancelReason, VendOutcome, BoardState])
def test_enum_values_are_documented(enum: type) -> None:
    row = re.search(rf"^\| `{enum.__name__}` \| (.*) \|$", DOC, re.M)
    assert row
    assert row.group(1) == ", ".join(f"{int(m)} {m.name}" for m in enum)  # type: ignore[attr-defined]


def test_size_limits_match() -> None:
    assert f"| {MAX_BODY} / {MAX_FRAME} / {MAX_RAW} / {MAX_ENCODED} / {MAX_WIRE} |" in DOC
    assert f"| `MAX_ENCODED` | {MAX_ENCODED} |" in DOC
    assert f"A pure ACK is {wire_length(16)} bytes on the wire" in DOC


def test_timeout_table_matches_the_formula() -> None:
    cfg = TransportConfig()
    frame = wire_length(16 + 101 + 12)
    rows = re.findall(r"^\| (\d+) \| [\d.]+ µs \| .*$", DOC, re.M)
    assert rows == ["9600", "115200", "460800"]
    total = sum(min(1 << k, cfg.max_backoff) for k in range(cfg.max_retries + 1))
    assert total == 31 and f"{total} \u00d7 rto0" in DOC
    for baud in (9600, 115200, 460800):
        one = base_rto(baud, frame, cfg.rto_slack_s)
        full = base_rto(baud, 4 * MAX_WIRE, cfg.rto_slack_s)
        expect = (f"| {baud} | {10 / baud * 1e6:.1f} µs | {frame * 10 / baud * 1e3:.1f} ms | "
                  f"{MAX_WIRE * 10 / baud * 1e3:.1f} ms | {one * 1e3:.0f} ms | {one * total:.1f} s"
                  f" | {full * 1e3:.0f} ms | {full * total:.1f} s |")
        assert expect in DOC


def test_transport_constants_match() -> None:
    cfg = TransportConfig()
    assert f"| window W | {cfg.window} |" in DOC
    assert f"| MAX_RETRIES | {cfg.max_retries} ({cfg.max_retries + 1} transmissions) |" in DOC
    assert f"| backoff cap | {cfg.max_backoff} \u00d7 rto0 |" in DOC
    assert f"| T_slack | {cfg.rto_slack_s} s |" in DOC
