"""Technician authentication: scrypt password hashes, server-side sessions, login rate limits.

Password hashes are `scrypt$n$r$p$salt_hex$hash_hex` (stdlib `hashlib.scrypt`, 16-byte random
salt, 32-byte key). Sessions live in memory only: a hub restart logs technicians out.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import secrets
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass

SCHEME = "scrypt"
DEFAULT_N = 2**14
DEFAULT_R = 8
DEFAULT_P = 1
SALT_BYTES = 16
KEY_BYTES = 32
# Bounds on the cost parameters read from a configured hash, so a bad config cannot exhaust memory.
MAX_N = 2**20
MAX_R = 32
MAX_P = 16

Clock = Callable[[], float]


class PasswordHashError(ValueError):
    """A configured password hash is not a well-formed `scrypt$n$r$p$salt$hash`."""


@dataclass(frozen=True, slots=True)
class ParsedHash:
    n: int
    r: int
    p: int
    salt: bytes
    key: bytes


def _scrypt(password: str, salt: bytes, n: int, r: int, p: int, dklen: int) -> bytes:
    maxmem = 128 * r * (n + p + 2) + 1024 * 1024
    return hashlib.scrypt(
        password.encode("utf-8"), salt=salt, n=n, r=r, p=p, dklen=dklen, maxmem=maxmem
    )


def hash_password(
    password: str, *, n: int = DEFAULT_N, r: int = DEFAULT_R, p: int = DEFAULT_P
) -> str:
    """A salted scrypt hash of `password`, for the hub's `[[status.users]]` config."""
    if not password:
        raise ValueError("password must not be empty")
    _check_params(n, r, p)
    salt = secrets.token_bytes(SALT_BYTES)
    key = _scrypt(password, salt, n, r, p, KEY_BYTES)
    return f"{SCHEME}${n}${r}${p}${salt.hex()}${key.hex()}"


def _check_params(n: int, r: int, p: int) -> None:
    if n < 2 or n & (n - 1) or n > MAX_N:
        raise PasswordHashError(f"scrypt n must be a power of two in 2..{MAX_N}, got {n}")
    if not 1 <= r <= MAX_R:
        raise PasswordHashError(f"scrypt r must be in 1..{MAX_R}, got {r}")
    if not 1 <= p <= MAX_P:
        raise PasswordHashError(f"scrypt p must be in 1..{MAX_P}, got {p}")


def parse_hash(encoded: str) -> ParsedHash:
    """Parse and validate a stored hash; raises PasswordHashError saying what is wrong."""
    parts = encoded.split("$")
    if len(parts) != 6 or parts[0] != SCHEME:
        raise PasswordHashError("password hash must look like scrypt$n$r$p$salt$hash")
    try:
        n, r, p = int(parts[1]), int(parts[2]), int(parts[3])
        salt, key = bytes.fromhex(parts[4]), bytes.fromhex(parts[5])
    except ValueError as exc:
        raise PasswordHashError(f"password hash has a malformed field: {exc}") from None
    _check_params(n, r, p)
    if len(salt) < 8 or len(key) < 16:
        raise PasswordHashError("password hash salt or key is too short")
    return ParsedHash(n, r, p, salt, key)


def verify_password(password: str, encoded: str) -> bool:
    """True when `password` matches the stored hash (constant-time comparison)."""
    parsed = parse_hash(encoded)
    candidate = _scrypt(password, parsed.salt, parsed.n, parsed.r, parsed.p, len(parsed.key))
    return hmac.compare_digest(candidate, parsed.key)


# A hash to verify against when the user name is unknown, so a wrong name costs as long as a
# wrong password and timing does not reveal which technician accounts exist.
_DUMMY_HASH = f"{SCHEME}${DEFAULT_N}${DEFAULT_R}${DEFAULT_P}${'00' * SALT_BYTES}${'00' * KEY_BYTES}"


def dummy_hash() -> str:
    return _DUMMY_HASH


# --- sessions ----------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Session:
    sid: str
    user: str
    csrf_token: str
    created_at: float  # wall clock, for display
    expires_mono: float  # monotonic deadline


class SessionStore:
    """Server-side sessions keyed by a random id; absolute lifetime; bounded in number."""

    def __init__(self, ttl_s: float, max_sessions: int, clock: Clock = time.monotonic) -> None:
        self._ttl_s = ttl_s
        self._max = max_sessions
        self._clock = clock
        self._sessions: OrderedDict[str, Session] = OrderedDict()

    def create(self, user: str) -> Session:
        self._prune()
        while len(self._sessions) >= self._max:
            self._sessions.popitem(last=False)  # the oldest login goes first
        session = Session(
            sid=secrets.token_urlsafe(32),
            user=user,
            csrf_token=secrets.token_urlsafe(32),
            created_at=time.time(),
            expires_mono=self._clock() + self._ttl_s,
        )
        self._sessions[session.sid] = session
        return session

    def get(self, sid: str | None) -> Session | None:
        if not sid:
            return None
        session = self._sessions.get(sid)
        if session is None:
            return None
        if self._clock() >= session.expires_mono:
            del self._sessions[sid]
            return None
        return session

    def remaining_s(self, session: Session) -> float:
        return max(0.0, session.expires_mono - self._clock())

    def delete(self, sid: str) -> None:
        self._sessions.pop(sid, None)

    def __len__(self) -> int:
        self._prune()
        return len(self._sessions)

    def _prune(self) -> None:
        now = self._clock()
        for sid in [s for s, v in self._sessions.items() if now >= v.expires_mono]:
            del self._sessions[sid]


def csrf_matches(session: Session, token: str | None) -> bool:
    return token is not None and hmac.compare_digest(
        session.csrf_token.encode(), token.encode("utf-8", "replace")
    )


# --- login rate limit --------------------------------------------------------------------------
class LoginLimiter:
    """Sliding window of failed logins per key ("addr:<ip>", "user:<name>").

    A key with `max_failures` failures inside `window_s` is refused until the oldest of them
    leaves the window. Bounded: at most `max_keys` keys are remembered (oldest dropped).
    """

    def __init__(
        self,
        max_failures: int,
        window_s: float,
        max_keys: int = 4096,
        clock: Clock = time.monotonic,
    ) -> None:
        self._max = max_failures
        self._window = window_s
        self._max_keys = max_keys
        self._clock = clock
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()

    def retry_after(self, *keys: str) -> int:
        """Seconds until every key may try again; 0 when all of them may try now."""
        now = self._clock()
        wait = 0.0
        for key in keys:
            times = self._recent(key, now)
            if times is not None and len(times) >= self._max:
                wait = max(wait, times[-self._max] + self._window - now)
        return math.ceil(wait) if wait > 0 else 0

    def failed(self, *keys: str) -> None:
        now = self._clock()
        for key in keys:
            times = self._recent(key, now)
            if times is None:
                times = deque(maxlen=self._max)
                self._failures[key] = times
                while len(self._failures) > self._max_keys:
                    self._failures.popitem(last=False)
            else:
                self._failures.move_to_end(key)
            times.append(now)

    def succeeded(self, *keys: str) -> None:
        for key in keys:
            self._failures.pop(key, None)

    def _recent(self, key: str, now: float) -> deque[float] | None:
        times = self._failures.get(key)
        if times is None:
            return None
        while times and times[0] + self._window <= now:
            times.popleft()
        if not times:
            del self._failures[key]
            return None
        return times


__all__ = [
    "LoginLimiter",
    "PasswordHashError",
    "Session",
    "SessionStore",
    "csrf_matches",
    "dummy_hash",
    "hash_password",
    "parse_hash",
    "verify_password",
]
