"""The hub as a real process (`edge-hub run`): killed with SIGKILL mid-vend and restarted; and its
peak memory with 16 boards."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from edge_hub.simboard import PurchaseState, SimBoard, VendPlan
from tests.hub.conftest import ENV, FAST_LIMITS, HUB_ID, Site, eventually

ROOT = Path(__file__).parents[2]


def write_config(site: Site) -> Path:
    limits = "\n".join(f"{k} = {v!r}" for k, v in FAST_LIMITS.items())
    text = f"""
[hub]
id = "{HUB_ID}"
data_dir = "{site.tmp / 'hub'}"
[gateway]
url = "{site.gateway_url}"
backoff_initial_s = 0.05
backoff_max_s = 0.3
[limits]
{limits}
[status]
enabled = false
[log]
level = "WARNING"
[[boards]]
port = "{site.tmp / 'tty-*'}"
"""
    path = site.tmp / "hub.toml"
    path.write_text(text)
    return path


@asynccontextmanager
async def hub_process(site: Site) -> AsyncIterator[asyncio.subprocess.Process]:
    cfg = write_config(site)
    env = {**os.environ, **ENV}
    with (site.tmp / "hub.log").open("ab") as log:  # a file: a full pipe would block the hub
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "edge_hub.cli", "run", "--config", str(cfg), cwd=ROOT,
            env=env, stdout=asyncio.subprocess.DEVNULL, stderr=log)
    try:
        yield proc
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(proc.wait(), 10)
            except TimeoutError:
                proc.kill()
                await proc.wait()


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmHWM")


async def test_hub_sigkilled_mid_vend_resumes_and_reports(site: Site) -> None:
    board = await site.add_board(1)
    async with hub_process(site) as proc:
        await board.wait_connected(15)
        p = await board.request("water", plan=VendPlan.ok(item_time_s=1.0), timeout_s=10)
        assert p.state is PurchaseState.SHOWING_QR
        await site.pay(await site.order(p.order_ref))
        await eventually(lambda: p.state is PurchaseState.VENDING, 10, "vending")
        proc.kill()  # SIGKILL: no cleanup, no flush, nothing
        await proc.wait()
    await board.wait_closed(p, 10)  # the machine finishes without the hub
    assert p.state is PurchaseState.VENDED
    async with hub_process(site):
        await eventually(lambda: _fulfilled(site, p.order_ref), 20, "fulfilled after restart")
    assert board.dispensed(p.order_ref) == 1


async def _fulfilled(site: Site, order_id: str) -> bool:
    return (await site.order(order_id))["state"] == "fulfilled"


async def test_hub_memory_with_16_boards(site: Site) -> None:
    boards: list[SimBoard] = [await site.add_board(n) for n in range(1, 17)]
    async with hub_process(site) as proc:
        await asyncio.gather(*(b.wait_connected(20) for b in boards))
        purchases = await asyncio.gather(*(b.request("water", timeout_s=10) for b in boards))
        assert all(p.state is PurchaseState.SHOWING_QR for p in purchases)
        for p in purchases:
            await site.pay(await site.order(p.order_ref))
        await asyncio.gather(*(b.wait_closed(p, 20) for b, p in zip(boards, purchases,
                                                                       strict=True)))
        assert all(p.state is PurchaseState.VENDED for p in purchases)
        rss = peak_rss_mb(proc.pid)
        print(f"hub peak RSS with 16 boards: {rss:.1f} MB")
        assert rss <= 80.0
        proc.send_signal(signal.SIGTERM)  # a clean stop: exit 0, nothing left behind
        assert await asyncio.wait_for(proc.wait(), 10) == 0
    log = (site.tmp / "hub.log").read_text()
    assert "Traceback" not in log
