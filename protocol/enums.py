"""Message type codes and the reason/state enums carried in message fields (wire values fixed)."""

from __future__ import annotations

from enum import IntEnum


class MsgType(IntEnum):
    ACK = 0x00
    HELLO = 0x01
    HELLO_ACK = 0x02
    STATUS = 0x03
    STATUS_REQUEST = 0x04
    ORDER_REQUEST = 0x10
    PAYMENT_QR = 0x11
    ORDER_REJECTED = 0x12
    CANCEL = 0x13
    VEND_APPROVED = 0x14
    VEND_STARTED = 0x15
    VEND_RESULT = 0x16
    LOG = 0x20


class RejectReason(IntEnum):
    OFFLINE = 1
    UNKNOWN_PRODUCT = 2
    SOLD_OUT = 3
    BUSY = 4
    OUT_OF_SERVICE = 5
    INVALID = 6
    STORAGE_FULL = 7
    INTERNAL = 8


class CancelReason(IntEnum):
    CUSTOMER = 1
    EXPIRED = 2
    OPERATOR = 3
    BOARD_RESET = 4
    PAYMENT_FAILED = 5
    HUB = 6


class VendOutcome(IntEnum):
    NONE = 0
    SUCCESS = 1
    FAILED = 2
    NOT_STARTED = 3
    IN_PROGRESS = 4


class BoardState(IntEnum):
    IDLE = 0
    ORDERING = 1
    AWAITING_PAYMENT = 2
    VENDING = 3
    OUT_OF_SERVICE = 4
    ERROR = 5


class Role(IntEnum):
    """Which end of the link a `Link` is. The hub sets FROM_HUB on every frame it sends."""

    HUB = 1
    BOARD = 2
