"""The one error shape of the status API, the same as the hub <-> gateway API's.

`{"error": {"code", "message", "status", "details", "request_id"}}`; raised as `StatusError`
anywhere in a handler and turned into a response only by `error_middleware`.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from aiohttp import web

from .keys import REQUEST_ID

logger = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    415: "unsupported_media_type",
    429: "rate_limited",
}


class StatusError(Exception):
    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        details: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = dict(details or {})
        self.headers = dict(headers or {})


def error_response(
    request: web.Request,
    status: int,
    code: str,
    message: str,
    details: Mapping[str, Any] | None = None,
    headers: Mapping[str, str] | None = None,
) -> web.Response:
    request_id = request.get(REQUEST_ID) or uuid.uuid4().hex
    body = {
        "error": {
            "code": code,
            "message": message,
            "status": status,
            "details": dict(details or {}),
            "request_id": request_id,
        }
    }
    return web.Response(
        status=status,
        text=json.dumps(body),
        content_type="application/json",
        headers={**(headers or {}), "X-Request-Id": request_id},
    )


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    request[REQUEST_ID] = uuid.uuid4().hex
    try:
        return await handler(request)
    except StatusError as exc:
        return error_response(request, exc.status, exc.code, exc.message, exc.details, exc.headers)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise  # redirects pass through
        code = _CODES.get(exc.status, "http_error")
        return error_response(request, exc.status, code, exc.reason)
    except Exception:
        logger.exception("status page: %s %s failed", request.method, request.path)
        return error_response(
            request, 500, "internal_error", "the hub failed to answer; see the hub log"
        )


__all__ = ["StatusError", "error_middleware", "error_response"]
