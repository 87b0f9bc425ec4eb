"""Time on a hub that may boot with a wrong clock.

- Deadlines use ``time.monotonic()`` (CLOCK_MONOTONIC: the same across process restarts within one
  boot, so a restarted hub can keep a deadline it stored with the boot id).
- Anything the gateway checks uses the gateway's time: the offset is learned from the token
  answer's ``server_time``.
- Every event is stamped with (wall, synced, boot_id, mono) so it can be corrected later.
"""

from __future__ import annotations

import logging
import time
import uuid
from pathlib import Path
from typing import Final

from protocol.hub_api import Stamp

log = logging.getLogger(__name__)

BOOT_ID_PATH: Final = Path("/proc/sys/kernel/random/boot_id")
SYNC_FLAG_PATH: Final = Path("/run/systemd/timesync/synchronized")
# Beyond this difference from the gateway's clock, ours is treated as not synced.
MAX_SYNCED_SKEW_S: Final = 5.0


def read_boot_id() -> str:
    try:
        return BOOT_ID_PATH.read_text().strip()
    except OSError:
        # No /proc (not Linux): a per-process id is the safe choice, it never claims
        # a monotonic deadline survived a reboot.
        return f"proc-{uuid.uuid4()}"


class Clock:
    def __init__(self, boot_id: str | None = None) -> None:
        self.boot_id = boot_id or read_boot_id()
        self.offset_s: float | None = None  # gateway time - our wall time
        self._local_sync = SYNC_FLAG_PATH.exists()

    @staticmethod
    def mono() -> float:
        return time.monotonic()

    @staticmethod
    def wall() -> float:
        return time.time()

    @property
    def synced(self) -> bool:
        if self.offset_s is not None:
            return abs(self.offset_s) <= MAX_SYNCED_SKEW_S
        return self._local_sync

    def note_server_time(self, server_time: float, rtt_s: float = 0.0) -> None:
        """Learn the gateway's clock from an answer that carried it (the token answer)."""
        offset = server_time + rtt_s / 2 - time.time()
        was = self.offset_s
        self.offset_s = offset
        if abs(offset) > MAX_SYNCED_SKEW_S and (was is None or abs(was) <= MAX_SYNCED_SKEW_S):
            log.warning("hub clock is %.1f s off the gateway's; events are stamped unsynced",
                        offset)

    def gateway_now(self) -> float:
        """Best estimate of the gateway's clock (falls back to ours)."""
        return time.time() + (self.offset_s or 0.0)

    def stamp(self) -> Stamp:
        return {"wall": time.time(), "synced": self.synced, "boot_id": self.boot_id,
                "mono": time.monotonic()}
