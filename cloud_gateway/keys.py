"""Every `web.AppKey` of the gateway application, in one place.

Route handlers and middlewares read resources with `request.app[KEY]`; `app.create_app` sets
them (resources that need the loop are opened in its cleanup_ctx). Modules added later (webhooks,
refunds, reconciler) put their keys here too.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aiohttp import web

from .auth import Authenticator, HubIdentity
from .commands import CommandQueue
from .db import Database
from .hub_sync import HubSync
from .metrics import Metrics
from .orders.service import OrderService
from .ratelimit import RateLimiter
from .razorpay_client import RazorpayClient
from .settings import Settings

SETTINGS = web.AppKey("settings", Settings)
CLOCK = web.AppKey("clock", Callable[[], float])
DB = web.AppKey("db", Database)
RAZORPAY = web.AppKey("razorpay", RazorpayClient)  # or a RazorpayProcessPool: same methods
COMMANDS = web.AppKey("commands", CommandQueue)
ORDERS = web.AppKey("orders", OrderService)
HUB_SYNC = web.AppKey("hub_sync", HubSync)
AUTH = web.AppKey("auth", Authenticator)
METRICS = web.AppKey("metrics", Metrics)
HUB_LIMITER = web.AppKey("hub_limiter", RateLimiter)
AUTH_LIMITER = web.AppKey("auth_limiter", RateLimiter)
READY = web.AppKey("ready", dict[str, bool])
OPENAPI_DOC = web.AppKey("openapi", dict[str, Any])

# per-request values set by the middlewares
REQUEST_HUB = web.RequestKey("hub", HubIdentity)  # the authenticated hub of an auth=True route
REQUEST_ID = web.RequestKey("request_id", str)

__all__ = [
    "AUTH", "AUTH_LIMITER", "CLOCK", "COMMANDS", "DB", "HUB_LIMITER", "HUB_SYNC", "METRICS",
    "OPENAPI_DOC", "ORDERS", "RAZORPAY", "READY", "REQUEST_HUB", "REQUEST_ID", "SETTINGS",
    "HubIdentity",
]
