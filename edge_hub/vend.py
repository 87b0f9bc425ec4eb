"""The vend session state machine: one row per order attempt, one transition table.

Nobody assigns a session's state except ``Store.transition``, which checks this table, writes the
audit row and the outbox event in the same transaction, and uses ``UPDATE ... WHERE state = ?`` so
a race loses cleanly.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Final

from protocol import CancelReason
from protocol.hub_api import CancelReasonName, EventType, VendOutcomeName


class VendState(StrEnum):
    ORDERING = "ordering"  # order + QR requested from the gateway (idempotency key stored)
    AWAITING_PAYMENT = "awaiting_payment"  # QR on the board's display
    APPROVED = "approved"  # paid; VEND_APPROVED sent (committed first)
    VENDING = "vending"  # the board said VEND_STARTED
    CHECKING = "checking"  # outcome being asked from the board (restart, reboot, timeout)
    DONE = "done"  # vend succeeded
    FAILED = "failed"  # the board said the vend failed (refund follows)
    NOT_VENDED = "not_vended"  # paid but never approved / never started: refund
    UNKNOWN = "unknown"  # nobody can know: reported as unknown, never guessed
    CANCELLED = "cancelled"  # customer, gateway or board reset closed it before payment
    EXPIRED = "expired"  # the QR expired unpaid
    REJECTED = "rejected"  # no order was made (offline, gateway refused, out of service)


class InvalidTransition(Exception):
    def __init__(self, session_id: int, current: str, target: str) -> None:
        super().__init__(f"session {session_id}: {current} -> {target} is not allowed")
        self.session_id = session_id
        self.current = current
        self.target = target


S = VendState
TRANSITIONS: Final[dict[VendState, frozenset[VendState]]] = {
    S.ORDERING: frozenset({S.AWAITING_PAYMENT, S.REJECTED, S.CANCELLED}),
    S.AWAITING_PAYMENT: frozenset({S.APPROVED, S.NOT_VENDED, S.CANCELLED, S.EXPIRED}),
    S.APPROVED: frozenset({S.VENDING, S.DONE, S.FAILED, S.NOT_VENDED, S.CHECKING}),
    S.VENDING: frozenset({S.DONE, S.FAILED, S.CHECKING}),
    S.CHECKING: frozenset({S.VENDING, S.DONE, S.FAILED, S.NOT_VENDED, S.UNKNOWN}),
    # A payment that lands after the order closed: reported not vended so the gateway refunds.
    S.CANCELLED: frozenset({S.NOT_VENDED}),
    S.EXPIRED: frozenset({S.NOT_VENDED}),
    S.DONE: frozenset(),
    S.FAILED: frozenset(),
    S.NOT_VENDED: frozenset(),
    S.UNKNOWN: frozenset(),
    S.REJECTED: frozenset(),
}

# What the gateway is told when a session enters a state (through the outbox).
EVENT_ON_ENTRY: Final[dict[VendState, EventType]] = {
    S.VENDING: EventType.VEND_STARTED,
    S.DONE: EventType.VEND_RESULT,
    S.FAILED: EventType.VEND_RESULT,
    S.NOT_VENDED: EventType.VEND_RESULT,
    S.UNKNOWN: EventType.VEND_RESULT,
    S.CANCELLED: EventType.ORDER_CANCELLED,
    S.EXPIRED: EventType.ORDER_CANCELLED,
}

OUTCOME_OF: Final[dict[VendState, VendOutcomeName]] = {
    S.DONE: VendOutcomeName.SUCCESS,
    S.FAILED: VendOutcomeName.FAILED,
    S.NOT_VENDED: VendOutcomeName.NOT_VENDED,
    S.UNKNOWN: VendOutcomeName.UNKNOWN,
}

ACTIVE: Final = frozenset({S.ORDERING, S.AWAITING_PAYMENT, S.APPROVED, S.VENDING, S.CHECKING})
# Paid and possibly in the machine: the outcome must be learned from the board.
IN_VEND: Final = frozenset({S.APPROVED, S.VENDING, S.CHECKING})
# The serial CANCEL reason codes and their names in the gateway API.
CANCEL_NAMES: Final[dict[CancelReason, CancelReasonName]] = {
    CancelReason.CUSTOMER: CancelReasonName.CUSTOMER,
    CancelReason.EXPIRED: CancelReasonName.EXPIRED,
    CancelReason.OPERATOR: CancelReasonName.OPERATOR,
    CancelReason.BOARD_RESET: CancelReasonName.BOARD_RESET,
    CancelReason.PAYMENT_FAILED: CancelReasonName.PAYMENT_FAILED,
    CancelReason.HUB: CancelReasonName.HUB,
}
CANCEL_CODES: Final[dict[str, CancelReason]] = {v.value: k for k, v in CANCEL_NAMES.items()}
NEEDS_ATTENTION: Final = frozenset({S.UNKNOWN, S.FAILED})


def check_transition(session_id: int, current: VendState, target: VendState) -> None:
    if target not in TRANSITIONS[current]:
        raise InvalidTransition(session_id, current, target)
