"""The command line: ports printed, a line per purchase, clean stop on SIGTERM."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

from edge_hub.simboard.cli import run
from protocol import TEST_MASTER_KEY

from .minihub import MiniHub

REPO = str(Path(__file__).resolve().parents[2])


async def _spawn(*args: str) -> asyncio.subprocess.Process:
    env = {**os.environ, "PYTHONPATH": REPO}
    env.pop("EDGE_HUB_MASTER_KEY", None)
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "edge_hub.simboard", *args, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)


async def _ports(proc: asyncio.subprocess.Process, count: int) -> list[str]:
    assert proc.stdout is not None
    ports = []
    for _ in range(count):
        line = (await asyncio.wait_for(proc.stdout.readline(), 10)).decode()
        fields = dict(f.split("=", 1) for f in line.split()[1:])
        ports.append(fields["port"])
    return ports


async def test_two_boards_play_a_script_and_exit(tmp_path: Path) -> None:
    proc = await _spawn("--count", "2", "--dir", str(tmp_path), "--script",
                        "buy:cappuccino+extra_shot*2,wait_paid,vend_ok")
    hubs: list[MiniHub] = []
    try:
        ports = await _ports(proc, 2)
        assert ports == [str(tmp_path / "board-1"), str(tmp_path / "board-2")]
        for port in ports:
            hub = MiniHub(port, TEST_MASTER_KEY, auto_approve_s=0.0)
            hub.open()
            hubs.append(hub)
        out, err = await asyncio.wait_for(proc.communicate(), 20)
    finally:
        for hub in hubs:
            hub.close()
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    lines = out.decode().splitlines()
    vended = [x for x in lines if "cappuccino+extra_shot x2: vended" in x]
    assert len(vended) == 2, (lines, err.decode())
    assert all("dispensed 2/2" in x for x in vended)
    assert lines[-1] == "done: 2 purchases, 0 not as scripted"
    assert proc.returncode == 0
    assert os.listdir(tmp_path) == []  # the stable names went away with the boards


async def test_idle_boards_stop_cleanly_on_sigterm(tmp_path: Path) -> None:
    proc = await _spawn("--count", "3", "--dir", str(tmp_path))
    try:
        ports = await _ports(proc, 3)
        assert all(os.readlink(p).startswith("/dev/pts/") for p in ports)
        proc.send_signal(signal.SIGTERM)
        out, _ = await asyncio.wait_for(proc.communicate(), 10)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert proc.returncode == 0
    assert out.decode().splitlines()[-1] == "done: 0 purchases, 0 not as scripted"


def test_bad_script_is_a_usage_error(capsys) -> None:
    assert run(["--script", "buy:espresso,vend_partial:5"]) == 2
    err = capsys.readouterr().err
    assert "step 2 'vend_partial:5'" in err and "quantity" in err
