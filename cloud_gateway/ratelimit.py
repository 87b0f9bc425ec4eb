"""Token-bucket rate limits keyed by hub id or client address.

The middleware calls `RateLimiter.check(key)`, which raises `RateLimited` (429 with
Retry-After) when the bucket is empty. Buckets idle long enough to be full are forgotten, so the
table stays bounded by the number of recently active keys.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

from .errors import RateLimited


class RateLimiter:
    def __init__(self, rate_per_s: float, burst: int,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if rate_per_s <= 0 or burst < 1:
            raise ValueError("rate_per_s must be > 0 and burst >= 1")
        self._rate = rate_per_s
        self._burst = float(burst)
        self._clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}  # key -> (tokens, at)
        self._last_sweep = clock()

    def check(self, key: str) -> None:
        now = self._clock()
        tokens, at = self._buckets.get(key, (self._burst, now))
        tokens = min(self._burst, tokens + (now - at) * self._rate)
        if tokens < 1.0:
            self._buckets[key] = (tokens, now)
            raise RateLimited(max(1, math.ceil((1.0 - tokens) / self._rate)))
        self._buckets[key] = (tokens - 1.0, now)
        if now - self._last_sweep > self._burst / self._rate:
            self._sweep(now)

    def _sweep(self, now: float) -> None:
        full_after = self._burst / self._rate
        self._buckets = {k: v for k, v in self._buckets.items() if now - v[1] < full_after}
        self._last_sweep = now


__all__ = ["RateLimiter"]
