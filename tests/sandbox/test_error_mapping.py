"""Every failure kind through the real SDK: refused, not_sent, unknown; auth; the envelope."""

from __future__ import annotations

import socket
from typing import Any

import pytest
import razorpay  # type: ignore[import-untyped]
import requests

from cloud_gateway.razorpay_client import RazorpayClient, RazorpayError, RazorpaySettings
from cloud_gateway.razorpay_client import _classify as classify

from .conftest import KEY_ID, KEY_SECRET, SandboxHandle, SdkCall
from .test_qr_codes import new_qr


def client_for(
    base_url: str, *, timeout_s: float = 1.0, secret: str = KEY_SECRET
) -> RazorpayClient:
    return RazorpayClient(RazorpaySettings(KEY_ID, secret, base_url=base_url, timeout_s=timeout_s))


async def test_bad_request_is_refused(rzp: RazorpayClient) -> None:
    with pytest.raises(RazorpayError) as err:
        await rzp.create_upi_qr(amount=2500, close_by=1, notes={}, description="x")
    assert err.value.kind == "refused" and "close_by" in err.value.message
    assert err.value.operation == "qrcode.create"


@pytest.mark.parametrize("kind", ["server", "gateway", "html"])
async def test_5xx_is_unknown_and_has_no_effect(
    rzp: RazorpayClient, sandbox: SandboxHandle, kind: str
) -> None:
    await sandbox.sim("/_sim/faults", {"api_error_next": 1, "api_error_kind": kind})
    with pytest.raises(RazorpayError) as err:
        await new_qr(rzp)
    assert err.value.kind == "unknown"
    assert sandbox.sb.store.qrs == {}
    assert (await new_qr(rzp))["status"] == "active"  # only the next call failed


async def test_error_rate_is_seeded(sandbox: SandboxHandle, rzp: RazorpayClient) -> None:
    async def pattern() -> list[bool]:
        await sandbox.sim("/_sim/faults", {"seed": 42, "api_error_rate": 0.5})
        out = []
        for _ in range(12):
            try:
                await rzp.fetch_qr("qr_unknown000000")
            except RazorpayError as exc:
                out.append(exc.kind == "unknown")
        return out

    first = await pattern()
    assert first == await pattern()
    assert any(first) and not all(first)
    await sandbox.sim("/_sim/faults", {"api_error_rate": 0})


async def test_connection_refused_is_not_sent() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed once the block ends: nothing listens there
    client = client_for(f"http://127.0.0.1:{port}")
    try:
        with pytest.raises(RazorpayError) as err:
            await client.fetch_qr("qr_anything00000")
        assert err.value.kind == "not_sent"
    finally:
        await client.aclose()


def test_connect_timeout_is_not_sent_and_read_timeout_unknown() -> None:
    # A connect timeout cannot be produced on loopback; check the classification directly.
    assert classify(requests.exceptions.ConnectTimeout("x")) == ("not_sent", "connect timeout")
    kind, _ = classify(requests.exceptions.ReadTimeout("x")) or ("", "")
    assert kind == "unknown"
    assert classify(RuntimeError("not ours")) is None


async def test_slow_answer_times_out_as_unknown_after_the_effect(
    sandbox: SandboxHandle,
) -> None:
    client = client_for(sandbox.base_url, timeout_s=0.2)
    try:
        await sandbox.sim("/_sim/faults", {"api_slow_next": 1, "api_slow_s": 0.5})
        with pytest.raises(RazorpayError) as err:
            await new_qr(client)
        assert err.value.kind == "unknown" and "timeout" in err.value.message
        assert len(sandbox.sb.store.qrs) == 1  # the QR was created: the outcome was unknown
    finally:
        await client.aclose()
        await sandbox.sim("/_sim/drain")


async def test_wrong_credentials_refused_with_401_envelope(sandbox: SandboxHandle) -> None:
    client = client_for(sandbox.base_url, secret="wrong-secret")
    try:
        with pytest.raises(RazorpayError) as err:
            await client.fetch_qr("qr_anything00000")
        assert err.value.kind == "refused" and err.value.message == "Authentication failed"
    finally:
        await client.aclose()
    status, body = await sandbox.raw("GET", "/v1/payments/qr_codes", auth=False)
    assert status == 401 and body["error"]["code"] == "BAD_REQUEST_ERROR"


ENVELOPE_KEYS = {"code", "description", "source", "step", "reason", "metadata", "field"}


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("GET", "/v1/nothing/here", 400),
        ("GET", "/not-v1", 400),
        ("DELETE", "/v1/payments/qr_codes", 405),
        ("PUT", "/v1/orders", 405),
        ("GET", "/_sim/nothing", 400),
    ],
)
async def test_error_envelope_on_unknown_routes_and_405(
    sandbox: SandboxHandle, method: str, path: str, status: int
) -> None:
    got, body = await sandbox.raw(method, path)
    assert got == status
    assert set(body) == {"error"} and set(body["error"]) == ENVELOPE_KEYS
    assert body["error"]["code"] == "BAD_REQUEST_ERROR"


async def test_oversized_body_gets_the_envelope(sandbox: SandboxHandle) -> None:
    status, body = await sandbox.raw(
        "POST", "/v1/orders", data=b"{" + b" " * (2 * 1024 * 1024) + b"}",
        headers={"Content-Type": "application/json"},
    )
    assert status == 413 and set(body["error"]) == ENVELOPE_KEYS


async def test_sdk_sees_unknown_route_as_bad_request(sdk: SdkCall[Any]) -> None:
    # without the envelope the SDK would raise requests' JSONDecodeError here
    with pytest.raises(razorpay.errors.BadRequestError, match="URL was not found"):
        await sdk(lambda c: c.get("/v1/nothing/here", {}))


async def test_adapter_refuses_ids_that_are_not_ids(rzp: RazorpayClient) -> None:
    with pytest.raises(ValueError, match="qr_id"):
        await rzp.fetch_qr("qr_x/../../orders")


def test_settings_refuse_bad_base_url_and_hide_secret() -> None:
    for bad in ("http://127.0.0.1:1/", "http://127.0.0.1:1/v1"):
        with pytest.raises(ValueError, match="base_url"):
            RazorpaySettings(KEY_ID, KEY_SECRET, base_url=bad)
    with pytest.raises(ValueError):
        RazorpaySettings(KEY_ID, "", base_url=None)
    assert KEY_SECRET not in repr(RazorpaySettings(KEY_ID, KEY_SECRET))


async def test_closed_client_refuses_calls(sandbox: SandboxHandle) -> None:
    client = client_for(sandbox.base_url)
    await client.aclose()
    with pytest.raises(RuntimeError, match="closed"):
        await client.fetch_qr("qr_anything00000")


async def test_sandbox_internal_errors_use_the_envelope(sandbox: SandboxHandle) -> None:
    def broken(*_: Any) -> Any:
        raise RuntimeError("boom")

    sandbox.sb.store.list_orders = broken  # type: ignore[method-assign,assignment]
    status, body = await sandbox.raw("GET", "/v1/orders")
    assert status == 500 and body["error"]["code"] == "SERVER_ERROR"
