#!/usr/bin/env python3
"""Generate a C header of the test vectors from docs/protocol_vectors.json (build step).

Usage: gen_vectors.py VECTORS_JSON OUT_H

Nothing is copied by hand: every byte string, field and expectation comes from the JSON. The only
knowledge here is how each message's fields map onto the C structs of include/upv_msg.h (SCHEMA);
a field the JSON has and SCHEMA lacks (or the reverse) stops the build, so a spec change cannot go
unnoticed.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

# message name -> (C type code, union member, [(field, kind)]) in wire order.
SCHEMA: dict[str, tuple[str, str, list[tuple[str, str]]]] = {
    "Hello": ("UPV_T_HELLO", "hello", [
        ("uid", "fixed"), ("fw_version", "str"), ("proto_min", "int"), ("proto_max", "int"),
        ("capabilities", "int"), ("products", "list")]),
    "HelloAck": ("UPV_T_HELLO_ACK", "hello_ack", [
        ("version", "int"), ("unix_time", "int"), ("time_synced", "bool"),
        ("heartbeat_s", "int"), ("in_service", "bool")]),
    "Status": ("UPV_T_STATUS", "status", [
        ("state", "int"), ("error_code", "int"), ("uptime_s", "int"), ("vends_ok", "int"),
        ("vends_failed", "int"), ("last_order", "str"), ("last_outcome", "int"),
        ("last_dispensed", "int")]),
    "StatusRequest": ("UPV_T_STATUS_REQUEST", "", []),
    "OrderRequest": ("UPV_T_ORDER_REQUEST", "order_request", [
        ("request_id", "int"), ("product", "str"), ("options", "list"), ("quantity", "int")]),
    "PaymentQr": ("UPV_T_PAYMENT_QR", "payment_qr", [
        ("request_id", "int"), ("order_ref", "str"), ("amount_paise", "int"),
        ("currency", "ascii"), ("expires_in_s", "int"), ("upi_uri", "str"),
        ("qr_size", "int"), ("qr_bitmap", "ptr")]),
    "OrderRejected": ("UPV_T_ORDER_REJECTED", "order_rejected", [
        ("request_id", "int"), ("reason", "int"), ("message", "str")]),
    "Cancel": ("UPV_T_CANCEL", "cancel", [("order_ref", "str"), ("reason", "int")]),
    "VendApproved": ("UPV_T_VEND_APPROVED", "vend_approved", [
        ("order_ref", "str"), ("auth", "fixed"), ("quantity", "int"), ("deadline_s", "int")]),
    "VendStarted": ("UPV_T_VEND_STARTED", "vend_started", [("order_ref", "str")]),
    "VendResult": ("UPV_T_VEND_RESULT", "vend_result", [
        ("order_ref", "str"), ("outcome", "int"), ("reason", "int"), ("dispensed", "int")]),
    "Log": ("UPV_T_LOG", "log", [("level", "int"), ("code", "int"), ("text", "str")]),
}
EVENTS = {None: "0", "MessageReceived": "UPV_EV_MESSAGE", "AuthFailed": "UPV_EV_AUTH_FAILED",
          "UnknownMessage": "UPV_EV_UNKNOWN", "InvalidMessage": "UPV_EV_INVALID"}


class VectorError(Exception):
    """The vector file has something this generator does not know how to check."""


def c_bytes(data: bytes) -> str:
    """A C initializer of the bytes (C99 has no empty initializer: one dummy byte then)."""
    if not data:
        return "{0}"
    return "{" + ",".join(f"0x{b:02x}" for b in data) + "}"


def c_string(data: bytes) -> str:
    """A C string literal of any bytes, as 3-digit octal escapes (hex escapes are greedy)."""
    return '"' + "".join(f"\\{b:03o}" for b in data) + '"'


def c_str(text: str) -> str:
    raw = text.encode("utf-8")
    return f"{{(const uint8_t *){c_string(raw)}, {len(raw)}u}}"


class Gen:
    def __init__(self) -> None:
        self.decls: list[str] = []
        self.count = 0

    def array(self, prefix: str, data: bytes) -> str:
        name = f"{prefix}_{self.count}"
        self.count += 1
        self.decls.append(f"static const uint8_t {name}[] = {c_bytes(data)};")
        return name

    def blob(self, prefix: str, hex_text: str) -> str:
        data = bytes.fromhex(hex_text)
        return f"{{{self.array(prefix, data)}, {len(data)}u}}"

    def message(self, msg: dict[str, Any], where: str) -> str:
        name = msg["name"]
        if name not in SCHEMA:
            raise VectorError(f"{where}: message {name} is not in SCHEMA")
        code, member, schema = SCHEMA[name]
        fields: dict[str, Any] = msg["fields"]
        if set(fields) != {f for f, _ in schema}:
            raise VectorError(f"{where}: {name} fields {sorted(fields)} != SCHEMA "
                              f"{sorted(f for f, _ in schema)}")
        parts = []
        for field, kind in schema:
            value = fields[field]
            if kind == "int":
                text = f"{int(value)}u"
            elif kind == "bool":
                if not isinstance(value, bool):
                    raise VectorError(f"{where}: {field} is not a bool")
                text = "true" if value else "false"
            elif kind == "str":
                text = c_str(str(value))
            elif kind == "fixed":
                text = c_bytes(bytes.fromhex(value))
            elif kind == "ascii":
                text = c_bytes(str(value).encode("ascii"))
            elif kind == "ptr":
                data = bytes.fromhex(value)
                text = self.array("v_bitmap", data) if data else "NULL"
            elif kind == "list":
                items = ",".join(c_str(s) for s in value)
                text = f"{{{len(value)}u, {{{items}}}}}" if value else "{0u, {{NULL, 0u}}}"
            else:
                raise VectorError(f"{where}: unknown kind {kind}")
            parts.append(f".{field} = {text}")
        body = f", .u.{member} = {{{', '.join(parts)}}}" if member else ""
        return f"{{{code}{body}}}"


def header_init(h: dict[str, Any]) -> str:
    keys = ("version", "type", "flags", "addr", "epoch", "peer_epoch", "seq", "ack")
    return "{" + ", ".join(f"{int(h[k])}u" for k in keys) + "}"


def generate(vectors: dict[str, Any]) -> str:
    if vectors.get("format_version") != 1:
        raise VectorError(f"format_version {vectors.get('format_version')} is not 1")
    g = Gen()
    out: list[str] = []
    keys = vectors["keys"]
    master = g.blob("v_key", keys["test_master_key"])
    out.append(f"static const upv_bytes_t V_MASTER_KEY = {master};")
    out.append(f"static const upv_bytes_t V_UID = {g.blob('v_key', keys['uid'])};")
    out.append(f"static const upv_bytes_t V_BOARD_KEY = {g.blob('v_key', keys['board_key'])};")
    crc = vectors["crc"]
    check = g.blob("v_crc", crc["check_input"])
    out.append(f"static const upv_bytes_t V_CRC_CHECK_INPUT = {check};")
    out.append(f"#define V_CRC_CHECK_VALUE {int(crc['check_value'])}u")
    rows = [f"{{{g.blob('v_crc', s['data'])}, {int(s['crc'])}u}}" for s in crc["samples"]]
    out.append(f"static const v_crc_t V_CRC[] = {{{', '.join(rows)}}};")
    rows = [f"{{{g.blob('v_cobs', c['raw'])}, {g.blob('v_cobs', c['encoded'])}}}"
            for c in vectors["cobs"]]
    out.append(f"static const v_cobs_t V_COBS[] = {{{', '.join(rows)}}};")
    s = vectors["session"]
    out.append(f"#define V_BOARD_ADDR {int(s['board']['addr'])}u")
    out.append(f"#define V_BOARD_EPOCH {int(s['board']['epoch'])}u")
    out.append(f"#define V_HUB_ADDR {int(s['hub']['addr'])}u")
    out.append(f"#define V_HUB_EPOCH {int(s['hub']['epoch'])}u")
    rows = []
    for c in vectors["conversation"]:
        where = f"conversation[{c['index']}]"
        to_hub = c["direction"] == "board_to_hub"
        if not to_hub and c["direction"] != "hub_to_board":
            raise VectorError(f"{where}: direction {c['direction']}")
        msg = c["message"]
        mac = c["mac"]
        rows.append("{" + ", ".join([
            f"{int(c['index'])}", "true" if to_hub else "false", header_init(c["header"]),
            "true" if msg else "false",
            g.message(msg, where) if msg else "{0}",
            g.blob("v_conv", c["payload"]),
            "true" if mac else "false",
            f"{int(mac['counter'])}u" if mac else "0u",
            g.blob("v_conv", mac["tag"] if mac else ""),
            g.blob("v_conv", c["frame"]), g.blob("v_conv", c["crc"]),
            g.blob("v_conv", c["wire"]),
        ]) + "}")
    out.append(f"static const v_conv_t V_CONV[] = {{\n  {(',' + chr(10) + '  ').join(rows)}\n}};")
    rows = []
    for n in vectors["negative"]:
        where = f"negative {n['name']}"
        if n["receiver"] != "hub":
            raise VectorError(f"{where}: receiver {n['receiver']} (only hub is known)")
        e = n["expect"]
        if e.get("event") not in EVENTS:
            raise VectorError(f"{where}: event {e.get('event')}")
        stats = e.get("stats", {})
        any_of = e.get("stats_any_of", [])
        st = ",".join(f"{{offsetof(upv_link_stats_t, {k}), {int(v)}u}}" for k, v in stats.items())
        an = ",".join(f"{{offsetof(upv_link_stats_t, {k}), 1u}}" for k in any_of)
        acked = e.get("acked")
        rows.append("{" + ", ".join([
            json.dumps(n["name"]), g.blob("v_neg", n["wire"]),
            "true" if e["delivered"] else "false", EVENTS[e.get("event")],
            f"{int(e.get('msg_type', 0))}u", f"{int(e.get('version', 0))}u",
            c_string(e["reason"].encode()) if e.get("reason") else "NULL",
            "-1" if acked is None else ("1" if acked else "0"),
            f"{len(stats)}u", f"{{{st}}}" if st else "{{0, 0}}",
            f"{len(any_of)}u", f"{{{an}}}" if an else "{{0, 0}}",
        ]) + "}")
    out.append(f"static const v_neg_t V_NEG[] = {{\n  {(',' + chr(10) + '  ').join(rows)}\n}};")
    head = [
        "/* GENERATED by tools/gen_vectors.py from docs/protocol_vectors.json. Do not edit. */",
        "#ifndef UPV_VECTORS_H", "#define UPV_VECTORS_H", "#include \"vectors_types.h\"", "",
    ]
    return "\n".join([*head, *g.decls, "", *out, "", "#endif", ""])


def main(argv: list[str]) -> int:
    if len(argv) != 3:
        print("usage: gen_vectors.py VECTORS_JSON OUT_H", file=sys.stderr)
        return 2
    try:
        text = generate(json.loads(Path(argv[1]).read_text(encoding="utf-8")))
    except (VectorError, KeyError, ValueError) as exc:
        print(f"gen_vectors: {argv[1]}: {exc!r}", file=sys.stderr)
        return 1
    Path(argv[2]).write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
