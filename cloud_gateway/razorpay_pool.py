"""The Razorpay adapter run in worker processes, so the SDK's CPU does not hold our GIL.

`app.create_app` builds a `RazorpayProcessPool` when `razorpay_processes` > 0, else the adapter
(`razorpay_client.RazorpayClient`) in threads of the gateway process. Both have the same async
methods and raise the same `RazorpayError`, so the order service, refunds and the reconciler use
either without knowing which.

Why: the official SDK is synchronous `requests` code, about 0.5 ms of Python per call. In
threads of the gateway it holds the GIL the event loop needs, and every system call the loop
makes (socket send, sqlite step, the commit hop) then waits behind it: measured in
bench/gateway.py, create-and-pay at 32 hubs was GIL-bound at ~1.2 ms of gateway CPU per order.
In worker processes the gateway pays ~0.1 ms per call for pickling and pipes instead.

Each worker process runs one unchanged `RazorpayClient` (one SDK thread) on its own event loop,
one call at a time; the pool size is the number of calls in flight. Workers are started with
"spawn" (the gateway has threads; forking them is unsafe) and warmed up by `start()`.
"""

from __future__ import annotations

import asyncio
import dataclasses
import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from typing import Any

from .razorpay_client import RazorpayClient, RazorpayError, RazorpaySettings

_client: RazorpayClient | None = None
_loop: asyncio.AbstractEventLoop | None = None


def _init(settings: RazorpaySettings) -> None:
    global _client, _loop
    _loop = asyncio.new_event_loop()
    _client = RazorpayClient(dataclasses.replace(settings, threads=1))


def _ping() -> bool:
    return _client is not None


def _call(method: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[str, Any]:
    """Runs in a worker. RazorpayError does not survive pickling (its args differ from its
    constructor's), so it travels as a tuple and is rebuilt in the gateway."""
    assert _client is not None and _loop is not None, "worker not initialised"
    try:
        return "ok", _loop.run_until_complete(getattr(_client, method)(*args, **kwargs))
    except RazorpayError as exc:
        return "error", (exc.kind, exc.message, exc.operation)


class RazorpayProcessPool:
    def __init__(self, settings: RazorpaySettings, processes: int) -> None:
        if processes < 1:
            raise ValueError("processes must be at least 1")
        self._processes = processes
        self._pool = ProcessPoolExecutor(processes, mp_context=multiprocessing.get_context("spawn"),
                                         initializer=_init, initargs=(settings,))

    async def start(self) -> None:
        """Start every worker now (imports take a while), not on the first customer's order."""
        loop = asyncio.get_running_loop()
        await asyncio.gather(*(loop.run_in_executor(self._pool, _ping)
                               for _ in range(self._processes)))

    async def _run(self, method: str, *args: Any, **kwargs: Any) -> Any:
        loop = asyncio.get_running_loop()
        status, value = await loop.run_in_executor(self._pool, _call, method, args, kwargs)
        if status == "error":
            kind, message, operation = value
            raise RazorpayError(kind, message, operation=operation)
        return value

    async def create_upi_qr(self, *, amount: int, close_by: int, notes: dict[str, str],
                            description: str) -> dict[str, Any]:
        result: dict[str, Any] = await self._run(
            "create_upi_qr", amount=amount, close_by=close_by, notes=notes,
            description=description)
        return result

    async def fetch_qr(self, qr_id: str) -> dict[str, Any]:
        result: dict[str, Any] = await self._run("fetch_qr", qr_id)
        return result

    async def qr_payments(self, qr_id: str) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = await self._run("qr_payments", qr_id)
        return result

    async def close_qr(self, qr_id: str) -> dict[str, Any]:
        result: dict[str, Any] = await self._run("close_qr", qr_id)
        return result

    async def fetch_payment(self, payment_id: str) -> dict[str, Any]:
        result: dict[str, Any] = await self._run("fetch_payment", payment_id)
        return result

    async def refund(self, payment_id: str, *, amount: int, idempotency_key: str,
                     notes: dict[str, str] | None = None) -> dict[str, Any]:
        result: dict[str, Any] = await self._run(
            "refund", payment_id, amount=amount, idempotency_key=idempotency_key, notes=notes)
        return result

    async def payment_refunds(self, payment_id: str) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = await self._run("payment_refunds", payment_id)
        return result

    async def aclose(self) -> None:
        await asyncio.to_thread(self._pool.shutdown, wait=True)


__all__ = ["RazorpayProcessPool"]
