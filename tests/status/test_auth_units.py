"""Password hashes, sessions and the login limiter, without HTTP."""

from __future__ import annotations

import pytest

from edge_hub.status import StatusSettings, TechUser, hash_password, verify_password
from edge_hub.status.auth import (
    LoginLimiter,
    PasswordHashError,
    SessionStore,
    csrf_matches,
    parse_hash,
)

from .conftest import TEST_N


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_hash_round_trip_and_format() -> None:
    encoded = hash_password("s3cret pass", n=TEST_N)
    scheme, n, r, p, salt, key = encoded.split("$")
    assert (scheme, int(n), int(r), int(p)) == ("scrypt", TEST_N, 8, 1)
    assert len(bytes.fromhex(salt)) == 16 and len(bytes.fromhex(key)) == 32
    assert "s3cret" not in encoded
    assert verify_password("s3cret pass", encoded)
    assert not verify_password("s3cret pasS", encoded)
    assert not verify_password("", encoded)


def test_default_cost_is_scrypt_2_14() -> None:
    assert parse_hash(hash_password("x")).n == 2**14


def test_same_password_gets_a_different_salt() -> None:
    a, b = hash_password("same", n=TEST_N), hash_password("same", n=TEST_N)
    assert a != b
    assert verify_password("same", a) and verify_password("same", b)


@pytest.mark.parametrize(
    ("encoded", "why"),
    [
        ("plaintext", "must look like"),
        ("bcrypt$1$2$3$aa$bb", "must look like"),
        ("scrypt$16384$8$1$zz$" + "00" * 32, "malformed"),
        ("scrypt$1000$8$1$" + "00" * 16 + "$" + "00" * 32, "power of two"),
        ("scrypt$" + str(2**24) + "$8$1$" + "00" * 16 + "$" + "00" * 32, "power of two"),
        ("scrypt$1024$99$1$" + "00" * 16 + "$" + "00" * 32, "r must be"),
        ("scrypt$1024$8$1$00$" + "00" * 32, "too short"),
    ],
)
def test_bad_hashes_are_refused_with_a_reason(encoded: str, why: str) -> None:
    with pytest.raises(PasswordHashError, match=why):
        verify_password("x", encoded)


def test_empty_password_cannot_be_hashed() -> None:
    with pytest.raises(ValueError, match="empty"):
        hash_password("")


def test_settings_reject_a_bad_hash_naming_the_user() -> None:
    with pytest.raises(ValueError, match=r"'tech'.*scrypt"):
        StatusSettings(users=(TechUser("tech", "hunter2"),))


def test_settings_reject_duplicate_users() -> None:
    h = hash_password("x", n=TEST_N)
    with pytest.raises(ValueError, match="distinct"):
        StatusSettings(users=(TechUser("tech", h), TechUser("tech", h)))


def test_tech_user_repr_hides_the_hash() -> None:
    h = hash_password("x", n=TEST_N)
    assert h not in repr(TechUser("tech", h))
    assert h not in repr(StatusSettings(users=(TechUser("tech", h),)))


def test_sessions_expire_and_are_bounded() -> None:
    clock = Clock()
    store = SessionStore(ttl_s=10, max_sessions=2, clock=clock)
    a = store.create("tech")
    assert store.get(a.sid) == a
    assert store.get("not-a-session") is None and store.get(None) is None
    clock.now += 9.9
    assert store.get(a.sid) == a
    clock.now += 0.1
    assert store.get(a.sid) is None
    b, c, d = store.create("x"), store.create("y"), store.create("z")
    assert store.get(b.sid) is None  # the oldest was dropped for the third
    assert store.get(c.sid) == c and store.get(d.sid) == d
    assert len(store) == 2
    store.delete(c.sid)
    assert store.get(c.sid) is None


def test_session_ids_and_csrf_tokens_are_random_and_distinct() -> None:
    store = SessionStore(ttl_s=10, max_sessions=100)
    sessions = [store.create("tech") for _ in range(20)]
    values = {s.sid for s in sessions} | {s.csrf_token for s in sessions}
    assert len(values) == 40
    assert all(len(s.sid) >= 40 for s in sessions)


def test_csrf_matches_only_the_exact_token() -> None:
    s = SessionStore(ttl_s=10, max_sessions=2).create("tech")
    assert csrf_matches(s, s.csrf_token)
    assert not csrf_matches(s, None)
    assert not csrf_matches(s, "")
    assert not csrf_matches(s, s.csrf_token[:-1])
    assert not csrf_matches(s, s.csrf_token + "x")
    assert not csrf_matches(s, "é" * 10)


def test_limiter_sliding_window_per_key() -> None:
    clock = Clock()
    limiter = LoginLimiter(max_failures=3, window_s=60, clock=clock)
    for _ in range(2):
        limiter.failed("addr:1", "user:tech")
        clock.now += 10
    assert limiter.retry_after("addr:1", "user:tech") == 0
    limiter.failed("addr:1", "user:tech")  # third failure at t=20; the first was at t=0
    assert limiter.retry_after("addr:1") == 40
    # the user is locked from any address, another user from this address too
    assert limiter.retry_after("addr:2", "user:tech") == 40
    assert limiter.retry_after("addr:1", "user:other") == 40
    assert limiter.retry_after("addr:2", "user:other") == 0
    clock.now += 40  # the first failure leaves the window
    assert limiter.retry_after("addr:1", "user:tech") == 0
    limiter.failed("addr:1")
    assert limiter.retry_after("addr:1") == 10  # the second failure (t=10) is now the oldest


def test_limiter_success_clears_and_memory_is_bounded() -> None:
    clock = Clock()
    limiter = LoginLimiter(max_failures=2, window_s=60, max_keys=3, clock=clock)
    limiter.failed("a")
    limiter.failed("a")
    assert limiter.retry_after("a") == 60
    limiter.succeeded("a")
    assert limiter.retry_after("a") == 0
    for key in "bcdef":
        limiter.failed(key)
        limiter.failed(key)
    assert limiter.retry_after("b") == 0  # forgotten: only the newest 3 keys are kept
    assert limiter.retry_after("f") == 60
