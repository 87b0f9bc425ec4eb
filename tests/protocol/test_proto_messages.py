"""Messages: round trip for every class, strict errors on bad input, golden payload bytes."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from proto_strategies import MESSAGE_STRATEGIES, any_message

from protocol import (
    MESSAGE_CLASSES,
    BoardState,
    Cancel,
    CancelReason,
    DecodeError,
    DecodeReason,
    EncodeError,
    Hello,
    HelloAck,
    Log,
    Message,
    MsgType,
    PaymentQr,
    Status,
    VendApproved,
    VendOutcome,
    decode_message,
    pack_bitmap,
    unpack_bitmap,
)


def test_every_message_type_has_a_class_and_a_strategy() -> None:
    codes = {int(t) for t in MsgType if t is not MsgType.ACK}
    assert set(MESSAGE_CLASSES) == codes
    assert set(MESSAGE_STRATEGIES) == set(MESSAGE_CLASSES.values())


@pytest.mark.parametrize("cls", list(MESSAGE_STRATEGIES), ids=lambda c: c.__name__)
def test_round_trip_every_message(cls: type[Message]) -> None:
    @settings(max_examples=60, deadline=None)
    @given(MESSAGE_STRATEGIES[cls])
    def check(msg: Message) -> None:
        payload = msg.encode()
        back = decode_message(int(msg.TYPE), payload)
        assert back == msg
        assert type(back) is cls
        assert back.encode() == payload

    check()


@settings(max_examples=200, deadline=None)
@given(any_message, st.data())
def test_truncated_payload_is_a_typed_error(msg: Message, data: st.DataObject) -> None:
    payload = msg.encode()
    if not payload:
        return
    cut = data.draw(st.integers(0, len(payload) - 1))
    try:
        back = decode_message(int(msg.TYPE), payload[:cut])
    except DecodeError as exc:
        assert exc.reason in (DecodeReason.TRUNCATED, DecodeReason.BAD_UTF8)
    else:
        # A cut inside trailing variable data can still parse (e.g. a shorter UTF-8 string is
        # impossible: length prefixes say how much follows), so only an empty tail may survive.
        assert back.encode() == payload[:cut]


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(sorted(MESSAGE_CLASSES)), st.binary(max_size=80))
def test_garbage_payload_decodes_or_raises_decode_error(code: int, blob: bytes) -> None:
    try:
        msg = decode_message(code, blob)
    except DecodeError as exc:
        assert isinstance(exc.reason, DecodeReason)
    else:
        assert isinstance(msg, MESSAGE_CLASSES[code])


def test_unknown_type_is_a_decode_error_with_reason() -> None:
    with pytest.raises(DecodeError) as info:
        decode_message(0x7F, b"")
    assert info.value.reason is DecodeReason.UNKNOWN_TYPE


def test_golden_log_payload() -> None:
    assert Log(level=20, code=0x0102, text="ok").encode() == b"\x14\x02\x01\x02ok"


def test_trailing_bytes_are_ignored_for_forward_compatibility() -> None:
    payload = Cancel("A1", CancelReason.CUSTOMER).encode()
    assert decode_message(MsgType.CANCEL, payload + b"\x99\x98") == Cancel(
        "A1", CancelReason.CUSTOMER
    )


def test_bad_enum_value_is_bad_value() -> None:
    payload = Cancel("A1", CancelReason.HUB).encode()[:-1] + b"\x63"
    with pytest.raises(DecodeError) as info:
        decode_message(MsgType.CANCEL, payload)
    assert info.value.reason is DecodeReason.BAD_VALUE
    assert "CancelReason" in str(info.value)


def test_bad_bool_and_bad_utf8() -> None:
    good = HelloAck(1, 2, True, 3, False).encode()
    bad_bool = good[:5] + b"\x02" + good[6:]
    with pytest.raises(DecodeError) as info:
        HelloAck.decode(bad_bool)
    assert info.value.reason is DecodeReason.BAD_VALUE
    with pytest.raises(DecodeError) as info:
        Log.decode(b"\x14\x00\x00\x02\xff\xfe")
    assert info.value.reason is DecodeReason.BAD_UTF8


@pytest.mark.parametrize(
    ("msg", "field"),
    [
        (Log(256, 0, "x"), "level"),
        (Log(10, -1, "x"), "code"),
        (Log(10, 0, "é" * 128), "text"),
        (Hello(b"short", "1", 1, 1, 0, ()), "uid"),
        (Hello(bytes(12), "1", 1, 1, 0, ("x",) * 256), "products"),
        (Cancel("A", 99), "reason"),  # type: ignore[arg-type]
        (VendApproved("A", b"1234567", 1, 10), "auth"),
        (HelloAck(1, 0, 1, 30, True), "time_synced"),  # type: ignore[arg-type]
        (PaymentQr(1, "A", 100, "INRX", 60, "upi://", 0, b""), "currency"),
        (PaymentQr(1, "A", 100, "INR", 60, "upi://", 21, b"\x00"), "qr_bitmap"),
        (PaymentQr(1, "A", 1.5, "INR", 60, "upi://", 0, b""), "amount_paise"),  # type: ignore[arg-type]
        (
            Status(BoardState.IDLE, 0, 0, 0, 0, "", 7, 0),  # type: ignore[arg-type]
            "last_outcome",
        ),
    ],
)
def test_encode_errors_name_the_field(msg: Message, field: str) -> None:
    with pytest.raises(EncodeError, match=field):
        msg.encode()


def test_messages_are_immutable() -> None:
    msg = VendApproved("A1", bytes(8), 1, 30)
    with pytest.raises(AttributeError):
        msg.quantity = 2  # type: ignore[misc]


@settings(max_examples=50, deadline=None)
@given(st.integers(0, 45).flatmap(
    lambda n: st.lists(st.lists(st.booleans(), min_size=n, max_size=n), min_size=n, max_size=n)
))
def test_bitmap_pack_round_trip(rows: list[list[bool]]) -> None:
    data = pack_bitmap(rows)
    assert len(data) == (len(rows) ** 2 + 7) // 8
    assert unpack_bitmap(len(rows), data) == rows


def test_bitmap_bit_order_is_row_major_msb_first() -> None:
    rows = [[True, False, False], [False, False, False], [False, False, True]]
    # modules 0 and 8 dark: byte0 = 1000_0000, byte1 = 1000_0000 (bit 8 = MSB of byte 1)
    assert pack_bitmap(rows) == b"\x80\x80"
    with pytest.raises(EncodeError):
        pack_bitmap([[True, False], [True]])
    with pytest.raises(DecodeError):
        unpack_bitmap(3, b"\x80")


def test_vend_outcome_field_values_are_the_enum() -> None:
    st_msg = Status(BoardState.VENDING, 0, 1, 2, 3, "A", VendOutcome.FAILED, 0)
    back = Status.decode(st_msg.encode())
    assert back.state is BoardState.VENDING
    assert back.last_outcome is VendOutcome.FAILED
