"""Fixtures: a real sandbox on loopback that delivers signed webhooks to a real gateway on a tmp
data dir; the gateway's SDK calls go over HTTP to the sandbox. The reconciler's background pass
runs once at start and then every hour (tests call `run_once` themselves) unless a test asks for
a short interval; the gateway clock is a `FakeClock` tests move by hand."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest
from aiohttp import ClientSession, web
from aiohttp.test_utils import TestClient, TestServer

from cloud_gateway.app import create_app
from cloud_gateway.auth import add_hub_tx, hash_secret
from cloud_gateway.catalog import parse_catalog_file, replace_catalog_tx
from cloud_gateway.keys import DB
from cloud_gateway.money import RECONCILER, REFUNDS, PassReport
from cloud_gateway.sandbox import SANDBOX_KEY, SandboxConfig, create_sandbox_app
from cloud_gateway.sandbox import Sandbox as SandboxRuntime
from cloud_gateway.settings import Secret, Settings

EXAMPLES = Path(__file__).parents[2] / "cloud_gateway" / "examples"
BOARD = "c1" * 12
HUB = "hub-m"
HUB_SECRET = "secret-of-hub-m-0123456789"
WEBHOOK_SECRET = "money-webhook-secret"
OLD_WEBHOOK_SECRET = "money-webhook-secret-before-rotation"
PRICE = 35000  # cappuccino 30000 + extra_shot 5000 in the example catalog


@pytest.fixture(autouse=True)
async def no_leaked_tasks() -> AsyncIterator[None]:
    before = asyncio.all_tasks()
    yield
    await asyncio.sleep(0)
    leaked = [t for t in asyncio.all_tasks() - before
              if not t.done() and t is not asyncio.current_task()]
    assert not leaked, f"leaked tasks: {leaked}"


class FakeClock:
    """Unix time the test moves by hand (starts at the real time)."""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


@dataclass
class Sandbox:
    url: str
    app: web.Application
    http: ClientSession

    @property
    def runtime(self) -> SandboxRuntime:
        return self.app[SANDBOX_KEY]

    async def sim(self, method: str, path: str, body: Any = None) -> Any:
        async with self.http.request(method, self.url + path, json=body) as resp:
            assert resp.status < 300, await resp.text()
            return await resp.json()

    async def pay(self, qr_id: str, **body: Any) -> dict[str, Any]:
        result: dict[str, Any] = await self.sim("POST", f"/_sim/qr/{qr_id}/pay", body or None)
        return result

    async def faults(self, **knobs: Any) -> None:
        await self.sim("POST", "/_sim/faults", knobs)

    async def ledger(self) -> dict[str, list[dict[str, Any]]]:
        ledger: dict[str, list[dict[str, Any]]] = await self.sim("GET", "/_sim/ledger")
        return ledger

    async def deliveries(self) -> list[dict[str, Any]]:
        return list((await self.sim("GET", "/_sim/webhooks"))["deliveries"])


@pytest.fixture
async def sandbox() -> AsyncIterator[Sandbox]:
    config = SandboxConfig(qr_min_lead_s=60, webhook_secret=WEBHOOK_SECRET,
                           old_webhook_secret=OLD_WEBHOOK_SECRET, webhook_timeout_s=2.0,
                           webhook_max_attempts=2, webhook_retry_base_s=0.05)
    app = create_sandbox_app(config)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    async with ClientSession() as http:
        yield Sandbox(f"http://127.0.0.1:{runner.addresses[0][1]}", app, http)
    await runner.cleanup()


@pytest.fixture
def settings(tmp_path: Path, sandbox: Sandbox) -> Settings:
    config = sandbox.runtime.config
    return Settings(
        data_dir=str(tmp_path / "gateway"), log_json=False,
        razorpay_key_id=config.key_id, razorpay_key_secret=Secret(config.key_secret),
        razorpay_base_url=sandbox.url, razorpay_timeout_s=0.5,
        webhook_secret=Secret(WEBHOOK_SECRET),
        token_key=Secret("test-token-key-" + "k" * 64),
        checkpoint_interval_s=0.2, reconcile_interval_s=3600.0,
    )


class Gateway:
    """A running gateway plus helpers that speak its HTTP API as hub `HUB`."""

    def __init__(self, client: TestClient[Any, Any], sandbox: Sandbox, clock: FakeClock) -> None:
        self.client = client
        self.sandbox = sandbox
        self.clock = clock
        self.token = ""

    @property
    def app(self) -> web.Application:
        app = self.client.app
        assert isinstance(app, web.Application)
        return app

    @property
    def webhook_url(self) -> str:
        return str(self.client.make_url("/webhooks/razorpay"))

    def q(self, sql: str, params: tuple[Any, ...] = ()) -> list[dict[str, Any]]:
        return [dict(r) for r in self.app[DB].query(sql, params)]

    async def call(self, method: str, path: str, body: Any = None,
                   expect: int | None = 200) -> Any:
        headers = {"Authorization": f"Bearer {self.token}"}
        resp = await self.client.request(method, path, json=body, headers=headers)
        data = await resp.json()
        if expect is not None:
            assert resp.status == expect, data
        return data

    async def paying_order(self, key: str = "o1", quantity: int = 1) -> dict[str, Any]:
        """An order with its UPI QR (payment_pending)."""
        order: dict[str, Any] = await self.call("POST", "/orders", {
            "board_uid": BOARD, "product": "cappuccino", "options": ["extra_shot"],
            "quantity": quantity, "idempotency_key": key, "pay": True}, expect=None)
        assert order["state"] == "payment_pending", order
        return order

    async def order(self, order_id: str) -> dict[str, Any]:
        order: dict[str, Any] = await self.call("GET", f"/orders/{order_id}")
        return order

    def state(self, order_id: str) -> str:
        """The order's state straight from the database (tokens expire when the clock jumps)."""
        return str(self.q("SELECT state FROM orders WHERE order_id = ?", (order_id,))[0]["state"])

    async def commands(self) -> list[dict[str, Any]]:
        return list((await self.call("GET", "/hub/commands?after=0"))["commands"])

    async def settle(self) -> None:
        """Wait until the sandbox has delivered everything and no refund attempt is running."""
        for _ in range(4):
            await self.sandbox.runtime.drain()
            await self.app[REFUNDS].idle()
        await self.sandbox.runtime.drain()

    async def reconcile(self) -> PassReport:
        report = await self.app[RECONCILER].run_once()
        await self.settle()
        return report

    def refunds(self) -> list[dict[str, Any]]:
        return self.q("SELECT * FROM refunds ORDER BY id")

    def payments(self) -> list[dict[str, Any]]:
        return self.q("SELECT payment_id, order_id, status, disposition, source FROM payments "
                      "ORDER BY id")


