"""A whole site in-process: the Razorpay sandbox, the real gateway, a hub, SimBoards on ptys."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from cloud_gateway.app import create_app
from cloud_gateway.auth import add_hub_tx, hash_secret
from cloud_gateway.catalog import parse_catalog, replace_catalog_tx
from cloud_gateway.keys import DB
from cloud_gateway.sandbox import SandboxConfig, create_sandbox_app
from cloud_gateway.settings import Secret, Settings
from edge_hub.clock import Clock
from edge_hub.config import HubConfig, parse_config
from edge_hub.daemon import Daemon
from edge_hub.sdnotify import Notifier
from edge_hub.simboard import Behaviour, SimBoard

HUB_ID = "hub-1"
HUB_SECRET = "hub-1-secret-for-tests"
MASTER_KEY = bytes(range(32))
ENV = {"EDGE_HUB_SECRET": HUB_SECRET, "EDGE_HUB_MASTER_KEY": MASTER_KEY.hex()}
CATALOG = {"products": [
    {"code": "espresso", "name": "Espresso", "price": 2000,
     "options": [{"code": "sugar", "name": "Sugar", "price": 0},
                 {"code": "extra-shot", "name": "Extra shot", "price": 1500}]},
    {"code": "latte", "name": "Latte", "price": 3500, "options": []},
    {"code": "water", "name": "Water", "price": 1000, "options": []},
]}
FAST_LIMITS = {"order_timeout_s": 1.0, "vend_start_grace_s": 0.3, "vend_result_timeout_s": 3.0,
               "vend_unknown_wait_s": 2.0, "status_retry_s": 0.3, "port_retry_initial_s": 0.05,
               "port_retry_max_s": 0.3, "telemetry_flush_s": 0.05, "min_free_bytes": 0}


@pytest.fixture(autouse=True)
async def no_leaked_tasks() -> AsyncIterator[None]:
    yield
    await asyncio.sleep(0.01)
    current = asyncio.current_task()
    leaked = [t for t in asyncio.all_tasks() if t is not current and not t.done()]
    assert not leaked, f"tasks leaked: {leaked}"


async def serve(app: web.Application, port: int = 0) -> tuple[web.AppRunner, str]:
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    return runner, f"http://127.0.0.1:{runner.addresses[0][1]}"


async def eventually(pred: Callable[[], Any], timeout_s: float = 5.0, what: str = "") -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        value = pred()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or pred}")
        await asyncio.sleep(0.02)


@dataclass
class Site:
    tmp: Path
    http: aiohttp.ClientSession
    sandbox_url: str = ""
    gateway_url: str = ""
    gateway_port: int = 0
    gateway_app: web.Application | None = None
    gateway_runner: web.AppRunner | None = None
    sandbox_runner: web.AppRunner | None = None
    hub: Daemon | None = None
    boards: list[SimBoard] = field(default_factory=list)
    gw_settings: Settings | None = None

    # --- the gateway ---------------------------------------------------------------------------
    async def start_gateway(self) -> None:
        assert self.gw_settings is not None
        self.gateway_app = create_app(self.gw_settings)
        self.gateway_runner, url = await serve(self.gateway_app, self.gateway_port)
        self.gateway_port = int(url.rsplit(":", 1)[1])
        self.gateway_url = url

    async def stop_gateway(self) -> None:
        if self.gateway_runner is not None:
            await self.gateway_runner.cleanup()
            self.gateway_runner = None

    async def order(self, order_id: str) -> dict[str, Any]:
        token = await self.token()
        async with self.http.get(f"{self.gateway_url}/orders/{order_id}",
                                 headers={"Authorization": f"Bearer {token}"}) as r:
            assert r.status == 200, await r.text()
            return dict(await r.json())

    async def token(self) -> str:
        async with self.http.post(f"{self.gateway_url}/auth/token",
                                  json={"hub_id": HUB_ID, "secret": HUB_SECRET}) as r:
            assert r.status == 200, await r.text()
            return str((await r.json())["token"])

    async def pay(self, order: dict[str, Any], **body: Any) -> dict[str, Any]:
        """The customer pays the order's QR in the sandbox (its webhook reaches the gateway)."""
        qr_id = order["payment"]["qr_id"]
        async with self.http.post(f"{self.sandbox_url}/_sim/qr/{qr_id}/pay", json=body) as r:
            assert r.status == 200, await r.text()
            paid = dict(await r.json())
        return paid

    async def ledger(self) -> dict[str, Any]:
        async with self.http.get(f"{self.sandbox_url}/_sim/ledger") as r:
            return dict(await r.json())

    # --- the hub -------------------------------------------------------------------------------
    def hub_config(self, *, status: dict[str, Any] | None = None,
                   gateway: dict[str, Any] | None = None, **limits: Any) -> HubConfig:
        data = {"hub": {"id": HUB_ID, "data_dir": str(self.tmp / "hub")},
                "gateway": {"url": self.gateway_url, "backoff_initial_s": 0.05,
                            "backoff_max_s": 0.3, "request_timeout_s": 2.0,
                            "long_poll_wait_s": 1.0, "ws_heartbeat_s": 2.0, **(gateway or {})},
                "limits": {**FAST_LIMITS, **limits},
                "status": status or {"enabled": False},
                "boards": [{"port": str(self.tmp / "tty-*")}]}
        return parse_config(data, source="test", env=ENV)

    async def start_hub(self, *, status: dict[str, Any] | None = None,
                        notifier: Notifier | None = None, **limits: Any) -> Daemon:
        self.hub = Daemon(self.hub_config(status=status, **limits),
                          notifier=notifier or Notifier({}), clock=Clock("boot-t"))
        await self.hub.start()
        return self.hub

    async def start_hub_with(self, *, gateway: dict[str, Any]) -> Daemon:
        self.hub = Daemon(self.hub_config(gateway=gateway), notifier=Notifier({}),
                          clock=Clock("boot-t"))
        await self.hub.start()
        return self.hub

    async def stop_hub(self, *, abrupt: bool = False) -> None:
        if self.hub is not None:
            await (self.hub.abort() if abrupt else self.hub.stop())
            self.hub = None

    async def add_board(self, n: int, *, master_key: bytes | None = MASTER_KEY,
                        behaviour: Behaviour | None = None) -> SimBoard:
        board = SimBoard(bytes([0xB0, n]) + bytes(10), master_key,
                         link_path=self.tmp / f"tty-{n:02d}",
                         behaviour=behaviour or Behaviour(seed=n, hello_retry_s=0.2))
        await board.start()
        self.boards.append(board)
        return board

    def session(self, order_id: str) -> Any:
        assert self.hub is not None
        return self.hub.hub.session_for_order(order_id)


