"""The order state machine: one transition table, nothing else decides.

`cloud_gateway.orders.service.OrderService` is the only caller of `check_transition`, and the
only code that writes `orders.state`. Everyone else asks the service (`OrderService.transition`).

    created -> payment_pending -> paid -> dispensing -> fulfilled
    created | payment_pending -> cancelled | expired
    paid | dispensing -> failed -> refund_pending -> refunded    (vend failed / not vended)
    paid | dispensing -> flagged    (outcome unknown past the deadline; an operator decides)
    paid -> fulfilled               (a "success" result whose vend-started event was lost)
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from protocol.hub_api import OrderState

from ..errors import InvalidTransition

S = OrderState

TRANSITIONS: Final[Mapping[OrderState, frozenset[OrderState]]] = {
    S.CREATED: frozenset({S.PAYMENT_PENDING, S.CANCELLED, S.EXPIRED}),
    S.PAYMENT_PENDING: frozenset({S.PAID, S.CANCELLED, S.EXPIRED}),
    # paid -> fulfilled: a vend result "success" whose vend-started event was lost or reordered
    S.PAID: frozenset({S.DISPENSING, S.FULFILLED, S.FAILED, S.FLAGGED}),
    S.DISPENSING: frozenset({S.FULFILLED, S.FAILED, S.FLAGGED}),
    S.FAILED: frozenset({S.REFUND_PENDING}),
    S.REFUND_PENDING: frozenset({S.REFUNDED}),
    # an operator resolves a flagged order: goods left (fulfilled) or give the money back
    S.FLAGGED: frozenset({S.FULFILLED, S.REFUND_PENDING}),
    S.FULFILLED: frozenset(),
    S.CANCELLED: frozenset(),
    S.EXPIRED: frozenset(),
    S.REFUNDED: frozenset(),
}

# Which timestamp column a state stamps when an order enters it.
STAMPS: Final[Mapping[OrderState, str]] = {
    S.PAID: "paid_at",
    S.DISPENSING: "dispensed_at",
    S.FULFILLED: "fulfilled_at",
}


def check_transition(order_id: str, current: str, wanted: OrderState) -> OrderState:
    """Return the current state as `OrderState`, or raise `InvalidTransition`."""
    try:
        state = OrderState(current)
    except ValueError:
        raise InvalidTransition(order_id, current, wanted) from None
    if wanted not in TRANSITIONS[state]:
        raise InvalidTransition(order_id, state, wanted)
    return state


__all__ = ["STAMPS", "TRANSITIONS", "check_transition"]
