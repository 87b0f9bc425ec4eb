"""Putting the hub together: database, uplink, serial ports, deadlines, status page, systemd.

Start order: database (checked, migrated) -> sessions resumed -> uplink tasks -> serial ports ->
status listener -> READY=1. Stop order is the reverse; every long-lived task is supervised.
"""

from __future__ import annotations

import asyncio
import logging
import time
from importlib import metadata
from typing import Any

from aiohttp import web

from edge_hub.backoff import Backoff
from edge_hub.clock import Clock
from edge_hub.config import HubConfig
from edge_hub.hub import Hub
from edge_hub.ports import PortWatcher
from edge_hub.sdnotify import Notifier
from edge_hub.store import Store
from edge_hub.supervisor import Supervisor, sleep_beating
from edge_hub.uplink.client import GatewayClient
from edge_hub.uplink.push import PushChannel
from edge_hub.uplink.sender import OutboxSender
from edge_hub.view import HubViewImpl, RecentLogs

log = logging.getLogger(__name__)

TICK_S = 0.05
PRUNE_EVERY_S = 3600.0


def _version() -> str:
    try:
        return metadata.version("upi-vend")
    except metadata.PackageNotFoundError:
        return "0+unknown"


class Daemon:
    def __init__(self, config: HubConfig, *, logs: RecentLogs | None = None,
                 notifier: Notifier | None = None, clock: Clock | None = None) -> None:
        self.config = config
        self.version = _version()
        self.started_at = time.time()
        self.clock = clock or Clock()
        self.logs = logs or RecentLogs()
        self.notifier = notifier or Notifier()
        self.supervisor = Supervisor()
        self.store: Store
        self.hub: Hub
        self.client: GatewayClient
        self.sender: OutboxSender
        self.push: PushChannel | None = None
        self.view: HubViewImpl
        self.watchers: list[PortWatcher] = []
        self._runner: web.AppRunner | None = None
        self.status_port: int | None = None
        self._watchdog: asyncio.Task[None] | None = None
        self._loop_lag = 0.0

    async def start(self) -> None:
        cfg, lim = self.config, self.config.limits
        self.store = await Store.open(cfg.db_path, self.clock, cfg.hub.id,
                                      max_rows=lim.outbox_max_rows,
                                      max_bytes=lim.outbox_max_bytes,
                                      max_age_s=lim.outbox_max_age_s)
        self.client = GatewayClient(cfg.gateway.url, cfg.hub.id, cfg.secrets.hub_secret,
                                    self.clock, request_timeout_s=cfg.gateway.request_timeout_s,
                                    refresh_margin_s=cfg.gateway.token_refresh_margin_s,
                                    token_backoff=Backoff(cfg.gateway.backoff_initial_s,
                                                          cfg.gateway.backoff_max_s))
        await self.client.start()
        self.view = HubViewImpl(self, self.logs)
        self.hub = Hub(cfg, self.store, self.client, self.clock, notify=self.view.publish)
        await self.hub.load()
        g = cfg.gateway
        sup = self.supervisor
        self.sender = OutboxSender(self.store.outbox, self.client, batch=lim.outbox_batch,
                                   pipeline=lim.outbox_pipeline,
                                   backoff=Backoff(g.backoff_initial_s, g.backoff_max_s),
                                   beat=lambda: sup.beat("outbox"))
        self.hub.wake_sender = self.sender.wake
        self.push = PushChannel(self.client, cursor=self.store.cursor,
                                apply=self.hub.apply_command, mode=g.push,
                                long_poll_wait_s=g.long_poll_wait_s, heartbeat_s=g.ws_heartbeat_s,
                                backoff=Backoff(g.backoff_initial_s, g.backoff_max_s),
                                beat=lambda: sup.beat("push"))
        sup.start("outbox", self.sender.run)
        sup.start("push", self.push.run)
        sup.start("deadlines", self._deadlines)
        sup.start("telemetry", self._telemetry)
        for i, port in enumerate(cfg.boards):
            name = f"ports[{i}]"
            watcher = PortWatcher(port, self.hub, retry_initial_s=lim.port_retry_initial_s,
                                  retry_max_s=lim.port_retry_max_s,
                                  beat=lambda n=name: sup.beat(n))  # type: ignore[misc]
            self.watchers.append(watcher)
            sup.start(name, watcher.run)
        if cfg.status.enabled:
            await self._start_status()
        self._watchdog = asyncio.create_task(self._watchdog_loop(), name="watchdog")
        self.notifier.notify("READY=1", f"STATUS={self.status_line()}")
        log.info("edge hub %s up: hub %s, %d port entries, gateway %s", self.version, cfg.hub.id,
                 len(cfg.boards), cfg.gateway.url)

    async def _start_status(self) -> None:
        from edge_hub.status import StatusSettings, TechUser, create_status_app

        cfg = self.config
        if not cfg.users:
            log.warning("status page enabled but no [[status.users]] configured: not served")
            return
        settings = StatusSettings(users=tuple(TechUser(u.name, u.password_hash)
                                              for u in cfg.users),
                                  cookie_secure=cfg.status.cookie_secure,
                                  session_ttl_s=cfg.status.session_ttl_s)
        app = create_status_app(self.view, settings)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, cfg.status.host, cfg.status.port)
        await site.start()
        server = getattr(site, "_server", None)
        sockets = getattr(server, "sockets", None) or []
        self.status_port = sockets[0].getsockname()[1] if sockets else cfg.status.port
        log.info("status page on http://%s:%s/", cfg.status.host, self.status_port)

    def status_line(self) -> str:
        boards = self.hub.boards.values()
        up = sum(1 for b in boards if b.link_up)
        reason = self.hub.not_taking_orders_reason
        return (f"boards {up}/{len(self.hub.boards)} up; outbox {self.store.outbox.depth}; "
                f"gateway {'up' if self.client.connected else 'down'}"
                + (f"; NOT TAKING ORDERS: {reason}" if reason else ""))

    async def _deadlines(self) -> None:
        while True:
            self.supervisor.beat("deadlines")
            await self.hub.tick()
            await asyncio.sleep(TICK_S)

    async def _telemetry(self) -> None:
        """Batched telemetry commits, outbox limits, and (hourly) old-session retention."""
        next_prune = 0.0
        while True:
            self.supervisor.beat("telemetry")
            if time.monotonic() >= next_prune:
                pruned = await self.store.prune_sessions(self.config.limits.session_retention_s)
                if pruned:
                    log.info("deleted %d finished vend sessions past retention", pruned)
                next_prune = time.monotonic() + PRUNE_EVERY_S
            if await self.store.outbox.flush_telemetry():
                self.sender.wake()
            await self.store.outbox.enforce_limits()
            await sleep_beating(self.config.limits.telemetry_flush_s,
                                lambda: self.supervisor.beat("telemetry"))

    async def _watchdog_loop(self) -> None:
        """WATCHDOG=1 only while the loop runs on time and every supervised task progresses."""
        interval = (self.notifier.watchdog_s or 10.0) / 3
        stall = self.config.limits.watchdog_stall_s
        last_status = ""
        while True:
            before = time.monotonic()
            await asyncio.sleep(interval)
            self._loop_lag = time.monotonic() - before - interval
            ok, why = self.supervisor.healthy(stall)
            if ok and self._loop_lag > stall:
                ok, why = False, f"event loop lagging {self._loop_lag:.1f} s"
            status = self.status_line()
            lines = [f"STATUS={status}"] if status != last_status else []
            last_status = status
            if ok:
                lines.append("WATCHDOG=1")
            else:
                log.error("not pinging the systemd watchdog: %s", why)
            if lines:
                self.notifier.notify(*lines)

    async def stop(self) -> None:
        self.notifier.notify("STOPPING=1")
        log.info("edge hub stopping")
        if self._watchdog is not None:
            self._watchdog.cancel()
            await asyncio.gather(self._watchdog, return_exceptions=True)
        if self._runner is not None:
            await self._runner.cleanup()
        await self.supervisor.stop()
        await self.hub.stop()
        await self.client.close()
        await self.store.close()

    async def abort(self) -> None:
        """Stop without any cleanup of state (tests: what a power cut leaves behind)."""
        if self._watchdog is not None:
            self._watchdog.cancel()
        if self._runner is not None:
            await self._runner.cleanup()
        await self.supervisor.stop()
        await self.hub.stop()
        await self.client.close()
        await self.store.close_connections()

    def info(self) -> dict[str, Any]:
        return {"status_port": self.status_port, "ports": [w.settings.port
                                                           for w in self.watchers]}
