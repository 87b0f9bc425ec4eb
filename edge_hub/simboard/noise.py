"""Line noise: junk bytes and bit flips injected into a byte stream at given per-byte rates.

A real RS-485 or long UART run picks up noise; the protocol must survive it (docs/protocol.md,
framing and CRC). ``LineNoise`` is deterministic for a given seed, so a failing test can be rerun.
Rates are probabilities per byte: ``flip_rate=0.001`` flips one bit in about one byte of a
thousand; ``junk_rate=0.001`` inserts a random byte after about one byte of a thousand.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass


class NoiseError(ValueError):
    """A noise rate outside [0, 1)."""


@dataclass
class NoiseCounters:
    junk_bytes: int = 0
    bits_flipped: int = 0


class LineNoise:
    """Corrupts byte strings; one instance per direction so the counters mean something."""

    def __init__(self, junk_rate: float = 0.0, flip_rate: float = 0.0, seed: int | None = None):
        self._rng = random.Random(seed)
        self.counters = NoiseCounters()
        self.junk_rate = 0.0
        self.flip_rate = 0.0
        self.set_rates(junk_rate, flip_rate)

    def set_rates(self, junk_rate: float, flip_rate: float) -> None:
        for name, rate in (("junk_rate", junk_rate), ("flip_rate", flip_rate)):
            if not 0.0 <= rate < 1.0:
                raise NoiseError(f"{name} must be in [0, 1), got {rate!r}")
        self.junk_rate = junk_rate
        self.flip_rate = flip_rate

    @property
    def active(self) -> bool:
        return self.junk_rate > 0.0 or self.flip_rate > 0.0

    def apply(self, data: bytes) -> bytes:
        """Return ``data`` with noise; the input itself is never modified."""
        if not data or not self.active:
            return data
        buf = bytearray(data)
        if self.flip_rate > 0.0:
            for i in self._positions(len(buf), self.flip_rate):
                buf[i] ^= 1 << self._rng.randrange(8)
                self.counters.bits_flipped += 1
        if self.junk_rate > 0.0:
            # Insert from the end so earlier positions stay valid.
            for i in reversed(list(self._positions(len(buf), self.junk_rate))):
                buf.insert(i + 1, self._rng.randrange(256))
                self.counters.junk_bytes += 1
        return bytes(buf)

    def _positions(self, n: int, rate: float) -> list[int]:
        """Indices in [0, n) each chosen with probability ``rate`` (geometric skips: O(hits))."""
        out: list[int] = []
        log_q = math.log1p(-rate)
        i = -1
        while True:
            u = self._rng.random()
            i += 1 + int(math.log(1.0 - u) / log_q)
            if i >= n:
                return out
            out.append(i)