@pytest.fixture
async def site(tmp_path: Path) -> AsyncIterator[Site]:
    async with make_site(tmp_path) as s:
        yield s


@contextlib.asynccontextmanager
async def make_site(tmp_path: Path) -> AsyncIterator[Site]:
    async with aiohttp.ClientSession() as http:
        s = Site(tmp=tmp_path, http=http)
        sb_cfg = SandboxConfig(webhook_retry_base_s=0.05, qr_min_lead_s=0)
        s.sandbox_runner, s.sandbox_url = await serve(create_sandbox_app(sb_cfg))
        s.gw_settings = Settings(
            data_dir=str(tmp_path / "gw"), razorpay_key_id=sb_cfg.key_id,
            razorpay_key_secret=Secret(sb_cfg.key_secret), razorpay_base_url=s.sandbox_url,
            webhook_secret=Secret(sb_cfg.webhook_secret), token_key=Secret("k" * 40),
            log_json=False, razorpay_processes=0, qr_ttl_s=60, vend_deadline_s=10,
            reconcile_interval_s=3600.0,
            long_poll_max_s=5.0, ws_heartbeat_s=2.0, rate_limit_per_s=10_000.0,
            rate_limit_burst=10_000, auth_rate_limit_per_s=1000.0)
        await s.start_gateway()
        assert s.gateway_app is not None
        secret_hash = hash_secret(HUB_SECRET)
        catalog = parse_catalog(CATALOG, "test catalog")

        def setup(tx: Any) -> None:
            add_hub_tx(tx, HUB_ID, "site-1", secret_hash)
            replace_catalog_tx(tx, catalog)

        await s.gateway_app[DB].write(setup)
        async with http.post(f"{s.sandbox_url}/_sim/config",
                             json={"webhook_url": f"{s.gateway_url}/webhooks/razorpay"}) as r:
            assert r.status == 200, await r.text()
        try:
            yield s
        finally:
            try:
                await s.stop_hub()
            finally:  # whatever the hub did, the rest of the site goes down too
                for b in s.boards:
                    with contextlib.suppress(Exception):
                        await b.stop()
                await s.stop_gateway()
                await s.sandbox_runner.cleanup()


async def webhook_log(site: Site) -> Any:
    async with site.http.get(f"{site.sandbox_url}/_sim/webhooks") as r:
        return await r.json()
