"""The one error shape of the sandbox: Razorpay's envelope, on every non-2xx answer."""

from __future__ import annotations

import json
from typing import Any, Literal

from aiohttp import web

ErrorCode = Literal["BAD_REQUEST_ERROR", "GATEWAY_ERROR", "SERVER_ERROR"]


class SandboxError(Exception):
    """A refusal the sandbox answers with Razorpay's error envelope."""

    def __init__(
        self,
        description: str,
        *,
        status: int = 400,
        code: ErrorCode = "BAD_REQUEST_ERROR",
        field: str | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(description)
        self.description = description
        self.status = status
        self.code: ErrorCode = code
        self.field = field
        self.metadata = metadata or {}


def envelope(
    description: str,
    *,
    code: ErrorCode = "BAD_REQUEST_ERROR",
    field: str | None = None,
    metadata: dict[str, Any] | None = None,
) -> dict[str, Any]:
    source = "business" if code == "BAD_REQUEST_ERROR" else "internal"
    return {
        "error": {
            "code": code,
            "description": description,
            "source": source,
            "step": "NA",
            "reason": "input_validation_failed" if field else "NA",
            "metadata": metadata or {},
            "field": field,
        }
    }


def error_response(exc: SandboxError) -> web.Response:
    body = envelope(exc.description, code=exc.code, field=exc.field, metadata=exc.metadata)
    return web.Response(
        status=exc.status, text=json.dumps(body), content_type="application/json"
    )


def not_found(what: str) -> SandboxError:
    return SandboxError("The id provided does not exist", field="id", metadata={"id": what})
