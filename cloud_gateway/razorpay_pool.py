"""The Razorpay adapter run in worker processes, so the SDK's CPU does not hold our GIL.

`app.create_app` builds a `RazorpayProcessPool` when `razorpay_processes` > 0, else the adapter
(`razorpay_client.RazorpayClient`) in threads of the gateway process. Both have the same async
methods and raise the same `RazorpayError`, so the order service, refunds and the reconciler use
either without knowing which.

Why: the official SDK is synchronous `requests` code, about 0.5 ms of Python per call. In
threads of the gateway it holds the GIL the event loop needs, and every system call the loop
makes (socket send, sqlite step, the commit hop) then waits behind it: measured in
bench/gateway.py, create-and-pay at 32 hubs was GIL-bound at ~1.2 ms of gateway CPU per order.
In worker processes the gateway pays pickling and one pipe write/read per call instead.

Each worker process runs one unchanged `RazorpayClient` (with `razorpay_threads` SDK threads)
on its own event loop, so calls in flight = processes x threads. Workers are started with
"spawn" (the gateway has threads; forking them is unsafe) and ready after `start()`. A call
goes to the worker with the fewest calls in flight; answers are matched by call id.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import multiprocessing
import os
from multiprocessing.connection import Connection
from typing import Any

from .razorpay_client import RazorpayClient, RazorpayError, RazorpaySettings

log = logging.getLogger(__name__)

_client: RazorpayClient | None = None
_loop: asyncio.AbstractEventLoop | None = None


def _yield_to_the_gateway() -> None:
    """SCHED_BATCH: a woken worker does not preempt the gateway's event loop. Without it every
    request written to a worker's pipe handed the CPU to that worker for its ~0.5 ms of SDK
    Python before the loop could go on (measured as 0.5 ms per os.write on 2 cores)."""
    try:
        os.sched_setscheduler(0, os.SCHED_BATCH, os.sched_param(0))
    except (OSError, AttributeError):  # not Linux, or a seccomp filter forbids it: run as is
        log.debug("SCHED_BATCH not available for the Razorpay worker")


def _serve(conn: Connection, settings: RazorpaySettings) -> None:
    """A worker process: one adapter (its own SDK threads), calls served concurrently, until
    told to stop (None) or the gateway goes away (EOF)."""
    global _client, _loop
    _yield_to_the_gateway()
    _loop = asyncio.new_event_loop()
    _client = RazorpayClient(settings)
    _loop.run_until_complete(_serve_calls(conn))
    _loop.run_until_complete(_client.aclose())
    _loop.close()


async def _serve_calls(conn: Connection) -> None:
    loop = asyncio.get_running_loop()
    stop = loop.create_future()
    tasks: set[asyncio.Task[None]] = set()

    async def answer(call_id: int, method: str, args: tuple[Any, ...],
                     kwargs: dict[str, Any]) -> None:
        assert _client is not None
        try:
            result: tuple[str, Any] = ("ok", await getattr(_client, method)(*args, **kwargs))
        except RazorpayError as exc:  # does not survive pickling: travels as a tuple
            result = ("error", (exc.kind, exc.message, exc.operation))
        except Exception as exc:  # argument errors: re-raised in the gateway with the message
            result = ("raise", (type(exc).__name__, str(exc)))
        conn.send((call_id, result))

    def readable() -> None:
        try:
            while conn.poll():
                message = conn.recv()
                if message is None:
                    raise EOFError
                task = loop.create_task(answer(*message))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
        except (EOFError, OSError):
            loop.remove_reader(conn.fileno())
            if not stop.done():
                stop.set_result(None)

    loop.add_reader(conn.fileno(), readable)
    conn.send(("ready", None))
    await stop
    if tasks:
        await asyncio.gather(*tasks, return_exceptions=True)


class _Worker:
    def __init__(self, settings: RazorpaySettings) -> None:
        ctx = multiprocessing.get_context("spawn")
        self.conn, child = ctx.Pipe()
        self.process = ctx.Process(target=_serve, args=(child, settings), daemon=True,
                                   name="razorpay-worker")
        self.process.start()
        child.close()
        self.pending: dict[int, asyncio.Future[tuple[str, Any]]] = {}


class RazorpayProcessPool:
    """Worker processes talked to over pipes read by the event loop itself (no helper
    threads: ProcessPoolExecutor's two threads cost the gateway more GIL than they saved)."""

    def __init__(self, settings: RazorpaySettings, processes: int) -> None:
        if processes < 1:
            raise ValueError("processes must be at least 1")
        self._settings = settings
        self._processes = processes
        self._workers: list[_Worker] = []
        self._ids = itertools.count(1)
        self._closed = False

    async def start(self) -> None:
        """Start every worker and wait until each has imported the SDK and said ready."""
        loop = asyncio.get_running_loop()
        for _ in range(self._processes):
            worker = _Worker(self._settings)
            ready: asyncio.Future[tuple[str, Any]] = loop.create_future()
            worker.pending[0] = ready
            loop.add_reader(worker.conn.fileno(), self._readable, worker)
            self._workers.append(worker)
            await ready

    def _readable(self, worker: _Worker) -> None:
        try:
            while worker.conn.poll():
                call_id, result = worker.conn.recv()
                fut = worker.pending.pop(0 if call_id == "ready" else call_id, None)
                if fut is not None and not fut.done():
                    fut.set_result(result)
        except (EOFError, OSError):
            asyncio.get_running_loop().remove_reader(worker.conn.fileno())
            log.error("Razorpay worker process exited", extra={"pid": worker.process.pid})
            for fut in worker.pending.values():
                if not fut.done():
                    fut.set_result(("error", ("unknown", "worker process died mid-call", "")))
            worker.pending.clear()

    async def _run(self, method: str, *args: Any, **kwargs: Any) -> Any:
        if self._closed:
            raise RuntimeError("RazorpayProcessPool is closed")
        call_id = next(self._ids)
        worker = min(self._workers, key=lambda w: len(w.pending))  # least calls in flight
        if not worker.process.is_alive():
            raise RazorpayError("not_sent", "worker process is not running", operation=method)
        fut: asyncio.Future[tuple[str, Any]] = asyncio.get_running_loop().create_future()
        worker.pending[call_id] = fut
        worker.conn.send((call_id, method, args, kwargs))
        status, value = await asyncio.shield(fut)  # answers are matched by call id
        if status == "error":
            kind, message, operation = value
            raise RazorpayError(kind, message, operation=operation)
        if status == "raise":
            name, message = value
            raise (TypeError if name == "TypeError" else ValueError)(message)
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
        if self._closed:
            return
        self._closed = True
        loop = asyncio.get_running_loop()
        for worker in self._workers:
            loop.remove_reader(worker.conn.fileno())
            if worker.process.is_alive():
                worker.conn.send(None)
        for worker in self._workers:
            await asyncio.to_thread(worker.process.join, 5.0)
            if worker.process.is_alive():
                worker.process.kill()
                await asyncio.to_thread(worker.process.join)
            worker.conn.close()


__all__ = ["RazorpayProcessPool"]
