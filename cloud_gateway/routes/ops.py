"""Operations: /healthz (the process answers), /readyz (database and background tasks up),
/metrics (Prometheus text), /openapi.json."""

from __future__ import annotations

from aiohttp import web

from protocol import hub_api as api

from ..http import RouteSpec, json_response
from ..keys import DB, METRICS, OPENAPI_DOC, READY


async def healthz(request: web.Request) -> web.Response:
    return json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    checks = dict(request.app[READY])
    try:
        request.app[DB].query_one("SELECT 1")
        checks["database"] = True
    except Exception:  # any failure means not ready; the answer says which check failed
        checks["database"] = False
    ready = all(checks.values())
    return json_response({"status": "ready" if ready else "not_ready", "checks": checks},
                         200 if ready else 503)


async def metrics(request: web.Request) -> web.Response:
    return web.Response(text=request.app[METRICS].render(),
                        content_type="text/plain", charset="utf-8",
                        headers={"X-Prometheus-Format": "0.0.4"})


async def openapi(request: web.Request) -> web.Response:
    return json_response(request.app[OPENAPI_DOC])


ROUTES = (
    RouteSpec("GET", api.HEALTHZ, healthz, "Liveness", auth=False),
    RouteSpec("GET", api.READYZ, readyz, "Readiness (503 until ready)", auth=False),
    RouteSpec("GET", api.METRICS, metrics, "Prometheus metrics (text format)", auth=False),
    RouteSpec("GET", api.OPENAPI, openapi, "This document", auth=False),
)
