"""HTTP helpers shared by the route modules: the route table type, JSON in and out.

Route modules declare `RouteSpec`s (method, path, handler, auth, request/response schema,
summary); `app.create_app` registers them and `openapi` documents them from the same table, so
the two cannot drift. `read_json(request, TypedDict)` parses and validates a body;
`hub_of(request)` gives the authenticated hub of a `auth=True` route.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypedDict, TypeVar

from aiohttp import web

from .auth import HubIdentity
from .errors import ValidationError
from .keys import REQUEST_HUB
from .schemas import validate

T = TypeVar("T")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class Empty(TypedDict):
    """A body that must be empty or ``{}``."""


@dataclass(frozen=True)
class RouteSpec:
    method: str
    path: str
    handler: Handler
    summary: str
    auth: bool = True  # needs a hub token (and is rate limited per hub)
    request: Any = None  # TypedDict of the JSON body
    response: Any = None  # TypedDict of the 2xx JSON answer (None: not JSON / no schema)
    status: int = 200
    query: tuple[str, ...] = ()  # query parameters (integers)


def json_response(data: object, status: int = 200) -> web.Response:
    return web.Response(text=json.dumps(data, separators=(",", ":")), status=status,
                        content_type="application/json")


async def read_json(request: web.Request, schema: type[T]) -> T:
    raw = await request.read()
    if not raw:
        body: object = {}
    else:
        try:
            body = json.loads(raw)
        except (ValueError, UnicodeDecodeError) as exc:
            raise ValidationError(invalid={"body": f"malformed JSON: {exc}"}) from None
    return validate(schema, body)


def query_int(request: web.Request, name: str, default: int, lo: int, hi: int) -> int:
    raw = request.query.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ValidationError(invalid={name: "must be an integer"}) from None
    if not lo <= value <= hi:
        raise ValidationError(invalid={name: f"must be in {lo}..{hi}"})
    return value


def hub_of(request: web.Request) -> HubIdentity:
    hub: HubIdentity = request[REQUEST_HUB]
    return hub


__all__ = ["Empty", "RouteSpec", "hub_of", "json_response", "query_int", "read_json"]
