"""Identifiers: order ids and request ids, unique without a system call per id.

`new_order_id()` and `new_request_id()` are called by the order service and the request
middleware. Both draw from a generator seeded once from the OS (`secrets`), so making an id does
not release the GIL (os.urandom is a syscall, and under load every GIL release on the event loop
costs a wait behind the Razorpay SDK threads). Order ids are not secrets: a hub reaches only its
own orders (auth), and unguessability is a courtesy, not a control.
"""

from __future__ import annotations

import random
import secrets

_rng = random.Random(secrets.randbits(128))


def new_order_id() -> str:
    return f"ord_{_rng.getrandbits(64):016x}"


def new_request_id() -> str:
    return f"{_rng.getrandbits(64):016x}"


__all__ = ["new_order_id", "new_request_id"]
