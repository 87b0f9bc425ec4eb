"""The application factory: `create_app(settings) -> web.Application`.

The CLI (`cloud-gateway serve`) and the tests call it. Resources that need the running loop are
opened in `cleanup_ctx` generators, so they close in reverse order: database, then the Razorpay
adapter, then the services built on both. Every key is in `keys.py`; every route in
`routes.ALL_ROUTES`. `clock` (Unix seconds) is injectable so tests can move time.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import weakref
from collections.abc import AsyncIterator, Callable

from aiohttp import web

from .auth import Authenticator
from .commands import CommandQueue
from .db import Database, DatabaseError
from .hub_sync import HubSync
from .keys import (
    AUTH,
    AUTH_LIMITER,
    CLOCK,
    COMMANDS,
    DB,
    HUB_LIMITER,
    HUB_SYNC,
    METRICS,
    OPENAPI_DOC,
    ORDERS,
    RAZORPAY,
    READY,
    SETTINGS,
)
from .metrics import Metrics
from .middleware import SPECS, auth_middleware, context_middleware, error_middleware
from .money import MONEY_ROUTES, money_ctx
from .openapi import build
from .orders.service import OrderService
from .ratelimit import RateLimiter
from .razorpay_client import RazorpayClient, RazorpaySettings
from .razorpay_pool import RazorpayProcessPool
from .routes import ALL_ROUTES
from .routes.hub import SOCKETS, close_sockets
from .settings import Settings

AUTH_BURST = 10
log = logging.getLogger(__name__)


async def _database(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    db = Database(settings.db_path, max_batch=settings.commit_max_batch,
                  checkpoint_interval_s=settings.checkpoint_interval_s, clock=app[CLOCK])
    await db.open()
    app[DB] = db
    app[READY]["database"] = True
    yield
    app[READY]["database"] = False
    await db.close()


async def _razorpay(app: web.Application) -> AsyncIterator[None]:
    s = app[SETTINGS]
    rzp = RazorpaySettings(
        key_id=s.razorpay_key_id, key_secret=s.razorpay_key_secret.reveal(),
        base_url=s.razorpay_base_url or None, timeout_s=s.razorpay_timeout_s,
        threads=s.razorpay_threads)
    client: RazorpayClient | RazorpayProcessPool
    if s.razorpay_processes > 0:
        pool = RazorpayProcessPool(rzp, s.razorpay_processes)
        await pool.start()
        client = pool
    else:
        client = RazorpayClient(rzp)
    app[RAZORPAY] = client  # type: ignore[assignment]  # same methods, see razorpay_pool
    yield
    await client.aclose()


async def _services(app: web.Application) -> AsyncIterator[None]:
    s, db, clock, metrics = app[SETTINGS], app[DB], app[CLOCK], app[METRICS]
    commands = CommandQueue(db, clock)
    orders = OrderService(db, commands, app[RAZORPAY], s, clock)
    app[COMMANDS] = commands
    app[ORDERS] = orders
    app[AUTH] = Authenticator(db, s.token_key.reveal(), s.token_audience, s.token_ttl_s,
                              s.token_leeway_s, clock)
    app[HUB_SYNC] = HubSync(db, orders, metrics)
    metrics.add_gauge("gateway_commands_pending", "Commands queued for hubs and not yet acked.",
                      commands.pending_count)
    app[READY]["services"] = True
    pruner = asyncio.create_task(_prune_forever(app), name="prune")
    yield
    app[READY]["services"] = False
    pruner.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await pruner
    await orders.aclose()


PRUNE_EVERY_S = 3600.0


async def _prune_forever(app: web.Application) -> None:
    """Retention (`retention_days`): hourly, and once at start."""
    db, clock, days = app[DB], app[CLOCK], app[SETTINGS].retention_days
    while True:
        before = int(clock()) - days * 86400
        try:
            await db.write(lambda tx, before=before: HubSync.prune_tx(tx, before))
        except DatabaseError as exc:  # logged and retried next hour; never fatal
            log.warning("pruning failed: %s", exc)
        await asyncio.sleep(PRUNE_EVERY_S)


def create_app(settings: Settings, *, clock: Callable[[], float] = time.time) -> web.Application:
    settings.check_serving()
    app = web.Application(client_max_size=settings.max_request_bytes,
                          middlewares=[context_middleware, error_middleware, auth_middleware])
    app[SETTINGS] = settings
    app[CLOCK] = clock
    app[METRICS] = Metrics()
    app[READY] = {"database": False, "services": False}
    app[HUB_LIMITER] = RateLimiter(settings.rate_limit_per_s, settings.rate_limit_burst)
    app[AUTH_LIMITER] = RateLimiter(settings.auth_rate_limit_per_s, AUTH_BURST)
    app[SOCKETS] = weakref.WeakSet()
    specs = {}
    for spec in (*ALL_ROUTES, *MONEY_ROUTES):
        app.router.add_route(spec.method, spec.path, spec.handler)
        specs[spec.handler] = spec
    app[SPECS] = specs
    app[OPENAPI_DOC] = build((*ALL_ROUTES, *MONEY_ROUTES))
    app.cleanup_ctx.extend([_database, _razorpay, _services, money_ctx])
    app.on_shutdown.append(close_sockets)
    return app


__all__ = ["create_app"]
