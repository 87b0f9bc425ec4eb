"""The /v1 routes the razorpay SDK calls: orders, QR codes, payments, refunds."""

from __future__ import annotations

import asyncio
import copy
import json
from typing import Any

from aiohttp import web

from . import validate as v
from .entities import collection
from .errors import SandboxError, error_response
from .idempotency import fingerprint
from .keys import SANDBOX_KEY
from .runtime import Sandbox

routes = web.RouteTableDef()
IDEMPOTENCY_HEADER = "X-Refund-Idempotency"


def _sb(request: web.Request) -> Sandbox:
    return request.app[SANDBOX_KEY]


async def _body(request: web.Request) -> dict[str, Any]:
    return v.parse_object(await request.read())


def _ok(entity: Any) -> web.Response:
    return web.json_response(entity)


def _query(request: web.Request) -> dict[str, str]:
    return dict(request.query)


# --- orders ------------------------------------------------------------------------------------
@routes.post("/v1/orders")
async def create_order(request: web.Request) -> web.Response:
    return _ok(_sb(request).store.create_order(await _body(request)))


@routes.get("/v1/orders")
async def list_orders(request: web.Request) -> web.Response:
    return _ok(collection(_sb(request).store.list_orders(_query(request))))


@routes.get("/v1/orders/{id}")
async def fetch_order(request: web.Request) -> web.Response:
    return _ok(_sb(request).store.order(request.match_info["id"]))


@routes.get("/v1/orders/{id}/payments")
async def order_payments(request: web.Request) -> web.Response:
    return _ok(collection(_sb(request).store.order_payments(request.match_info["id"])))


# --- QR codes ----------------------------------------------------------------------------------
@routes.post("/v1/payments/qr_codes")
async def create_qr(request: web.Request) -> web.Response:
    sb = _sb(request)
    qr = sb.store.create_qr(await _body(request))
    sb.qr_created(qr)
    return _ok(qr)


@routes.get("/v1/payments/qr_codes")
async def list_qrs(request: web.Request) -> web.Response:
    return _ok(collection(_sb(request).store.list_qrs(_query(request))))


@routes.get("/v1/payments/qr_codes/{id}")
async def fetch_qr(request: web.Request) -> web.Response:
    return _ok(_sb(request).store.qr(request.match_info["id"]))


@routes.post("/v1/payments/qr_codes/{id}/close")
async def close_qr(request: web.Request) -> web.Response:
    sb = _sb(request)
    body = await _body(request)
    v.reject_unknown(body, ())
    qr, events = sb.store.close_qr(request.match_info["id"])
    sb.webhooks.emit(events)
    return _ok(qr)


@routes.get("/v1/payments/qr_codes/{id}/payments")
async def qr_payments(request: web.Request) -> web.Response:
    store = _sb(request).store
    return _ok(collection(store.qr_payments(request.match_info["id"], _query(request))))


# --- payments ----------------------------------------------------------------------------------
@routes.get("/v1/payments/{id}")
async def fetch_payment(request: web.Request) -> web.Response:
    return _ok(_sb(request).store.payment(request.match_info["id"]))


@routes.post("/v1/payments/{id}/capture")
async def capture(request: web.Request) -> web.Response:
    sb = _sb(request)
    payment, events = sb.store.capture(request.match_info["id"], await _body(request))
    sb.webhooks.emit(events)
    return _ok(payment)


@routes.post("/v1/payments/{id}/refund")
async def refund_payment(request: web.Request) -> web.Response:
    return await _refund(request, request.match_info["id"], await _body(request))


@routes.get("/v1/payments/{id}/refunds")
async def payment_refunds(request: web.Request) -> web.Response:
    store = _sb(request).store
    return _ok(collection(store.payment_refunds(request.match_info["id"], _query(request))))


# --- refunds -----------------------------------------------------------------------------------
@routes.post("/v1/refunds")
async def create_refund_legacy(request: web.Request) -> web.Response:
    body = await _body(request)
    payment_id = v.string(body, "payment_id", max_len=40, required=True)
    assert payment_id is not None
    return await _refund(request, payment_id, {k: x for k, x in body.items() if k != "payment_id"})


@routes.get("/v1/refunds/{id}")
async def fetch_refund(request: web.Request) -> web.Response:
    return _ok(_sb(request).store.refund_by_id(request.match_info["id"]))


async def _refund(request: web.Request, payment_id: str, body: dict[str, Any]) -> web.Response:
    sb = _sb(request)
    key = request.headers.get(IDEMPOTENCY_HEADER)
    if key is None:
        refund = sb.store.refund(payment_id, body)
        sb.refund_created(refund)
        return _ok(refund)
    sb.idempotency.check_key(key)
    replay = sb.idempotency.begin(key, fingerprint(payment_id, body))
    if replay is not None:
        status, answer = replay
        return web.json_response(answer, status=status)
    try:
        hold = sb.faults.refund_hold_s
        if hold > 0:
            await asyncio.sleep(hold)
        try:
            refund = sb.store.refund(payment_id, body)
        except SandboxError as exc:
            response = error_response(exc)
            assert isinstance(response.text, str)
            sb.idempotency.finish(key, exc.status, json.loads(response.text))
            return response
        sb.refund_created(refund)
        sb.idempotency.finish(key, 200, copy.deepcopy(refund))
        return _ok(refund)
    finally:
        sb.idempotency.abandon(key)  # no-op once finished

