"""The adapter itself: concurrency without cross-talk, no secrets in logs, cheap User-Agent."""

from __future__ import annotations

import asyncio
import importlib.metadata
import logging
import time

import pytest

from cloud_gateway.razorpay_client import RazorpayClient, RazorpayError, RazorpaySettings
from cloud_gateway.razorpay_client import _SdkClient as SdkClient
from cloud_gateway.sandbox import SandboxConfig

from .conftest import KEY_ID, KEY_SECRET, OLD_WEBHOOK_SECRET, WEBHOOK_SECRET, SandboxHandle

CONCURRENT = 24


async def test_concurrent_calls_keep_their_own_arguments(
    rzp: RazorpayClient, sandbox: SandboxHandle
) -> None:
    amounts = [1000 + i for i in range(CONCURRENT)]
    close_by = int(time.time()) + 900
    qrs = await asyncio.gather(*(
        rzp.create_upi_qr(amount=a, close_by=close_by, notes={"order_id": f"o{a}"},
                          description=f"d{a}")
        for a in amounts
    ))
    assert [(q["payment_amount"], q["notes"]["order_id"]) for q in qrs] == [
        (a, f"o{a}") for a in amounts
    ]
    payments = await asyncio.gather(*(
        sandbox.sim(f"/_sim/qr/{q['id']}/pay") for q in qrs
    ))
    refunds = await asyncio.gather(*(
        rzp.refund(p["payments"][0]["id"], amount=p["payments"][0]["amount"] - 1,
                   idempotency_key=f"rf-concurrent-{i:03d}")
        for i, p in enumerate(payments)
    ))
    assert [r["amount"] for r in refunds] == [a - 1 for a in amounts]


async def test_no_secret_in_logs_or_reprs(
    sandbox: SandboxHandle, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    bad = RazorpayClient(RazorpaySettings(KEY_ID, "wrong-" + KEY_SECRET, base_url=sandbox.base_url))
    try:
        with pytest.raises(RazorpayError) as err:
            await bad.fetch_payment("pay_anything00000")
    finally:
        await bad.aclose()
    await sandbox.sim("/_sim/faults", {"api_error_next": 1})
    status, _ = await sandbox.raw("GET", "/v1/orders")
    assert status == 500
    text = caplog.text + str(err.value) + repr(sandbox.sb.config)
    for secret in (KEY_SECRET, WEBHOOK_SECRET, OLD_WEBHOOK_SECRET):
        assert secret not in text
    assert "key_secret" not in sandbox.sb.config.public()
    assert SandboxConfig().key_secret not in repr(SandboxConfig())


def test_user_agent_version_read_once_and_correct() -> None:
    client = SdkClient(auth=(KEY_ID, KEY_SECRET))
    assert client._get_version() == importlib.metadata.version("razorpay")
    assert SdkClient._cached_version == importlib.metadata.version("razorpay")
