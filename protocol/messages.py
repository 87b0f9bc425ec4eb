"""Typed, immutable messages of the vend cycle, each with `encode()` and `decode()`.

Every class lists its wire fields once (`_FIELDS`, in wire order); `protocol.fields` compiles
that list into the payload codec. `decode_message(type, payload)` dispatches on the type code and
raises `DecodeError` (with a `DecodeReason`) for unknown types and malformed payloads; the `Link`
turns those into `UnknownMessage` / `InvalidMessage` events instead of raising.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import Any, ClassVar, Final, Self, TypeVar

from protocol.enums import BoardState, CancelReason, MsgType, RejectReason, VendOutcome
from protocol.errors import DecodeError, DecodeReason
from protocol.fields import (
    Codec,
    Field,
    ascii_code,
    bitmap,
    boolean,
    enum8,
    fixed_bytes,
    str8,
    str16,
    strlist8,
    u8,
    u16,
    u32,
)

UID_SIZE: Final = 12
AUTH_SIZE: Final = 8


class Message:
    """Base of every message class. Subclasses are frozen, slotted dataclasses."""

    __slots__ = ()
    TYPE: ClassVar[MsgType]
    _FIELDS: ClassVar[tuple[Field, ...]]
    _CODEC: ClassVar[Codec]

    def encode(self) -> bytes:
        """Payload bytes (no header, no MAC trailer); raises EncodeError naming a bad field."""
        return self._CODEC.encode(self)

    @classmethod
    def decode(cls, payload: bytes) -> Self:
        """Parse a payload; raises DecodeError. Bytes after the last known field are ignored."""
        msg: Self = cls._CODEC.decode(payload)
        return msg


MESSAGE_CLASSES: dict[int, type[Message]] = {}
_DECODERS: dict[int, Callable[[bytes], Message]] = {}
_M = TypeVar("_M", bound=type[Message])


def _register(cls: _M) -> _M:
    names = [f.name for f in fields(cls)]  # type: ignore[arg-type]
    wire = [f.name for f in cls._FIELDS]
    if names != wire:
        raise TypeError(f"{cls.__name__}: dataclass fields {names} != wire fields {wire}")
    cls._CODEC = Codec(cls._FIELDS, cls)
    MESSAGE_CLASSES[int(cls.TYPE)] = cls
    _DECODERS[int(cls.TYPE)] = cls._CODEC.decode
    return cls


@_register
@dataclass(frozen=True, slots=True)
class Hello(Message):
    """B->H at boot: who the board is and what it can do."""

    TYPE: ClassVar[MsgType] = MsgType.HELLO
    _FIELDS: ClassVar[tuple[Field, ...]] = (
        fixed_bytes("uid", UID_SIZE),
        str8("fw_version"),
        u8("proto_min"),
        u8("proto_max"),
        u32("capabilities"),
        strlist8("products"),
    )
    uid: bytes
    fw_version: str
    proto_min: int
    proto_max: int
    capabilities: int
    products: tuple[str, ...]


@_register
@dataclass(frozen=True, slots=True)
class HelloAck(Message):
    """H->B answer to HELLO: accepted version, time and config."""

    TYPE: ClassVar[MsgType] = MsgType.HELLO_ACK
    _FIELDS: ClassVar[tuple[Field, ...]] = (
        u8("version"),
        u32("unix_time"),
        boolean("time_synced"),
        u16("heartbeat_s"),
        boolean("in_service"),
    )
    version: int
    unix_time: int
    time_synced: bool
    heartbeat_s: int
    in_service: bool


@_register
@dataclass(frozen=True, slots=True)
class Status(Message):
    """B->H heartbeat / status."""

    TYPE: ClassVar[MsgType] = MsgType.STATUS
    _FIELDS: ClassVar[tuple[Field, ...]] = (
        enum8("state", BoardState),
        u16("error_code"),
        u32("uptime_s"),
        u32("vends_ok"),
        u32("vends_failed"),
        str8("last_order"),
        enum8("last_outcome", VendOutcome),
        u8("last_dispensed"),
    )
    state: BoardState
    error_code: int
    uptime_s: int
    vends_ok: int
    vends_failed: int
    last_order: str
    last_outcome: VendOutcome
    last_dispensed: int


@_register
@dataclass(frozen=True, slots=True)
class StatusRequest(Message):
    """H->B: send a STATUS now."""

    TYPE: ClassVar[MsgType] = MsgType.STATUS_REQUEST
    _FIELDS: ClassVar[tuple[Field, ...]] = ()


@_register
@dataclass(frozen=True, slots=True)
class OrderRequest(Message):
    """B->H: the customer chose a product."""

    TYPE: ClassVar[MsgType] = MsgType.ORDER_REQUEST
    _FIELDS: ClassVar[tuple[Field, ...]] = (
        u16("request_id"),
        str8("product"),
        strlist8("options"),
        u8("quantity"),
    )
    request_id: int
    product: str
    options: tuple[str, ...]
    quantity: int


@_register
@dataclass(frozen=True, slots=True)
class PaymentQr(Message):
    """H->B: show this UPI QR. `qr_bitmap` is row-major, MSB first, 1 = dark (see qrbits)."""

    TYPE: ClassVar[MsgType] = MsgType.PAYMENT_QR
    _FIELDS: ClassVar[tuple[Field, ...]] = (
        u16("request_id"),
        str8("order_ref"),
        u32("amount_paise"),
        ascii_code("currency", 3),
        u16("expires_in_s"),
        str16("upi_uri"),
        u8("qr_size"),
        bitmap("qr_bitmap", "qr_size"),
    )
    request_id: int
    order_ref: str
    amount_paise: int
    currency: str
    expires_in_s: int
    upi_uri: str
    qr_size: int
    qr_bitmap: bytes


@_register
@dataclass(frozen=True, slots=True)
class OrderRejected(Message):
    """H->B: the order cannot be taken."""

    TYPE: ClassVar[MsgType] = MsgType.ORDER_REJECTED
    _FIELDS: ClassVar[tuple[Field, ...]] = (
        u16("request_id"),
        enum8("reason", RejectReason),
        str8("message"),
    )
    request_id: int
    reason: RejectReason
    message: str


@_register
@dataclass(frozen=True, slots=True)
class Cancel(Message):
    """Either direction: the order is cancelled. Moves money: MAC required."""

    TYPE: ClassVar[MsgType] = MsgType.CANCEL
    _FIELDS: ClassVar[tuple[Field, ...]] = (str8("order_ref"), enum8("reason", CancelReason))
    order_ref: str
    reason: CancelReason


@_register
@dataclass(frozen=True, slots=True)
class VendApproved(Message):
    """H->B: paid, dispense now. Moves goods: MAC required."""

    TYPE: ClassVar[MsgType] = MsgType.VEND_APPROVED
    _FIELDS: ClassVar[tuple[Field, ...]] = (
        str8("order_ref"),
        fixed_bytes("auth", AUTH_SIZE),
        u8("quantity"),
        u16("deadline_s"),
    )
    order_ref: str
    auth: bytes
    quantity: int
    deadline_s: int


@_register
@dataclass(frozen=True, slots=True)
class VendStarted(Message):
    """B->H: the motors are running for this order."""

    TYPE: ClassVar[MsgType] = MsgType.VEND_STARTED
    _FIELDS: ClassVar[tuple[Field, ...]] = (str8("order_ref"),)
    order_ref: str


@_register
@dataclass(frozen=True, slots=True)
class VendResult(Message):
    """B->H: what actually left the machine. Moves money: MAC required."""

    TYPE: ClassVar[MsgType] = MsgType.VEND_RESULT
    _FIELDS: ClassVar[tuple[Field, ...]] = (
        str8("order_ref"),
        enum8("outcome", VendOutcome),
        u16("reason"),
        u8("dispensed"),
    )
    order_ref: str
    outcome: VendOutcome
    reason: int
    dispensed: int


@_register
@dataclass(frozen=True, slots=True)
class Log(Message):
    """B->H: an event or log line (level 10/20/30/40 like Python logging)."""

    TYPE: ClassVar[MsgType] = MsgType.LOG
    _FIELDS: ClassVar[tuple[Field, ...]] = (u8("level"), u16("code"), str8("text"))
    level: int
    code: int
    text: str


# Frames that move money or goods: never accepted without a verified MAC, keyed link or not.
MONEY_TYPES: Final = frozenset({MsgType.VEND_APPROVED, MsgType.VEND_RESULT, MsgType.CANCEL})
# Frames that are never MAC'd (the key is chosen from HELLO's uid; ACKs carry no payload).
UNSIGNED_TYPES: Final = frozenset({MsgType.HELLO, MsgType.ACK})


def decode_message(msg_type: int, payload: bytes) -> Message:
    """Decode a payload of type `msg_type`; DecodeError(UNKNOWN_TYPE) for unknown codes."""
    decode = _DECODERS.get(msg_type)
    if decode is None:
        raise DecodeError(DecodeReason.UNKNOWN_TYPE, f"no message type 0x{msg_type:02x}")
    return decode(payload)


def message_fields(msg: Message) -> dict[str, Any]:
    """The message's fields as a dict (for logs, vectors and tests)."""
    return {f.name: getattr(msg, f.name) for f in msg._FIELDS}
