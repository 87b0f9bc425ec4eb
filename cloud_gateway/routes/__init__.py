"""The route table: every HTTP route of the gateway, as `RouteSpec`s.

`app.create_app` registers `ALL_ROUTES` and `openapi.build` documents the same list. A module that
adds routes (webhooks) appends its `ROUTES` here.
"""

from __future__ import annotations

from ..http import RouteSpec
from . import hub, ops, orders

ALL_ROUTES: tuple[RouteSpec, ...] = (*orders.ROUTES, *hub.ROUTES, *ops.ROUTES)

__all__ = ["ALL_ROUTES"]
