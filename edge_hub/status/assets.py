"""The page's files (HTML shells, CSS, JS), shipped in the package: nothing from the internet."""

from __future__ import annotations

import re
from functools import cache
from importlib import resources

from aiohttp import web

from .errors import Handler

# Served files: name -> content type. Only these names are reachable.
STATIC_FILES = {
    "style.css": "text/css",
    "app.js": "text/javascript",
    "dom.js": "text/javascript",
    "favicon.svg": "image/svg+xml",
}
# Of those, what the login page needs; everything else is behind the login.
PUBLIC_FILES = frozenset({"style.css", "favicon.svg"})


def static_route_name(name: str) -> str:
    return "static_" + re.sub(r"[^a-z0-9]", "_", name)


@cache
def asset_bytes(name: str) -> bytes:
    return resources.files(__package__).joinpath("static", name).read_bytes()


def asset_text(name: str) -> str:
    return asset_bytes(name).decode("utf-8")


def static_handler(name: str) -> Handler:
    content_type = STATIC_FILES[name]

    async def handler(request: web.Request) -> web.StreamResponse:
        return web.Response(
            body=asset_bytes(name),
            content_type=content_type,
            charset="utf-8",
            headers={"Cache-Control": "no-cache"},
        )

    return handler


async def index(request: web.Request) -> web.StreamResponse:
    """The page shell; all data arrives through /api/ and the event stream."""
    return web.Response(body=asset_bytes("index.html"), content_type="text/html", charset="utf-8")
