"""The gateway's middlewares: request context, the ONE error shape, hub auth and rate limits.

`create_app` installs `[context_middleware, error_middleware, auth_middleware]` in that order.
* `context_middleware`: request id (X-Request-Id in and out), log context, request metrics by
  route template, one access log line per request.
* `error_middleware`: the only place that turns exceptions into HTTP answers, all in the shape
  `{"error": protocol.hub_api.ErrorBody}`; unexpected exceptions are logged and answered 500
  without internals. CancelledError passes through untouched.
* `auth_middleware`: routes declared with `auth=True` need a valid hub token; the hub is then
  rate limited (429 + Retry-After). POST /auth/token is rate limited per hub id in its handler
  (per address would lump every hub behind one reverse proxy together).
"""

from __future__ import annotations

import logging
import re
import time

from aiohttp import web

from protocol.hub_api import ErrorResponse

from .errors import GatewayError
from .http import Handler, RouteSpec, json_response
from .ids import new_request_id
from .keys import AUTH, HUB_LIMITER, METRICS, REQUEST_HUB, REQUEST_ID
from .logs import HUB_ID
from .logs import REQUEST_ID as REQUEST_ID_VAR

log = logging.getLogger(__name__)

SPECS = web.AppKey("route_specs", dict[Handler, RouteSpec])
_REQUEST_ID_RE = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")
_HTTP_CODES = {400: "bad_request", 404: "not_found", 405: "method_not_allowed",
               413: "request_too_large", 415: "unsupported_media_type"}


def error_body(status: int, code: str, message: str, details: dict[str, object],
               request_id: str) -> ErrorResponse:
    return {"error": {"code": code, "message": message, "status": status, "details": details,
                      "request_id": request_id}}


def _route_label(request: web.Request) -> str:
    route = request.match_info.route
    resource = route.resource
    return resource.canonical if resource is not None else "unmatched"


@web.middleware
async def context_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    incoming = request.headers.get("X-Request-Id", "")
    request_id = incoming if _REQUEST_ID_RE.match(incoming) else new_request_id()
    request[REQUEST_ID] = request_id
    token = REQUEST_ID_VAR.set(request_id)
    hub_token = HUB_ID.set(None)
    started = time.perf_counter()
    status = 500
    try:
        response = await handler(request)
        status = response.status
        if not response.prepared:
            response.headers["X-Request-Id"] = request_id
        return response
    finally:
        elapsed = time.perf_counter() - started
        route = _route_label(request)
        metrics = request.app[METRICS]
        metrics.inc("gateway_http_requests_total",
                    {"route": route, "method": request.method, "status": str(status)})
        metrics.observe("gateway_http_request_duration_seconds", {"route": route}, elapsed)
        log.debug("%s %s %s", request.method, route, status,
                  extra={"status": status, "ms": round(elapsed * 1000, 2)})
        HUB_ID.reset(hub_token)
        REQUEST_ID_VAR.reset(token)


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    request_id = request.get(REQUEST_ID, "")
    try:
        return await handler(request)
    except GatewayError as exc:
        if exc.status >= 500:
            log.warning("request failed: %s", exc.message, extra={"code": exc.code})
        response = json_response(
            error_body(exc.status, exc.code, exc.message, exc.details, request_id), exc.status)
        response.headers.update(exc.headers)
        return response
    except web.HTTPException as exc:
        if exc.status < 400:
            raise  # redirects are not errors
        code = _HTTP_CODES.get(exc.status, "http_error")
        message = exc.reason if exc.status != 404 else f"no route {request.method} {request.path}"
        details: dict[str, object] = {}
        if exc.status == 405:
            allowed = exc.headers.get("Allow", "")
            details["allowed"] = [m for m in allowed.split(",") if m]
        return json_response(error_body(exc.status, code, message, details, request_id),
                             exc.status)
    except Exception:
        log.exception("unhandled error")
        return json_response(error_body(500, "internal_error", "internal error", {}, request_id),
                             500)


@web.middleware
async def auth_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    spec = request.app[SPECS].get(request.match_info.handler)
    if spec is not None and spec.auth:
        hub = request.app[AUTH].authenticate(request.headers.get("Authorization"))
        request[REQUEST_HUB] = hub
        HUB_ID.set(hub.hub_id)
        request.app[HUB_LIMITER].check(hub.hub_id)
    return await handler(request)


__all__ = ["SPECS", "auth_middleware", "context_middleware", "error_body", "error_middleware"]
