"""The status app factory: `create_status_app(view, settings) -> web.Application`."""

from __future__ import annotations

import asyncio

from aiohttp import web

from . import api, login
from .assets import STATIC_FILES, index, static_handler, static_route_name
from .auth import LoginLimiter, SessionStore
from .errors import error_middleware
from .events import api_events, close_streams
from .keys import LIMITER, SESSIONS, SETTINGS, STREAMS, VERIFY_SLOTS, VIEW
from .security import add_security_headers, auth_middleware
from .settings import StatusSettings
from .view import HubView

MAX_BODY = 64 * 1024  # technician requests are small
CONCURRENT_PASSWORD_CHECKS = 2


def create_status_app(view: HubView, settings: StatusSettings) -> web.Application:
    """The technician page and its JSON API, to run on the hub's status address."""
    app = web.Application(middlewares=[error_middleware, auth_middleware], client_max_size=MAX_BODY)
    app[VIEW] = view
    app[SETTINGS] = settings
    app[SESSIONS] = SessionStore(settings.session_ttl_s, settings.max_sessions)
    app[LIMITER] = LoginLimiter(settings.login_max_failures, settings.login_window_s)
    app[VERIFY_SLOTS] = asyncio.Semaphore(CONCURRENT_PASSWORD_CHECKS)
    app[STREAMS] = set()
    app.on_response_prepare.append(add_security_headers)
    app.on_shutdown.append(close_streams)

    r = app.router
    r.add_get("/", index, name="index")
    r.add_get("/login", login.login_page, name="login_page")
    r.add_post("/login", login.login_submit, name="login_submit")
    for filename in STATIC_FILES:
        r.add_get(
            f"/static/{filename}",
            static_handler(filename),
            name=static_route_name(filename),
        )
    r.add_post("/api/login", login.api_login, name="api_login")
    r.add_post("/api/logout", login.api_logout, name="api_logout")
    r.add_get("/api/session", login.api_session, name="api_session")
    r.add_get("/api/overview", api.api_overview, name="api_overview")
    r.add_get("/api/boards", api.api_boards, name="api_boards")
    r.add_get("/api/orders", api.api_orders, name="api_orders")
    r.add_get("/api/logs", api.api_logs, name="api_logs")
    r.add_get("/api/events", api_events, name="api_events")
    r.add_post("/api/sync", api.api_sync, name="api_sync")
    r.add_post("/api/boards/{board_uid}/service", api.api_set_service, name="api_set_service")
    r.add_post("/api/boards/{board_uid}/resend", api.api_resend, name="api_resend")
    r.add_post("/api/support-bundle", api.api_support_bundle, name="api_support_bundle")
    return app


__all__ = ["create_status_app"]
