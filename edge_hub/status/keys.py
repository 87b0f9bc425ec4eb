"""Every typed key of the status app, in one place."""

from __future__ import annotations

import asyncio

from aiohttp import web

from .auth import LoginLimiter, Session, SessionStore
from .settings import StatusSettings
from .view import HubView

VIEW = web.AppKey("status_view", HubView)
SETTINGS = web.AppKey("status_settings", StatusSettings)
SESSIONS = web.AppKey("status_sessions", SessionStore)
LIMITER = web.AppKey("status_login_limiter", LoginLimiter)
# Password checks run in threads; this bounds how many run at once (scrypt uses 16 MiB each).
VERIFY_SLOTS = web.AppKey("status_verify_slots", asyncio.Semaphore)
# Live event streams, cancelled at shutdown so the hub stops promptly.
STREAMS: web.AppKey[set[asyncio.Task[None]]] = web.AppKey("status_streams")

# Request-scoped: the Session of a logged-in technician, and the id every answer carries.
REQUEST_SESSION = web.RequestKey("status_session", Session)
REQUEST_ID = web.RequestKey("status_request_id", str)
