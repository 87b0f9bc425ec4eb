"""Small parts: backoff, supervision, sd_notify, the clock."""

from __future__ import annotations

import asyncio
import random
import socket
from pathlib import Path

import pytest

from edge_hub.backoff import Backoff
from edge_hub.clock import MAX_SYNCED_SKEW_S, Clock
from edge_hub.sdnotify import Notifier
from edge_hub.supervisor import Supervisor


def test_backoff_doubles_with_jitter_up_to_the_cap() -> None:
    b = Backoff(0.1, 1.0, rng=random.Random(1))
    delays = [b.next_delay() for _ in range(8)]
    caps = [min(1.0, 0.1 * 2**i) for i in range(8)]
    assert all(c / 2 <= d <= c for d, c in zip(delays, caps, strict=True))
    assert len({round(d, 6) for d in delays}) == len(delays)  # jittered, not lock-step
    b.reset()
    assert b.next_delay() <= 0.1
    with pytest.raises(ValueError):
        Backoff(0, 1)


async def test_supervisor_restarts_a_crashed_task_and_reports_it(
        caplog: pytest.LogCaptureFixture) -> None:
    runs: list[int] = []

    async def flaky() -> None:
        runs.append(1)
        if len(runs) < 3:
            raise RuntimeError("boom")
        await asyncio.sleep(3600)

    sup = Supervisor(restart_initial_s=0.01, restart_max_s=0.02)
    sup.start("flaky", flaky)
    try:
        for _ in range(200):
            if len(runs) >= 3:
                break
            await asyncio.sleep(0.01)
        assert len(runs) == 3
        snap = sup.snapshot()["flaky"]
        assert snap["restarts"] == 2 and "boom" in str(snap["last_error"])
        assert sum("crashed; restarting" in r.getMessage() for r in caplog.records) == 2
        assert sup.healthy(60)[0]
        sup.beat("flaky")
        await asyncio.sleep(0.01)
        ok, why = sup.healthy(0.001)
        assert not ok and "flaky" in why  # no progress reported: the watchdog stops pinging
    finally:
        await sup.stop()


async def test_sd_notify_datagrams(tmp_path: Path) -> None:
    path = tmp_path / "notify.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as srv:
        srv.bind(str(path))
        n = Notifier({"NOTIFY_SOCKET": str(path), "WATCHDOG_USEC": "30000000"})
        assert n.enabled and n.watchdog_s == 30.0
        n.notify("READY=1", "STATUS=ok")
        assert srv.recv(100) == b"READY=1\nSTATUS=ok"
    off = Notifier({})
    assert not off.enabled and off.watchdog_s is None
    off.notify("READY=1")  # a no-op outside systemd


def test_clock_learns_the_gateway_offset() -> None:
    import time
    c = Clock("boot-x")
    c.note_server_time(time.time() + 3600)  # our clock is an hour slow (no RTC, no NTP yet)
    assert not c.synced
    st = c.stamp()
    assert st["synced"] is False and st["boot_id"] == "boot-x" and "mono" in st
    assert abs(c.gateway_now() - (time.time() + 3600)) < 1
    c.note_server_time(time.time() + MAX_SYNCED_SKEW_S / 2)
    assert c.synced
