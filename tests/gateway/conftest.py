"""Fixtures: a real Razorpay sandbox on loopback, a gateway test server on a tmp data dir, hubs,
boards and the example catalog. The SDK runs for real (threads, HTTP) against the sandbox."""

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
from cloud_gateway.sandbox import SandboxConfig, create_sandbox_app
from cloud_gateway.settings import Secret, Settings

EXAMPLES = Path(__file__).parents[2] / "cloud_gateway" / "examples"
BOARD_A = "a1" * 12
BOARD_A2 = "a2" * 12
BOARD_B = "b1" * 12
SECRET_A = "secret-of-hub-a-0123456789"
SECRET_B = "secret-of-hub-b-0123456789"


@pytest.fixture(autouse=True)
async def no_leaked_tasks() -> AsyncIterator[None]:
    before = asyncio.all_tasks()
    yield
    await asyncio.sleep(0)
    leaked = [t for t in asyncio.all_tasks() - before
              if not t.done() and t is not asyncio.current_task()]
    assert not leaked, f"leaked tasks: {leaked}"


@dataclass
class Sandbox:
    url: str
    config: SandboxConfig
    http: ClientSession

    async def sim(self, method: str, path: str, body: Any = None) -> Any:
        async with self.http.request(method, self.url + path, json=body) as resp:
            assert resp.status < 300, await resp.text()
            return await resp.json()


@pytest.fixture
async def sandbox() -> AsyncIterator[Sandbox]:
    config = SandboxConfig(qr_min_lead_s=60)
    runner = web.AppRunner(create_sandbox_app(config))
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    async with ClientSession() as http:
        yield Sandbox(f"http://127.0.0.1:{port}", config, http)
    await runner.cleanup()


@pytest.fixture
def settings(tmp_path: Path, sandbox: Sandbox) -> Settings:
    return Settings(
        data_dir=str(tmp_path / "gateway"), log_json=False,
        razorpay_key_id=sandbox.config.key_id,
        razorpay_key_secret=Secret(sandbox.config.key_secret),
        razorpay_base_url=sandbox.url, razorpay_timeout_s=2.0,
        webhook_secret=Secret(sandbox.config.webhook_secret),
        token_key=Secret("test-token-key-" + "k" * 64),
        razorpay_processes=0,  # threads: fast to start; test_orders covers the process pool
        checkpoint_interval_s=0.2, long_poll_max_s=5.0, ws_heartbeat_s=0.5,
    )


class Gateway:
    """A running gateway plus helpers that speak its HTTP API."""

    def __init__(self, client: TestClient) -> None:
        self.client = client
        self.tokens: dict[str, str] = {}

    @property
    def app(self) -> web.Application:
        return self.client.app  # type: ignore[return-value]

    async def token(self, hub_id: str, secret: str) -> str:
        resp = await self.client.post("/auth/token", json={"hub_id": hub_id, "secret": secret})
        assert resp.status == 200, await resp.text()
        token: str = (await resp.json())["token"]
        self.tokens[hub_id] = token
        return token

    def auth(self, hub_id: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[hub_id]}"}

    async def call(self, method: str, path: str, hub: str | None = "hub-a",
                   body: Any = None, expect: int | None = None) -> tuple[int, Any]:
        headers = self.auth(hub) if hub else {}
        resp = await self.client.request(method, path, json=body, headers=headers)
        data = await resp.json() if resp.content_type == "application/json" else await resp.text()
        if expect is not None:
            assert resp.status == expect, data
        return resp.status, data

    async def order(self, hub: str = "hub-a", board: str = BOARD_A, key: str = "k1",
                    pay: bool = False, **extra: Any) -> dict[str, Any]:
        body = {"board_uid": board, "product": "cappuccino", "options": ["extra_shot"],
                "quantity": 1, "idempotency_key": key, **extra}
        if pay:
            body["pay"] = True
        status, data = await self.call("POST", "/orders", hub, body)
        assert status in (200, 201), data
        return dict(data)


async def seed(app: web.Application) -> None:
    db = app[DB]
    hashes = {h: hash_secret(s) for h, s in (("hub-a", SECRET_A), ("hub-b", SECRET_B))}
    catalog = parse_catalog_file(EXAMPLES / "catalog.toml")

    def unit(tx: Any) -> None:
        add_hub_tx(tx, "hub-a", "mall-1", hashes["hub-a"])
        add_hub_tx(tx, "hub-b", "airport-t2", hashes["hub-b"])
        replace_catalog_tx(tx, catalog)

    await db.write(unit)


GatewayFactory = Callable[..., Any]


@pytest.fixture
async def start_gateway(settings: Settings) -> AsyncIterator[GatewayFactory]:
    """Start (or restart, on the same data dir) a gateway; returns a ready `Gateway`."""
    clients: list[TestClient] = []

    async def start(seeded: bool = True, boards: bool = True,
                    clock: Callable[[], float] = time.time, **overrides: Any) -> Gateway:
        app = create_app(replace(settings, **overrides), clock=clock)
        client = TestClient(TestServer(app, host="127.0.0.1"))
        await client.start_server()
        clients.append(client)
        gw = Gateway(client)
        if seeded and not app[DB].query("SELECT 1 FROM hubs"):
            await seed(app)
        if seeded:
            await gw.token("hub-a", SECRET_A)
            await gw.token("hub-b", SECRET_B)
        if boards and seeded:
            for hub, uid in (("hub-a", BOARD_A), ("hub-a", BOARD_A2), ("hub-b", BOARD_B)):
                await gw.call("PUT", f"/hub/boards/{uid}", hub, {
                    "board_uid": uid, "firmware": "1.0.0", "protocol_version": 1,
                    "products": ["cappuccino", "espresso"]}, expect=200)
        return gw

    yield start
    for client in reversed(clients):
        await client.close()


@pytest.fixture
async def gw(start_gateway: GatewayFactory) -> Gateway:
    gateway: Gateway = await start_gateway()
    return gateway


class FakeClock:
    """Unix time the test moves by hand (starts at the real time)."""

    def __init__(self) -> None:
        self.now = float(int(time.time()))

    def __call__(self) -> float:
        return self.now


async def paid_order(gw: Gateway, sandbox: Sandbox, key: str = "paid-1",
                     hub: str = "hub-a", board: str = BOARD_A) -> dict[str, Any]:
    """An order paid for real in the sandbox and recorded as the webhook module will do it."""
    from cloud_gateway.keys import ORDERS

    order = await gw.order(hub=hub, board=board, key=key, pay=True)
    paid = await gw_sim_pay(sandbox, order["payment"]["qr_id"])
    service = gw.app[ORDERS]
    await gw.app[DB].write(lambda tx: service.mark_paid_tx(
        tx, order["order_id"], paid["id"], paid["amount"], paid["currency"], "razorpay",
        "test: captured payment"))
    _, fresh = await gw.call("GET", f"/orders/{order['order_id']}", hub, expect=200)
    fresh["payment_id"] = paid["id"]
    return dict(fresh)


async def gw_sim_pay(sandbox: Sandbox, qr_id: str, **body: Any) -> dict[str, Any]:
    result = await sandbox.sim("POST", f"/_sim/qr/{qr_id}/pay", body or None)
    payment: dict[str, Any] = result["payments"][0]
    return payment
