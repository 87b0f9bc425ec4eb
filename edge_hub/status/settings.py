"""Settings of the status page, given by the hub from its config."""

from __future__ import annotations

from dataclasses import dataclass

from .auth import parse_hash


@dataclass(frozen=True, slots=True)
class TechUser:
    """A technician account: a name and a `scrypt$...` hash from `edge-hub hash-password`."""

    name: str
    password_hash: str

    def __repr__(self) -> str:  # never show the hash in logs or tracebacks
        return f"TechUser(name={self.name!r})"


@dataclass(frozen=True, slots=True)
class StatusSettings:
    users: tuple[TechUser, ...]
    cookie_secure: bool = False  # set True when the page is served over HTTPS
    session_ttl_s: int = 8 * 3600  # absolute session lifetime
    max_sessions: int = 64  # the oldest session is dropped beyond this
    login_max_failures: int = 5  # failed logins per address and per user name ...
    login_window_s: int = 300  # ... inside this sliding window, then "try again in N s"
    sse_ping_s: float = 15.0  # keep-alive event on the live stream; the page expects one
    orders_limit_max: int = 500  # the largest `limit` /api/orders accepts
    logs_limit_max: int = 1000  # the largest `limit` /api/logs accepts
    cookie_name: str = "hub_status_session"

    def __post_init__(self) -> None:
        names = [u.name for u in self.users]
        if len(set(names)) != len(names):
            raise ValueError("status users must have distinct names")
        for user in self.users:
            if not user.name or len(user.name) > 64:
                raise ValueError("status user names must be 1..64 characters")
            try:
                parse_hash(user.password_hash)
            except ValueError as exc:
                raise ValueError(f"status user {user.name!r}: {exc}") from None
        for field in ("session_ttl_s", "max_sessions", "login_max_failures", "login_window_s"):
            if getattr(self, field) <= 0:
                raise ValueError(f"status setting {field} must be positive")
        if self.sse_ping_s <= 0:
            raise ValueError("status setting sse_ping_s must be positive")

    def user(self, name: str) -> TechUser | None:
        for user in self.users:
            if user.name == name:
                return user
        return None


__all__ = ["StatusSettings", "TechUser"]
