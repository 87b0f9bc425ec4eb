"""The sandbox app factory: routes, Basic auth, fault injection and the one error envelope."""

from __future__ import annotations

import asyncio
import base64
import binascii
import hmac
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any

import aiohttp
from aiohttp import web

from . import api, sim
from .config import SandboxConfig
from .errors import ErrorCode, SandboxError, envelope, error_response
from .faults import ApiErrorKind, Faults
from .keys import CONFIG_KEY, SANDBOX_KEY
from .runtime import Sandbox

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
MAX_BODY = 1024 * 1024
_HTML_502 = "<html><head><title>502 Bad Gateway</title></head><body>bad gateway</body></html>"


def _authorised(request: web.Request) -> bool:
    """HTTP Basic key_id:key_secret, compared in constant time."""
    scheme, _, encoded = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "basic":
        return False
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True)
    except (binascii.Error, ValueError):
        return False
    login, sep, password = decoded.partition(b":")
    cfg = request.app[SANDBOX_KEY].config
    return bool(sep) & hmac.compare_digest(login, cfg.key_id.encode()) & hmac.compare_digest(
        password, cfg.key_secret.encode()
    )


def _injected_error(kind: ApiErrorKind) -> web.Response:
    if kind == "html":  # what a proxy in front of an API sends: not the envelope
        return web.Response(status=502, text=_HTML_502, content_type="text/html")
    if kind == "gateway":
        return error_response(SandboxError(
            "Gateway is not responding (injected)", status=502, code="GATEWAY_ERROR"))
    return error_response(SandboxError(
        "The server encountered an error (injected)", status=500, code="SERVER_ERROR"))


def _http_error(exc: web.HTTPException) -> web.Response:
    if exc.status == 404:
        return error_response(SandboxError("The requested URL was not found on the server."))
    if exc.status == 405:
        return error_response(SandboxError(
            "The requested method is not allowed for the URL.", status=405))
    code: ErrorCode = "SERVER_ERROR" if exc.status >= 500 else "BAD_REQUEST_ERROR"
    return error_response(SandboxError(exc.reason or "error", status=exc.status, code=code))


@web.middleware
async def sandbox_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    sb = request.app[SANDBOX_KEY]
    is_api = request.path.startswith("/v1/") or request.path == "/v1"
    try:
        if is_api:
            if not _authorised(request):
                return error_response(SandboxError("Authentication failed", status=401))
            kind = sb.faults.take_api_error()
            if kind is not None:
                log.info("sandbox: injected %s error on %s %s", kind, request.method, request.path)
                return _injected_error(kind)
        response = await handler(request)
    except SandboxError as exc:
        response = error_response(exc)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        response = _http_error(exc)
    except asyncio.CancelledError:
        raise
    except Exception:
        log.exception("sandbox: internal error on %s %s", request.method, request.path)
        response = web.json_response(
            envelope("The server encountered an error.", code="SERVER_ERROR"), status=500
        )
    if is_api:
        slow = sb.faults.take_api_slow()
        if slow > 0:
            await asyncio.sleep(slow)  # the effect happened; the answer is late
    return response


def create_sandbox_app(
    config: SandboxConfig, *, faults: Mapping[str, Any] | None = None
) -> web.Application:
    """An offline Razorpay: /v1 for the SDK, /_sim for tests and the demo (see README.md)."""
    app = web.Application(middlewares=[sandbox_middleware], client_max_size=MAX_BODY)
    app[CONFIG_KEY] = config
    initial_faults = dict(faults or {})
    Faults().update(initial_faults)  # refuse bad knobs now, not at startup

    async def lifecycle(app: web.Application) -> AsyncIterator[None]:
        session = aiohttp.ClientSession()
        sandbox = Sandbox(app[CONFIG_KEY], session)
        sandbox.faults.update(initial_faults)
        app[SANDBOX_KEY] = sandbox
        try:
            yield
        finally:
            await sandbox.aclose()
            await session.close()

    app.cleanup_ctx.append(lifecycle)
    app.add_routes(api.routes)
    app.add_routes(sim.routes)
    return app