async def seed(app: web.Application) -> None:
    catalog = parse_catalog_file(EXAMPLES / "catalog.toml")
    secret_hash = hash_secret(HUB_SECRET)

    def unit(tx: Any) -> None:
        add_hub_tx(tx, HUB, "mall-1", secret_hash)
        replace_catalog_tx(tx, catalog)

    await app[DB].write(unit)


GatewayFactory = Callable[..., Any]


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def start_gateway(settings: Settings, sandbox: Sandbox,
                        clock: FakeClock) -> AsyncIterator[GatewayFactory]:
    """Start (or restart, on the same data dir) a gateway that the sandbox delivers to."""
    clients: list[TestClient[Any, Any]] = []

    async def start(**overrides: Any) -> Gateway:
        app = create_app(replace(settings, **overrides), clock=clock)
        client = TestClient(TestServer(app, host="127.0.0.1"))
        await client.start_server()
        clients.append(client)
        gw = Gateway(client, sandbox, clock)
        sandbox.runtime.reconfigure({"webhook_url": gw.webhook_url})
        if not app[DB].query("SELECT 1 FROM hubs"):
            await seed(app)
        resp = await client.post("/auth/token", json={"hub_id": HUB, "secret": HUB_SECRET})
        assert resp.status == 200, await resp.text()
        gw.token = (await resp.json())["token"]
        await gw.call("PUT", f"/hub/boards/{BOARD}", {
            "board_uid": BOARD, "firmware": "1.0.0", "protocol_version": 1,
            "products": ["cappuccino", "espresso"]})
        return gw

    async def stop(gw: Gateway) -> None:
        await gw.client.close()
        clients.remove(gw.client)

    start.stop = stop  # type: ignore[attr-defined]
    yield start
    for client in reversed(clients):
        await client.close()


@pytest.fixture
async def gw(start_gateway: GatewayFactory) -> Gateway:
    gateway: Gateway = await start_gateway()
    return gateway
