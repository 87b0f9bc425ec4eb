"""A tiny declarative payload codec: each message lists its fields once, in wire order.

A field list compiles to a short chain of operations: runs of fixed-size fields become one
precompiled `struct.Struct`, and each variable-size field (strings, lists, bitmaps) one step.
Decoding ignores bytes after the last known field (a newer minor revision may append fields);
running out of bytes inside a field is `DecodeError(TRUNCATED)`. Decoders are generated
straight-line functions (see `protocol.decodegen`); encoders are compiled closures.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import IntEnum
from typing import Any, Final

from protocol.decodegen import FIXED_FORMATS, compile_decoder
from protocol.errors import EncodeError

MAX_STR8: Final = 255
MAX_STR16: Final = 0xFFFF
MAX_LIST8: Final = 255



@dataclass(frozen=True, slots=True)
class Field:
    """One payload field. `kind` is one of u8 u16 u32 bool enum8 str8 str16 strlist8 bytes
    ascii bitmap; `size` is the length of bytes/ascii fields; `enum` the IntEnum of enum8
    fields; `size_field` names the field that holds the side of a square bitmap."""

    name: str
    kind: str
    size: int = 0
    enum: type[IntEnum] | None = None
    size_field: str = ""


def u8(name: str) -> Field:
    return Field(name, "u8")


def u16(name: str) -> Field:
    return Field(name, "u16")


def u32(name: str) -> Field:
    return Field(name, "u32")


def boolean(name: str) -> Field:
    return Field(name, "bool")


def enum8(name: str, enum: type[IntEnum]) -> Field:
    return Field(name, "enum8", enum=enum)


def str8(name: str) -> Field:
    return Field(name, "str8")


def str16(name: str) -> Field:
    return Field(name, "str16")


def strlist8(name: str) -> Field:
    return Field(name, "strlist8")


def fixed_bytes(name: str, size: int) -> Field:
    return Field(name, "bytes", size=size)


def ascii_code(name: str, size: int) -> Field:
    return Field(name, "ascii", size=size)


def bitmap(name: str, size_field: str) -> Field:
    return Field(name, "bitmap", size_field=size_field)


def bitmap_bytes(side: int) -> int:
    """Bytes of a packed square bitmap with `side` modules per side."""
    return (side * side + 7) // 8


EncodeOp = Callable[[object, list[bytes]], None]


def _check_enum(name: str, enum: type[IntEnum], v: object) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or v not in enum._value2member_map_:
        raise EncodeError(f"{name}={v!r} is not a {enum.__name__}")
    return int(v)


class Codec:
    """Compiled encoder/decoder for one field list."""

    __slots__ = ("_enc", "decode", "fields")

    def __init__(self, fields: Sequence[Field], factory: Callable[..., Any]) -> None:
        self.fields = tuple(fields)
        self.decode: Callable[[bytes], Any] = compile_decoder(self.fields, factory)
        """Parse a payload into `factory(*values)`; raises DecodeError."""
        self._enc: list[EncodeOp] = []
        run: list[Field] = []
        names = [f.name for f in self.fields]
        for f in self.fields:
            if f.kind in FIXED_FORMATS:
                run.append(f)
                continue
            self._flush(run)
            run = []
            self._add_variable(f, names)
        self._flush(run)

    # -- compilation ------------------------------------------------------------------------
    def _flush(self, run: list[Field]) -> None:
        if not run:
            return
        st = struct.Struct("<" + "".join(FIXED_FORMATS[f.kind] for f in run))
        names = tuple(f.name for f in run)
        label = ",".join(names)
        kinds = tuple(f.kind for f in run)
        enums = tuple(f.enum for f in run)

        def enc(msg: object, out: list[bytes]) -> None:
            vals: list[int] = []
            for name, kind, enum in zip(names, kinds, enums, strict=True):
                v = getattr(msg, name)
                if enum is not None:
                    v = _check_enum(name, enum, v)
                elif kind == "bool":
                    if not isinstance(v, bool):
                        raise EncodeError(f"{name}={v!r} must be a bool")
                elif isinstance(v, bool) or not isinstance(v, int):
                    raise EncodeError(f"{name}={v!r} must be an int")
                vals.append(v)
            try:
                out.append(st.pack(*vals))
            except struct.error:
                raise EncodeError(
                    f"{label}={tuple(vals)} out of range for {kinds}"
                ) from None

        self._enc.append(enc)

    def _add_variable(self, f: Field, names: list[str]) -> None:
        name = f.name
        kind = f.kind
        if kind in ("str8", "str16"):
            lw = 1 if kind == "str8" else 2
            limit = MAX_STR8 if kind == "str8" else MAX_STR16

            def enc(msg: object, out: list[bytes]) -> None:
                v = getattr(msg, name)
                if not isinstance(v, str):
                    raise EncodeError(f"{name}={v!r} must be a str")
                raw = v.encode("utf-8")
                if len(raw) > limit:
                    raise EncodeError(f"{name} is {len(raw)} UTF-8 bytes, at most {limit}")
                out.append(len(raw).to_bytes(lw, "little"))
                out.append(raw)

        elif kind == "strlist8":

            def enc(msg: object, out: list[bytes]) -> None:
                v = getattr(msg, name)
                if not isinstance(v, tuple | list) or not all(isinstance(s, str) for s in v):
                    raise EncodeError(f"{name}={v!r} must be a tuple of str")
                if len(v) > MAX_LIST8:
                    raise EncodeError(f"{name} has {len(v)} items, at most {MAX_LIST8}")
                out.append(bytes((len(v),)))
                for i, s in enumerate(v):
                    raw = s.encode("utf-8")
                    if len(raw) > MAX_STR8:
                        raise EncodeError(f"{name}[{i}] is {len(raw)} UTF-8 bytes, at most 255")
                    out.append(bytes((len(raw),)))
                    out.append(raw)

        elif kind in ("bytes", "ascii"):
            size = f.size
            is_ascii = kind == "ascii"

            def enc(msg: object, out: list[bytes]) -> None:
                v = getattr(msg, name)
                if is_ascii:
                    if not isinstance(v, str) or not v.isascii():
                        raise EncodeError(f"{name}={v!r} must be an ASCII str")
                    raw = v.encode("ascii")
                else:
                    if not isinstance(v, bytes):
                        raise EncodeError(f"{name} must be bytes")
                    raw = v
                if len(raw) != size:
                    raise EncodeError(f"{name} must be exactly {size} bytes, got {len(raw)}")
                out.append(raw)

        elif kind == "bitmap":
            if f.size_field not in names:
                raise ValueError(f"{name}: size field {f.size_field!r} is not a field")

            def enc(msg: object, out: list[bytes]) -> None:
                v = getattr(msg, name)
                side = getattr(msg, f.size_field)
                if not isinstance(v, bytes):
                    raise EncodeError(f"{name} must be bytes")
                if len(v) != bitmap_bytes(side):
                    raise EncodeError(
                        f"{name} is {len(v)} bytes; a {side}x{side} bitmap needs "
                        f"{bitmap_bytes(side)}"
                    )
                out.append(v)

        else:
            raise ValueError(f"unknown field kind {kind!r} for {name}")
        self._enc.append(enc)

    # -- use ----------------------------------------------------------------------------------
    def encode(self, msg: object) -> bytes:
        """The payload bytes of `msg`; raises EncodeError naming the bad field."""
        parts: list[bytes] = []
        for op in self._enc:
            op(msg, parts)
        return b"".join(parts)
