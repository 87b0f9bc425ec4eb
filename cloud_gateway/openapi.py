"""The OpenAPI 3.1 document, built from the route table (`routes.ALL_ROUTES`) and the
TypedDicts of `protocol.hub_api`, so a route cannot exist without being documented.
`build(routes)` is called once by `create_app`; GET /openapi.json serves the result."""

from __future__ import annotations

import re
from typing import Any

from protocol.hub_api import API_VERSION, ErrorResponse

from .http import RouteSpec
from .schemas import json_schema

_ERROR_STATUSES = {"400": "Invalid request", "401": "Missing or bad token",
                   "403": "Another hub's resource", "404": "Not found",
                   "409": "Invalid state (details.state is the current one)",
                   "429": "Rate limited (Retry-After)", "502": "Razorpay failed",
                   "503": "Unavailable"}


def build(routes: tuple[RouteSpec, ...]) -> dict[str, Any]:
    defs: dict[str, Any] = {}
    error_ref = json_schema(ErrorResponse, defs)
    paths: dict[str, dict[str, Any]] = {}
    for spec in routes:
        op: dict[str, Any] = {"summary": spec.summary,
                              "operationId": spec.handler.__name__}
        params = [{"name": n, "in": "path", "required": True, "schema": {"type": "string"}}
                  for n in re.findall(r"{(\w+)}", spec.path)]
        params += [{"name": n, "in": "query", "required": False,
                    "schema": {"type": "integer", "minimum": 0}} for n in spec.query]
        if params:
            op["parameters"] = params
        if spec.request is not None:
            op["requestBody"] = {"required": True, "content": {
                "application/json": {"schema": json_schema(spec.request, defs)}}}
        ok: dict[str, Any] = {"description": "OK"}
        if spec.response is not None:
            ok["content"] = {"application/json": {"schema": json_schema(spec.response, defs)}}
        responses: dict[str, Any] = {str(spec.status): ok}
        for status, text in _ERROR_STATUSES.items():
            responses[status] = {"description": text,
                                 "content": {"application/json": {"schema": error_ref}}}
        op["responses"] = responses
        if spec.auth:
            op["security"] = [{"hubToken": []}]
        paths.setdefault(spec.path, {})[spec.method.lower()] = op
    return {
        "openapi": "3.1.0",
        "info": {"title": "upi-vend cloud gateway", "version": str(API_VERSION),
                 "description": "Hub and operations API of the UPI vending gateway. Money is "
                                "integer paise; every non-2xx answer is an ErrorResponse."},
        "paths": paths,
        "components": {"schemas": defs, "securitySchemes": {
            "hubToken": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}}},
    }


__all__ = ["build"]
