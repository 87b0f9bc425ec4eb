"""Fixtures: an in-process sandbox on 127.0.0.1:0, a webhook receiver, the adapter, the raw SDK."""

from __future__ import annotations

import asyncio
import base64
import dataclasses
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import aiohttp
import pytest
import razorpay  # type: ignore[import-untyped]
import requests
from aiohttp import web

from cloud_gateway.razorpay_client import RazorpayClient, RazorpaySettings
from cloud_gateway.sandbox import SANDBOX_KEY, Sandbox, SandboxConfig, create_sandbox_app

T = TypeVar("T")
KEY_ID = "rzp_test_unit"
KEY_SECRET = "unit-key-secret"
WEBHOOK_SECRET = "unit-webhook-secret"
OLD_WEBHOOK_SECRET = "unit-webhook-secret-rotated"
WAIT_S = 3.0  # upper bound for an expected delivery; tests never wait for it on success


@pytest.fixture(autouse=True)
async def no_leaked_tasks() -> AsyncIterator[None]:
    yield
    await asyncio.sleep(0)
    current = asyncio.current_task()
    leaked = [t for t in asyncio.all_tasks() if t is not current and not t.done()]
    assert not leaked, f"tasks leaked: {leaked}"


async def start(app: web.Application) -> tuple[web.AppRunner, str]:
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    return runner, f"http://127.0.0.1:{runner.addresses[0][1]}"


@dataclass
class Received:
    headers: dict[str, str]
    raw: bytes

    @property
    def event(self) -> str:
        import json

        return str(json.loads(self.raw)["event"])

    @property
    def event_id(self) -> str:
        return self.headers["X-Razorpay-Event-Id"]


@dataclass
class Receiver:
    """A webhook endpoint: records every delivery; answers the scripted statuses, then 200."""

    url: str = ""
    got: list[Received] = field(default_factory=list)
    statuses: list[int] = field(default_factory=list)
    delays: list[float] = field(default_factory=list)
    changed: asyncio.Condition = field(default_factory=asyncio.Condition)

    async def handle(self, request: web.Request) -> web.Response:
        raw = await request.read()
        delay = self.delays.pop(0) if self.delays else 0.0
        status = self.statuses.pop(0) if self.statuses else 200
        async with self.changed:
            self.got.append(Received(dict(request.headers), raw))
            self.changed.notify_all()
        if delay:
            await asyncio.sleep(delay)
        return web.Response(status=status, text="ok")

    async def wait_for(self, n: int) -> list[Received]:
        async with asyncio.timeout(WAIT_S):
            async with self.changed:
                await self.changed.wait_for(lambda: len(self.got) >= n)
        return list(self.got)


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    rec = Receiver()
    app = web.Application()
    app.router.add_post("/hook", rec.handle)
    runner, base = await start(app)
    rec.url = f"{base}/hook"
    yield rec
    await runner.cleanup()


@dataclass
class SandboxHandle:
    base_url: str
    app: web.Application
    http: aiohttp.ClientSession

    @property
    def sb(self) -> Sandbox:
        return self.app[SANDBOX_KEY]

    async def sim(self, path: str, body: dict[str, Any] | None = None) -> Any:
        """POST (or GET when body is None and path is a read route) a /_sim route; 2xx expected."""
        if body is None and path in ("/_sim/ledger", "/_sim/webhooks", "/_sim/faults"):
            resp = await self.http.get(self.base_url + path)
        else:
            resp = await self.http.post(self.base_url + path, json=body or {})
        async with resp:
            assert resp.status == 200, await resp.text()
            return await resp.json()

    async def raw(
        self, method: str, path: str, *, auth: bool = True, **kwargs: Any
    ) -> tuple[int, Any]:
        headers = {"Authorization": basic_auth(KEY_ID, KEY_SECRET)} if auth else {}
        headers.update(kwargs.pop("headers", {}))
        url = self.base_url + path
        async with self.http.request(method, url, headers=headers, **kwargs) as resp:
            assert resp.content_type == "application/json", await resp.text()
            return resp.status, await resp.json()


async def wait_until(predicate: Callable[[], bool]) -> None:
    """Poll sandbox-internal state that has no event to await (bounded by WAIT_S)."""
    async with asyncio.timeout(WAIT_S):
        while not predicate():  # noqa: ASYNC110 - nothing to wait on but the state itself
            await asyncio.sleep(0.01)


def basic_auth(login: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{login}:{password}".encode()).decode()


async def api_qr(sandbox: SandboxHandle, amount: int = 2500) -> dict[str, Any]:
    """A single-use QR created over plain HTTP (close_by defaulted by the sandbox)."""
    status, body = await sandbox.raw("POST", "/v1/payments/qr_codes", json={
        "type": "upi_qr", "usage": "single_use", "fixed_amount": True, "payment_amount": amount,
        "notes": {"order_id": "ord_auto"},
    })
    assert status == 200, body
    return dict(body)


SandboxFactory = Callable[..., Awaitable[SandboxHandle]]


@pytest.fixture
async def make_sandbox() -> AsyncIterator[SandboxFactory]:
    runners: list[web.AppRunner] = []
    http = aiohttp.ClientSession()

    async def factory(**overrides: Any) -> SandboxHandle:
        faults = overrides.pop("faults", None)
        config = dataclasses.replace(
            SandboxConfig(
                key_id=KEY_ID, key_secret=KEY_SECRET, webhook_secret=WEBHOOK_SECRET,
                old_webhook_secret=OLD_WEBHOOK_SECRET, webhook_timeout_s=1.0,
                webhook_retry_base_s=0.05,
            ),
            **overrides,
        )
        app = create_sandbox_app(config, faults=faults)
        runner, base = await start(app)
        runners.append(runner)
        return SandboxHandle(base, app, http)

    yield factory
    for runner in runners:
        await runner.cleanup()
    await http.close()


@pytest.fixture
async def sandbox(make_sandbox: SandboxFactory, receiver: Receiver) -> SandboxHandle:
    return await make_sandbox(webhook_url=receiver.url)


@pytest.fixture
async def rzp(sandbox: SandboxHandle) -> AsyncIterator[RazorpayClient]:
    client = RazorpayClient(
        RazorpaySettings(KEY_ID, KEY_SECRET, base_url=sandbox.base_url, timeout_s=1.0, threads=2)
    )
    yield client
    await client.aclose()


SdkCall = Callable[[Callable[[razorpay.Client], T]], Awaitable[T]]


@pytest.fixture
def sdk(sandbox: SandboxHandle) -> SdkCall[Any]:
    """Run a raw SDK call (for routes the adapter does not wrap) in a thread."""

    async def call(fn: Callable[[razorpay.Client], Any]) -> Any:
        def work() -> Any:
            with requests.Session() as session:
                session.trust_env = False
                client = razorpay.Client(
                    session=session, auth=(KEY_ID, KEY_SECRET), base_url=sandbox.base_url
                )
                return fn(client)

        return await asyncio.to_thread(work)

    return call
