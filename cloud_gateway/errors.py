"""The gateway's one error hierarchy.

Services raise these; exactly one middleware (`cloud_gateway.middleware.error_middleware`) turns
them into the one JSON error shape of `protocol.hub_api.ErrorBody`. Any module may raise them.
Messages never contain secrets.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence


class GatewayError(Exception):
    """Base: carries the HTTP status, a machine-readable code and details."""

    status = 500
    code = "internal_error"

    def __init__(self, message: str, *, details: Mapping[str, object] | None = None,
                 headers: Mapping[str, str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details: dict[str, object] = dict(details or {})
        self.headers: dict[str, str] = dict(headers or {})


class ValidationError(GatewayError):
    status = 400
    code = "validation_error"

    def __init__(self, missing: Sequence[str] = (), invalid: Mapping[str, str] | None = None,
                 message: str | None = None) -> None:
        self.missing = list(missing)
        self.invalid = dict(invalid or {})
        parts = []
        if self.missing:
            parts.append("missing: " + ", ".join(self.missing))
        if self.invalid:
            parts.append("invalid: " + "; ".join(f"{k}: {v}" for k, v in self.invalid.items()))
        super().__init__(message or ("invalid request (" + "; ".join(parts) + ")"),
                         details={"missing": self.missing, "invalid": self.invalid})


class Unauthorized(GatewayError):
    status = 401
    code = "unauthorized"

    def __init__(self, message: str) -> None:
        super().__init__(message, headers={"WWW-Authenticate": 'Bearer realm="upi-vend"'})


class Forbidden(GatewayError):
    status = 403
    code = "forbidden"


class NotFound(GatewayError):
    status = 404
    code = "not_found"


class InvalidTransition(GatewayError):
    """An order state change the transition table does not allow (or a race that was lost)."""

    status = 409
    code = "invalid_state"

    def __init__(self, order_id: str, current: str, wanted: str) -> None:
        self.order_id = order_id
        self.current = current
        self.wanted = wanted
        super().__init__(f"order {order_id} is {current}; cannot become {wanted}",
                         details={"order_id": order_id, "state": current, "wanted": wanted})


class Conflict(GatewayError):
    status = 409
    code = "conflict"


class RateLimited(GatewayError):
    status = 429
    code = "rate_limited"

    def __init__(self, retry_after_s: int) -> None:
        super().__init__(f"too many requests; retry after {retry_after_s} s",
                         details={"retry_after_s": retry_after_s},
                         headers={"Retry-After": str(retry_after_s)})


class UpstreamError(GatewayError):
    """Razorpay refused, failed or could not be reached."""

    status = 502
    code = "payment_provider_error"

    def __init__(self, message: str, *, kind: str, status: int = 502) -> None:
        self.status = status
        self.kind = kind
        headers = {"Retry-After": "2"} if status == 503 else None
        super().__init__(message, details={"kind": kind}, headers=headers)


class Unavailable(GatewayError):
    status = 503
    code = "unavailable"


__all__ = [
    "Conflict",
    "Forbidden",
    "GatewayError",
    "InvalidTransition",
    "NotFound",
    "RateLimited",
    "Unauthorized",
    "Unavailable",
    "UpstreamError",
    "ValidationError",
]
