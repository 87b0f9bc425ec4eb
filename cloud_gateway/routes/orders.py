"""Auth and the orders API (seed-compatible): create, pay, qr, get, dispense, confirm, fail,
cancel. Handlers only parse, call `OrderService` and answer; the service decides."""

from __future__ import annotations

from aiohttp import web

from protocol import hub_api as api

from ..http import Empty, RouteSpec, hub_of, json_response, read_json
from ..keys import AUTH, AUTH_LIMITER, ORDERS


async def token(request: web.Request) -> web.Response:
    body = await read_json(request, api.TokenRequest)
    request.app[AUTH_LIMITER].check(body["hub_id"])  # slows guessing one hub's secret
    return json_response(await request.app[AUTH].issue(body["hub_id"], body["secret"]))


async def create_order(request: web.Request) -> web.Response:
    body = await read_json(request, api.CreateOrder)
    order, created = await request.app[ORDERS].create(hub_of(request), body)
    return json_response(order, 201 if created else 200)


async def get_order(request: web.Request) -> web.Response:
    service = request.app[ORDERS]
    return json_response(service.to_api(
        service.get_for_hub(hub_of(request), request.match_info["order_id"])))


async def pay_order(request: web.Request) -> web.Response:
    await read_json(request, Empty)
    return json_response(await request.app[ORDERS].pay(hub_of(request),
                                                       request.match_info["order_id"]))


async def order_qr(request: web.Request) -> web.Response:
    return json_response(request.app[ORDERS].qr(hub_of(request), request.match_info["order_id"]))


async def dispense(request: web.Request) -> web.Response:
    await read_json(request, Empty)
    return json_response(await request.app[ORDERS].dispense(hub_of(request),
                                                            request.match_info["order_id"]))


async def confirm(request: web.Request) -> web.Response:
    await read_json(request, Empty)
    return json_response(await request.app[ORDERS].confirm(hub_of(request),
                                                           request.match_info["order_id"]))


async def fail(request: web.Request) -> web.Response:
    body = await read_json(request, api.VendFailure)
    return json_response(await request.app[ORDERS].fail(hub_of(request),
                                                        request.match_info["order_id"], body))


async def cancel(request: web.Request) -> web.Response:
    body = await read_json(request, api.CancelRequest)
    return json_response(await request.app[ORDERS].cancel(
        hub_of(request), request.match_info["order_id"], body["reason"]))


ROUTES = (
    RouteSpec("POST", api.AUTH_TOKEN, token, "Exchange hub credentials for a JWT", auth=False,
              request=api.TokenRequest, response=api.TokenResponse),
    RouteSpec("POST", api.ORDERS, create_order,
              "Create an order (201; 200 for a repeated idempotency key); pay=true also "
              "creates the UPI QR", request=api.CreateOrder, response=api.Order, status=201),
    RouteSpec("GET", api.ORDER, get_order, "Get an order", response=api.Order),
    RouteSpec("POST", api.ORDER_PAY, pay_order, "Create the order's single-use UPI QR",
              response=api.Order),
    RouteSpec("GET", api.ORDER_QR, order_qr, "The order's UPI QR payment", response=api.Payment),
    RouteSpec("POST", api.ORDER_DISPENSE, dispense, "The vend of a paid order starts",
              response=api.Order),
    RouteSpec("POST", api.ORDER_CONFIRM, confirm, "The vend succeeded: receipt",
              response=api.Receipt),
    RouteSpec("POST", api.ORDER_FAIL, fail, "The vend failed: a refund follows",
              request=api.VendFailure, response=api.Order),
    RouteSpec("POST", api.ORDER_CANCEL, cancel, "Cancel an unpaid order",
              request=api.CancelRequest, response=api.Order),
)
