"""``make demo`` (bench/demo.py): purchases complete, and Ctrl-C leaves no process behind."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sys
from pathlib import Path

import pytest

from bench.sitekit.site import SITE_ENV

REPO = Path(__file__).resolve().parents[2]


def _processes_of(site: Path) -> list[str]:
    """Processes whose environment names this site (bench/sitekit/site.py sets SITE_ENV)."""
    marker = f"{SITE_ENV}={site.resolve()}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            environ = (entry / "environ").read_bytes().split(b"\0")
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if marker in environ:
            found.append(f"{entry.name}: {cmdline}")
    return found


@pytest.mark.timeout(120)
async def test_demo_buys_and_ctrl_c_stops_every_process(tmp_path: Path) -> None:
    data = tmp_path / "demo-data"
    proc = await asyncio.create_subprocess_exec(
        sys.executable, str(REPO / "bench" / "demo.py"), "--data-dir", str(data),
        "--pay-after", "1", "--every", "1", "--seed", "3",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    assert proc.stdout is not None
    lines: list[str] = []
    try:
        async with asyncio.timeout(90):
            while True:
                raw = await proc.stdout.readline()
                assert raw, "demo exited early:\n" + "".join(lines)
                lines.append(raw.decode())
                m = re.search(r"\] purchases=(\d+)", lines[-1])
                if m and int(m.group(1)) >= 2:
                    break
        text = "".join(lines)
        assert re.search(r"status page\s+http://127\.0\.0\.1:\d+/\s+login: tech / \S+", text)
        assert len(_processes_of(data)) >= 3, "sandbox, gateway and hub should be running"
        proc.send_signal(signal.SIGINT)  # what Ctrl-C in the terminal sends
        rest, _ = await asyncio.wait_for(proc.communicate(), 60)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert proc.returncode == 0, rest.decode()
    assert "demo: every process stopped" in rest.decode()
    assert re.search(r"^demo purchases=[1-9]\d*", rest.decode(), re.MULTILINE)
    assert _processes_of(data) == []
