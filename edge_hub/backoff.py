"""Exponential backoff with full jitter (retries of a fleet do not synchronise)."""

from __future__ import annotations

import random


class Backoff:
    def __init__(self, initial_s: float, max_s: float, *, rng: random.Random | None = None) -> None:
        if initial_s <= 0 or max_s < initial_s:
            raise ValueError(f"bad backoff: initial {initial_s}, max {max_s}")
        self.initial_s = initial_s
        self.max_s = max_s
        self.attempts = 0
        self._rng = rng or random.Random()

    def next_delay(self) -> float:
        """Delay before the next attempt: uniform in [cap/2, cap], cap doubling up to max_s."""
        cap = min(self.max_s, self.initial_s * (2 ** min(self.attempts, 30)))
        self.attempts += 1
        return float(cap / 2 + self._rng.random() * cap / 2)

    def reset(self) -> None:
        self.attempts = 0
