"""The one error shape (pinned), limits, OpenAPI in step with the routes, health and metrics."""

from __future__ import annotations

from typing import Any

from cloud_gateway.db import _connect
from cloud_gateway.keys import DB
from cloud_gateway.middleware import SPECS
from cloud_gateway.routes import ALL_ROUTES
from cloud_gateway.schemas import validate
from protocol.hub_api import ErrorResponse

from .conftest import BOARD_A, Gateway, GatewayFactory, Sandbox, paid_order


def assert_error_shape(body: Any, status: int, code: str) -> None:
    assert set(body) == {"error"}
    assert set(body["error"]) == {"code", "message", "status", "details", "request_id"}
    validate(ErrorResponse, body)
    assert body["error"]["status"] == status and body["error"]["code"] == code
    assert body["error"]["message"] and body["error"]["request_id"]


async def test_error_shape_is_the_same_everywhere(gw: Gateway) -> None:
    cases = [
        ("GET", "/nowhere", None, 404, "not_found"),
        ("DELETE", "/orders", None, 405, "method_not_allowed"),
        ("GET", "/orders/ord_missing", None, 404, "not_found"),
        ("POST", "/orders", {"nope": 1}, 400, "validation_error"),
        ("POST", "/orders", "[1, 2]", 400, "validation_error"),
    ]
    for method, path, body, status, code in cases:
        resp = await gw.client.request(method, path, headers=gw.auth("hub-a"),
                                       **({"json": body} if not isinstance(body, str)
                                          else {"data": body}))
        data = await resp.json()
        assert resp.status == status, (path, data)
        assert_error_shape(data, status, code)
        assert resp.headers["X-Request-Id"] == data["error"]["request_id"]
    resp = await gw.client.post("/orders", data=b"{not json", headers=gw.auth("hub-a"))
    data = await resp.json()
    assert_error_shape(data, 400, "validation_error")
    assert "malformed JSON" in data["error"]["details"]["invalid"]["body"]
    resp = await gw.client.get("/orders/x", headers={"X-Request-Id": "abc-123"})
    data = await resp.json()
    assert_error_shape(data, 401, "unauthorized")
    assert data["error"]["request_id"] == "abc-123"


async def test_body_too_large_is_413_in_our_shape(start_gateway: GatewayFactory) -> None:
    gw = await start_gateway(max_request_bytes=1024, boards=False)
    resp = await gw.client.post("/hub/events", data=b"{" + b" " * 4096 + b"}",
                                headers={**gw.auth("hub-a"), "Content-Type": "application/json"})
    assert resp.status == 413
    assert_error_shape(await resp.json(), 413, "request_too_large")


async def test_unexpected_exception_is_500_without_internals(gw: Gateway) -> None:
    gw.app[DB]._reader.close()  # type: ignore[union-attr]  # break reads under the handler
    resp = await gw.client.get(f"/orders/{'x'}", headers=gw.auth("hub-a"))
    data = await resp.json()
    assert_error_shape(data, 500, "internal_error")
    assert data["error"]["message"] == "internal error"
    ready = await gw.client.get("/readyz")
    assert ready.status == 503 and (await ready.json())["checks"]["database"] is False
    gw.app[DB]._reader = _connect(gw.app[DB].path)  # mend it for a clean shutdown


async def test_openapi_matches_the_routes(gw: Gateway) -> None:
    resp = await gw.client.get("/openapi.json")
    doc = await resp.json()
    assert doc["openapi"].startswith("3.1")
    documented = {(m.upper(), p) for p, ops in doc["paths"].items() for m in ops}
    served = {(r.method, r.resource.canonical) for r in gw.app.router.routes()
              if r.method != "HEAD" and r.resource is not None}
    assert documented == served
    assert documented == {(s.method, s.path) for s in gw.app[SPECS].values()}
    assert {(s.method, s.path) for s in ALL_ROUTES} <= documented
    # every $ref resolves
    refs: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if "$ref" in node:
                refs.append(node["$ref"])
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    walk(doc)
    names = set(doc["components"]["schemas"])
    assert refs and all(r.rsplit("/", 1)[1] in names for r in refs)
    create = doc["paths"]["/orders"]["post"]["requestBody"]["content"]["application/json"]
    schema = doc["components"]["schemas"][create["schema"]["$ref"].rsplit("/", 1)[1]]
    assert "price" not in schema["properties"] and schema["additionalProperties"] is False
    assert "pay" in schema["properties"] and "pay" not in schema["required"]


async def test_health_ready_and_metrics(gw: Gateway, sandbox: Sandbox) -> None:
    assert (await gw.client.get("/healthz")).status == 200
    ready = await gw.client.get("/readyz")
    assert ready.status == 200 and (await ready.json())["status"] == "ready"
    await paid_order(gw, sandbox)
    await gw.call("GET", "/orders/ord_nope")
    text = await (await gw.client.get("/metrics")).text()
    assert "# TYPE gateway_http_requests_total counter" in text
    assert ('gateway_http_requests_total{method="POST",route="/orders",status="201"} 1'
            in text)
    assert ('gateway_http_requests_total{method="GET",route="/orders/{order_id}",status="404"}'
            in text)
    assert 'gateway_http_request_duration_seconds_bucket{route="/orders",le="+Inf"} 1' in text
    assert "gateway_commands_pending 1" in text
    for name in ("gateway_webhooks_total", "gateway_refunds_total"):
        assert f"# TYPE {name} counter" in text


async def test_secrets_never_in_logs(gw: Gateway, caplog: Any) -> None:
    caplog.set_level("DEBUG")
    await gw.call("POST", "/orders", body={
        "board_uid": BOARD_A, "product": "cappuccino", "options": [], "quantity": 1,
        "idempotency_key": "log", "pay": True}, expect=201)
    await gw.client.post("/auth/token", json={"hub_id": "hub-a", "secret": "guess-this-1"})
    from cloud_gateway.keys import SETTINGS

    s = gw.app[SETTINGS]
    secrets = [s.token_key.reveal(), s.razorpay_key_secret.reveal(), s.webhook_secret.reveal(),
               "guess-this-1", gw.tokens["hub-a"]]
    text = caplog.text + repr(s)
    assert all(x not in text for x in secrets)


def test_json_log_lines_carry_request_hub_and_order_ids() -> None:
    import json
    import logging

    from cloud_gateway.logs import HUB_ID, REQUEST_ID, JsonFormatter

    record = logging.LogRecord("cloud_gateway.x", logging.INFO, __file__, 1, "order %s", ("ok",),
                               None)
    record.order_id = "ord_1"
    tokens = REQUEST_ID.set("req-1"), HUB_ID.set("hub-a")
    try:
        line = json.loads(JsonFormatter().format(record))
    finally:
        REQUEST_ID.reset(tokens[0])
        HUB_ID.reset(tokens[1])
    assert line["msg"] == "order ok" and line["level"] == "INFO"
    assert (line["request_id"], line["hub_id"], line["order_id"]) == ("req-1", "hub-a", "ord_1")


def test_sandbox_subcommand_delegates_to_the_sandbox_cli(capsys: Any) -> None:
    import pytest

    from cloud_gateway.cli import run

    with pytest.raises(SystemExit) as exit_:
        run(["sandbox", "--help"])
    assert exit_.value.code == 0
    assert "cloud-gateway sandbox" in capsys.readouterr().out
