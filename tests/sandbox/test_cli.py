"""`cloud-gateway sandbox` as its own process, driven by the adapter over loopback."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from pathlib import Path

import pytest

from cloud_gateway.razorpay_client import RazorpayClient, RazorpaySettings
from cloud_gateway.sandbox.cli import run

START_TIMEOUT_S = 20.0


async def test_cli_serves_the_sdk_and_stops_on_sigterm(tmp_path: Path) -> None:
    env = {**os.environ, "SANDBOX_KEY_SECRET": "cli-secret", "PYTHONUNBUFFERED": "1"}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "cloud_gateway.sandbox.cli", "--port", "0", "--key-id", "rzp_cli",
        "--log-level", "WARNING",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env, cwd=tmp_path,
    )
    try:
        assert proc.stdout is not None
        async with asyncio.timeout(START_TIMEOUT_S):
            line = (await proc.stdout.readline()).decode()
        assert line.startswith("sandbox listening on http://127.0.0.1:"), line
        base_url = line.split()[-1]
        client = RazorpayClient(RazorpaySettings("rzp_cli", "cli-secret", base_url=base_url))
        try:
            qr = await client.create_upi_qr(
                amount=1500, close_by=int(time.time()) + 900, notes={"order_id": "o"},
                description="cli",
            )
            assert (await client.fetch_qr(qr["id"]))["status"] == "active"
        finally:
            await client.aclose()
        proc.send_signal(signal.SIGTERM)
        async with asyncio.timeout(START_TIMEOUT_S):
            assert await proc.wait() == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


@pytest.mark.parametrize("faults", ["not json", "[1]", '{"webhook_drop_rate": 5}'])
def test_cli_refuses_bad_faults(faults: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["--faults", faults]) == 2
    assert "cloud-gateway sandbox:" in capsys.readouterr().err
