"""Hypothesis strategies: one per message class, covering every field's full range."""

from __future__ import annotations

from hypothesis import strategies as st

from protocol import (
    BoardState,
    Cancel,
    CancelReason,
    Hello,
    HelloAck,
    Log,
    Message,
    OrderRejected,
    OrderRequest,
    PaymentQr,
    RejectReason,
    Status,
    StatusRequest,
    VendApproved,
    VendOutcome,
    VendResult,
    VendStarted,
)
from protocol.fields import bitmap_bytes

u8 = st.integers(0, 0xFF)
u16 = st.integers(0, 0xFFFF)
u32 = st.integers(0, 0xFFFFFFFF)
# Short strings keep examples fast; limit in UTF-8 bytes is 255 (checked in test_messages).
text = st.text(max_size=40)
str_list = st.lists(st.text(max_size=12), max_size=6).map(tuple)


@st.composite
def payment_qr(draw: st.DrawFn) -> PaymentQr:
    side = draw(st.integers(0, 41))
    return PaymentQr(
        request_id=draw(u16),
        order_ref=draw(text),
        amount_paise=draw(u32),
        currency=draw(st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZ", min_size=3, max_size=3)),
        expires_in_s=draw(u16),
        upi_uri=draw(st.text(max_size=300)),
        qr_size=side,
        qr_bitmap=draw(st.binary(min_size=bitmap_bytes(side), max_size=bitmap_bytes(side))),
    )


MESSAGE_STRATEGIES: dict[type[Message], st.SearchStrategy[Message]] = {
    Hello: st.builds(
        Hello, st.binary(min_size=12, max_size=12), text, u8, u8, u32, str_list
    ),
    HelloAck: st.builds(HelloAck, u8, u32, st.booleans(), u16, st.booleans()),
    Status: st.builds(
        Status,
        st.sampled_from(BoardState),
        u16,
        u32,
        u32,
        u32,
        text,
        st.sampled_from(VendOutcome),
        u8,
    ),
    StatusRequest: st.just(StatusRequest()),
    OrderRequest: st.builds(OrderRequest, u16, text, str_list, u8),
    PaymentQr: payment_qr(),
    OrderRejected: st.builds(OrderRejected, u16, st.sampled_from(RejectReason), text),
    Cancel: st.builds(Cancel, text, st.sampled_from(CancelReason)),
    VendApproved: st.builds(VendApproved, text, st.binary(min_size=8, max_size=8), u8, u16),
    VendStarted: st.builds(VendStarted, text),
    VendResult: st.builds(VendResult, text, st.sampled_from(VendOutcome), u16, u8),
    Log: st.builds(Log, u8, u16, text),
}

any_message: st.SearchStrategy[Message] = st.one_of(*MESSAGE_STRATEGIES.values())
