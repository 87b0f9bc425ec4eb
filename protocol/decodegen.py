"""Decoder generation: one straight-line Python function per message class.

Like `dataclasses` and `collections.namedtuple`, we generate source once at import and `exec`
it, so decoding a payload is a few struct calls and one constructor call, with no per-field
dispatch. The generated code only uses the helpers passed in its namespace; every bound check
raises `DecodeError` with a reason, and bytes after the last field are ignored.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Sequence
from typing import Any, Final

from protocol.errors import DecodeError, DecodeReason

FIXED_FORMATS: Final = {"u8": "B", "u16": "H", "u32": "I", "bool": "B", "enum8": "B"}


def _trunc(what: str, need: int, off: int, have: int) -> DecodeError:
    return DecodeError(
        DecodeReason.TRUNCATED, f"{what}: needs {need} bytes at offset {off}, payload has {have}"
    )


def _bad_utf8(name: str) -> DecodeError:
    return DecodeError(DecodeReason.BAD_UTF8, f"{name} is not valid UTF-8")


def _bad_value(name: str, value: int, what: str) -> DecodeError:
    return DecodeError(DecodeReason.BAD_VALUE, f"{name}={value} is not a {what}")


def _strlist8(data: bytes, off: int, n: int, name: str) -> tuple[tuple[str, ...], int]:
    if off >= n:
        raise _trunc(name + " count", 1, off, n)
    count = data[off]
    off += 1
    items: list[str] = []
    for i in range(count):
        if off >= n:
            raise _trunc(f"{name}[{i}] length", 1, off, n)
        end = off + 1 + data[off]
        if end > n:
            raise _trunc(f"{name}[{i}]", data[off], off + 1, n)
        try:
            items.append(data[off + 1 : end].decode("utf-8"))
        except UnicodeDecodeError:
            raise _bad_utf8(f"{name}[{i}]") from None
        off = end
    return tuple(items), off


def _ascii(data: bytes, off: int, n: int, size: int, name: str) -> tuple[str, int]:
    end = off + size
    if end > n:
        raise _trunc(name, size, off, n)
    raw = data[off:end]
    if not raw.isascii():
        raise DecodeError(DecodeReason.BAD_UTF8, f"{name} is not ASCII")
    return raw.decode("ascii"), end


def _bitmap(data: bytes, off: int, n: int, side: int, name: str) -> tuple[bytes, int]:
    end = off + (side * side + 7) // 8
    if end > n:
        raise _trunc(name, end - off, off, n)
    return data[off:end], end


def compile_decoder(fields: Sequence[Any], factory: Callable[..., Any]) -> Callable[[bytes], Any]:
    """Generate `decode(payload) -> factory(*fields)` for a list of `protocol.fields.Field`."""
    ns: dict[str, Any] = {
        "_factory": factory,
        "_trunc": _trunc,
        "_bad_utf8": _bad_utf8,
        "_bad_value": _bad_value,
        "_strlist8": _strlist8,
        "_ascii": _ascii,
        "_bitmap": _bitmap,
        "UnicodeDecodeError": UnicodeDecodeError,
    }
    var = {f.name: f"v{i}" for i, f in enumerate(fields)}
    lines = ["def decode(data):", "    n = len(data)", "    off = 0"]
    run: list[Any] = []

    def flush() -> None:
        if not run:
            return
        st = struct.Struct("<" + "".join(FIXED_FORMATS[f.kind] for f in run))
        sname = f"_S{len(ns)}"
        ns[sname] = st.unpack_from
        label = ",".join(f.name for f in run)
        targets = "".join(var[f.name] + ", " for f in run)
        lines.append(f"    e = off + {st.size}")
        lines.append(f"    if e > n: raise _trunc({label!r}, {st.size}, off, n)")
        lines.append(f"    {targets}= {sname}(data, off)")
        lines.append("    off = e")
        for f in run:
            v = var[f.name]
            if f.kind == "bool":
                lines.append(f"    if {v} > 1: raise _bad_value({f.name!r}, {v}, 'bool')")
                lines.append(f"    {v} = {v} == 1")
            elif f.kind == "enum8":
                mname = f"_M{len(ns)}"
                ns[mname] = dict(f.enum._value2member_map_)
                lines.append(f"    m = {mname}.get({v})")
                lines.append(
                    f"    if m is None: raise _bad_value({f.name!r}, {v}, {f.enum.__name__!r})"
                )
                lines.append(f"    {v} = m")
        run.clear()

    for f in fields:
        if f.kind in FIXED_FORMATS:
            run.append(f)
            continue
        flush()
        v, name = var[f.name], f.name
        if f.kind in ("str8", "str16"):
            if f.kind == "str8":
                lines.append(f"    if off >= n: raise _trunc({name + ' length'!r}, 1, off, n)")
                lines.append("    s = off + 1")
                lines.append("    e = s + data[off]")
            else:
                lines.append(f"    if off + 2 > n: raise _trunc({name + ' length'!r}, 2, off, n)")
                lines.append("    s = off + 2")
                lines.append("    e = s + (data[off] | data[off + 1] << 8)")
            lines.append(f"    if e > n: raise _trunc({name!r}, e - s, s, n)")
            lines.append("    try:")
            lines.append(f"        {v} = data[s:e].decode('utf-8')")
            lines.append("    except UnicodeDecodeError:")
            lines.append(f"        raise _bad_utf8({name!r}) from None")
            lines.append("    off = e")
        elif f.kind == "strlist8":
            lines.append(f"    {v}, off = _strlist8(data, off, n, {name!r})")
        elif f.kind == "bytes":
            lines.append(f"    e = off + {f.size}")
            lines.append(f"    if e > n: raise _trunc({name!r}, {f.size}, off, n)")
            lines.append(f"    {v} = data[off:e]")
            lines.append("    off = e")
        elif f.kind == "ascii":
            lines.append(f"    {v}, off = _ascii(data, off, n, {f.size}, {name!r})")
        elif f.kind == "bitmap":
            lines.append(f"    {v}, off = _bitmap(data, off, n, {var[f.size_field]}, {name!r})")
        else:
            raise ValueError(f"unknown field kind {f.kind!r} for {name}")
    flush()
    lines.append(f"    return _factory({', '.join(var[f.name] for f in fields)})")
    exec("\n".join(lines), ns)
    decode: Callable[[bytes], Any] = ns["decode"]
    decode.__doc__ = "\n".join(lines)  # the generated source, for the curious
    return decode
