"""Test and demo control routes under /_sim (no auth; the sandbox listens on loopback)."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from . import validate as v
from .entities import PayerDetails
from .errors import SandboxError
from .keys import SANDBOX_KEY
from .runtime import Sandbox
from .store import PayOptions
from .webhooks import WebhookOverrides

routes = web.RouteTableDef()
MAX_TIMES = 10


def _sb(request: web.Request) -> Sandbox:
    return request.app[SANDBOX_KEY]


async def _body(request: web.Request) -> dict[str, Any]:
    return v.parse_object(await request.read())


def _payer(body: dict[str, Any]) -> PayerDetails:
    vpa = v.string(body, "vpa", max_len=100)
    return PayerDetails(vpa=vpa) if vpa else PayerDetails()


@routes.post("/_sim/qr/{qr_id}/pay")
async def pay_qr(request: web.Request) -> web.Response:
    body = await _body(request)
    v.reject_unknown(body, ("amount", "times", "vpa", "fail_first", "webhooks"))
    times = v.integer(body, "times")
    if times is None:
        times = 1
    if not 1 <= times <= MAX_TIMES:
        raise SandboxError(f"times must be between 1 and {MAX_TIMES}", field="times")
    options = PayOptions(
        amount=v.integer(body, "amount"),
        fail_first=v.boolean(body, "fail_first", False),
        payer=_payer(body),
    )
    overrides = WebhookOverrides.parse(body.get("webhooks"))
    qr_id = request.match_info["qr_id"]
    payments, event_ids = _sb(request).pay_qr(qr_id, options, times, overrides)
    return web.json_response({"payments": payments, "event_ids": event_ids})


@routes.post("/_sim/orders/{order_id}/pay")
async def pay_order(request: web.Request) -> web.Response:
    body = await _body(request)
    v.reject_unknown(body, ("vpa",))
    sb = _sb(request)
    payment, events = sb.store.pay_order(request.match_info["order_id"], _payer(body))
    return web.json_response({"payment": payment, "event_ids": sb.webhooks.emit(events)})


@routes.get("/_sim/faults")
async def get_faults(request: web.Request) -> web.Response:
    return web.json_response(_sb(request).faults.snapshot())


@routes.post("/_sim/faults")
async def set_faults(request: web.Request) -> web.Response:
    faults = _sb(request).faults
    faults.update(await _body(request))
    return web.json_response(faults.snapshot())


@routes.get("/_sim/config")
async def get_config(request: web.Request) -> web.Response:
    return web.json_response(_sb(request).config.public())


@routes.post("/_sim/config")
async def set_config(request: web.Request) -> web.Response:
    return web.json_response(_sb(request).reconfigure(await _body(request)).public())


@routes.get("/_sim/ledger")
async def ledger(request: web.Request) -> web.Response:
    return web.json_response(_sb(request).store.ledger())


@routes.get("/_sim/webhooks")
async def deliveries(request: web.Request) -> web.Response:
    return web.json_response({"deliveries": list(_sb(request).webhooks.deliveries)})


@routes.post("/_sim/webhooks/{event_id}/redeliver")
async def redeliver(request: web.Request) -> web.Response:
    _sb(request).webhooks.redeliver(request.match_info["event_id"])
    return web.json_response({"redelivered": request.match_info["event_id"]})


@routes.post("/_sim/drain")
async def drain(request: web.Request) -> web.Response:
    """Answer once every pending timer, delivery and retry has finished."""
    await _sb(request).drain()
    return web.json_response({"drained": True})
