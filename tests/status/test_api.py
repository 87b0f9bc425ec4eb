"""The JSON API the page uses, the actions, the security headers and the support bundle."""

from __future__ import annotations

import re
from typing import Any

import pytest
import qrcode
from aiohttp.test_utils import TestClient

from edge_hub.status.api import REDACTED, redact
from edge_hub.status.assets import STATIC_FILES, asset_text
from edge_hub.status.qr import QR_BORDER, qr_svg

from .conftest import Tech, error_of
from .fake_hub import FakeHub, board_uid

XSS = '<img src=x onerror="window.__xss=1"><script>window.__xss=2</script>'


async def test_overview_is_the_hubs(tech: Tech, hub: FakeHub) -> None:
    body = await (await tech.client.get("/api/overview")).json()
    assert body["hub_id"] == "site-1-hub"
    assert body["gateway"]["push"] == "websocket"
    assert body["pi"] == {"cpu_temp_c": None, "undervoltage": None, "throttled": None}


async def test_boards_carry_the_qr_of_the_same_upi_payload(tech: Tech, hub: FakeHub) -> None:
    uid = board_uid(2)
    hub.purchase_step(uid, "ord_1", "awaiting_payment", "payment_pending")
    boards = (await (await tech.client.get("/api/boards")).json())["boards"]
    assert [b["board_uid"] for b in boards] == [board_uid(1), board_uid(2), board_uid(3)]
    assert boards[0]["current_order"] is None
    order = boards[1]["current_order"]
    assert order["amount"] == 2500 and order["currency"] == "INR"
    svg = order["qr_svg"]
    assert svg.startswith("<svg")
    assert set(re.findall(r"<([a-zA-Z]+)", svg)) == {"svg", "path"}
    assert not re.search(r"\son\w+=", svg) and "ord_1" not in svg
    # the dark modules drawn are exactly those of a QR code of the order's upi_uri
    drawn = {(int(x) - QR_BORDER, int(y) - QR_BORDER) for x, y in re.findall(r"M(\d+),(\d+)H", svg)}
    code = qrcode.QRCode(border=0)
    code.add_data(order["upi_uri"])
    code.make(fit=True)
    matrix = code.get_matrix()
    expected = {(x, y) for y, row in enumerate(matrix) for x, dark in enumerate(row) if dark}
    assert drawn == expected
    assert "ord_1" in order["upi_uri"]
    # the view's own dicts are not changed by the page
    assert "qr_svg" not in hub.boards()[1]["current_order"]


def test_qr_svg_refuses_an_empty_payload() -> None:
    with pytest.raises(ValueError, match="empty"):
        qr_svg("")


async def test_orders_filters_go_to_the_view(tech: Tech, hub: FakeHub) -> None:
    hub.purchase_step(board_uid(1), "ord_a", "awaiting_payment", "payment_pending")
    hub.purchase_step(board_uid(2), "ord_b", "vending", "dispensing")
    body = await (await tech.client.get("/api/orders")).json()
    assert {o["order_id"] for o in body["orders"]} == {"ord_a", "ord_b"}
    r = await tech.client.get(
        "/api/orders", params={"board_uid": board_uid(2), "state": "dispensing", "limit": "5"}
    )
    assert [o["order_id"] for o in (await r.json())["orders"]] == ["ord_b"]
    assert hub.calls[-1] == ("orders", (board_uid(2), "dispensing", 5))
    assert (await tech.client.get("/api/orders?board_uid=&state=")).status == 200
    assert hub.calls[-1] == ("orders", (None, None, 100))


async def test_a_state_the_hub_does_not_know_is_a_400(tech: Tech) -> None:
    error = await error_of(await tech.client.get("/api/orders?state=teleported"), 400)
    assert error["message"] == "unknown order state 'teleported'"


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("limit=0", "limit"),
        ("limit=501", "limit"),
        ("limit=ten", "limit"),
        ("state=Paid!", "state"),
        ("board_uid=%3Cscript%3E", "board_uid"),
        ("colour=red", "colour"),
    ],
)
async def test_orders_bad_queries_say_what_is_wrong(tech: Tech, query: str, field: str) -> None:
    error = await error_of(await tech.client.get(f"/api/orders?{query}"), 400)
    assert error["code"] == "validation_error"
    assert field in error["details"]["invalid"]


async def test_logs(tech: Tech, hub: FakeHub) -> None:
    for i in range(5):
        hub.add_log("WARNING", f"crc error burst {i}", board_uid=board_uid(1))
    logs = (await (await tech.client.get("/api/logs?limit=2")).json())["logs"]
    assert [r["message"] for r in logs] == ["crc error burst 3", "crc error burst 4"]
    assert logs[0]["board_uid"] == board_uid(1)
    await error_of(await tech.client.get("/api/logs?limit=1001"), 400)


async def test_take_out_of_service_and_back(tech: Tech, hub: FakeHub) -> None:
    uid = board_uid(3)
    r = await tech.post(f"/api/boards/{uid}/service", {"in_service": False, "reason": "coin jam"})
    assert r.status == 200
    assert await r.json() == {"board_uid": uid, "in_service": False, "reason": "coin jam"}
    assert hub.calls[-1] == ("set_in_service", (uid, False, "coin jam"))
    board = (await (await tech.client.get("/api/boards")).json())["boards"][2]
    assert board["in_service"] is False and board["out_of_service_reason"] == "coin jam"
    r = await tech.post(f"/api/boards/{uid}/service", {"in_service": True})
    assert r.status == 200
    assert hub.calls[-1] == ("set_in_service", (uid, True, "back in service"))


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        ({"in_service": False}, "missing"),
        ({"in_service": False, "reason": "   "}, "missing"),
        ({"reason": "x"}, "missing"),
        ({"in_service": "no", "reason": "x"}, "invalid"),
        ({"in_service": False, "reason": "x" * 65}, "invalid"),
        ({"in_service": False, "reason": "line\nbreak"}, "invalid"),
        ({"in_service": False, "reason": "x", "force": True}, "invalid"),
    ],
)
async def test_service_change_validation(
    tech: Tech, hub: FakeHub, body: dict[str, Any], detail: str
) -> None:
    error = await error_of(await tech.post(f"/api/boards/{board_uid(1)}/service", body), 400)
    assert detail in error["details"]
    assert not [c for c in hub.calls if c[0] == "set_in_service"]


async def test_service_change_needs_json(tech: Tech) -> None:
    r = await tech.client.post(
        f"/api/boards/{board_uid(1)}/service", data="in_service=false", headers=tech.headers()
    )
    assert (await error_of(r, 415))["code"] == "unsupported_media_type"


async def test_unknown_board_is_404(tech: Tech) -> None:
    for path in ("service", "resend"):
        r = await tech.post(f"/api/boards/{'f' * 24}/{path}", {"in_service": True})
        assert (await error_of(r, 404))["code"] == "unknown_board"


async def test_resend_pending(tech: Tech, hub: FakeHub) -> None:
    uid = board_uid(1)
    assert await (await tech.post(f"/api/boards/{uid}/resend")).json() == {
        "board_uid": uid,
        "resent": True,
    }
    hub.resend_result = False
    assert (await (await tech.post(f"/api/boards/{uid}/resend")).json())["resent"] is False
    assert hub.calls[-2:] == [("resend_pending", (uid,)), ("resend_pending", (uid,))]


async def test_support_bundle_download_by_form_post_with_secrets_removed(
    tech: Tech, hub: FakeHub
) -> None:
    hub.bundle = {
        "config": {
            "hub_id": "site-1-hub",
            "gateway": {"url": "http://127.0.0.1:1", "secret": "hub-secret-value"},
            "board_master_key": "00" * 32,
            "status": {"users": [{"name": "tech", "password_hash": "scrypt$..."}]},
        },
        "boards": [{"board_uid": board_uid(1), "counters": {"crc_errors": 1}}],
        "outbox": {"depth": 3},
    }
    r = await tech.client.post("/api/support-bundle", data={"csrf_token": tech.csrf})
    assert r.status == 200
    assert re.fullmatch(
        r'attachment; filename="support-site-1-hub-\d{8}T\d{6}Z\.json"',
        r.headers["Content-Disposition"],
    )
    text = await r.text()
    for secret in ("hub-secret-value", "00" * 32, "scrypt$"):
        assert secret not in text
    bundle = await r.json(content_type=None)
    assert bundle["config"]["gateway"] == {"url": "http://127.0.0.1:1", "secret": REDACTED}
    assert bundle["config"]["status"]["users"] == [{"name": "tech", "password_hash": REDACTED}]
    assert bundle["boards"] == hub.bundle["boards"] and bundle["outbox"] == {"depth": 3}


def test_redact_keeps_what_is_not_secret() -> None:
    data = {"api_key": "k", "nested": [{"token": "t", "url": "u"}], "key_count": 2, "n": 1}
    assert redact(data) == {
        "api_key": REDACTED,
        "nested": [{"token": REDACTED, "url": "u"}],
        "key_count": 2,
        "n": 1,
    }


async def test_security_headers_on_every_answer(client: TestClient[Any, Any], tech: Tech) -> None:
    answers = [
        await client.get("/login"),
        await client.get("/"),
        await client.get("/static/app.js"),
        await client.get("/api/boards"),
        await client.get("/api/nope"),
        await client.post("/api/sync"),  # 403, no CSRF token
    ]
    for r in answers:
        csp = r.headers["Content-Security-Policy"]
        assert "default-src 'self'" in csp and "script-src 'self'" in csp
        assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
        assert "frame-ancestors 'none'" in csp
        assert r.headers["X-Frame-Options"] == "DENY"
        assert r.headers["X-Content-Type-Options"] == "nosniff"
        assert r.headers["Cache-Control"] in ("no-store", "no-cache")


async def test_unknown_api_path_and_method_use_the_one_error_shape(tech: Tech) -> None:
    assert (await error_of(await tech.client.get("/api/nope"), 404))["code"] == "not_found"
    r = await tech.client.delete("/api/boards", headers=tech.headers())
    assert (await error_of(r, 405))["code"] == "method_not_allowed"


async def test_a_failing_view_gives_a_500_without_its_message(
    tech: Tech, hub: FakeHub, caplog: pytest.LogCaptureFixture
) -> None:
    hub.fail_with = RuntimeError("db password is hunter2")
    error = await error_of(await tech.client.get("/api/overview"), 500)
    assert error["code"] == "internal_error"
    assert "hunter2" not in error["message"]
    assert "GET /api/overview failed" in caplog.text


async def test_field_strings_reach_the_page_only_as_json(tech: Tech, hub: FakeHub) -> None:
    hub.update_board(board_uid(1), firmware=XSS)
    r = await tech.client.get("/api/boards")
    assert r.content_type == "application/json"
    assert (await r.json())["boards"][0]["firmware"] == XSS
    shell = await (await tech.client.get("/")).text()
    assert "onerror" not in shell and "vend-fw" not in shell  # the shell holds no data


def test_shipped_pages_have_no_inline_script_and_nothing_from_the_internet() -> None:
    for name in ("index.html", "login.html"):
        html = asset_text(name)
        assert not re.search(r"<script(?![^>]*\ssrc=)", html), name
        assert not re.search(r"\son[a-z]+\s*=", html), name
        assert "style=" not in html, name
    for name in ("index.html", "login.html", *STATIC_FILES):
        text = asset_text(name)
        urls = re.findall(r"(?:https?:)?//[A-Za-z0-9.-]+\.[a-z]{2,}", text)
        assert [u for u in urls if "www.w3.org" not in u] == [], name
    for name in ("app.js", "dom.js"):
        js = asset_text(name)
        for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval("):
            assert sink not in js, (name, sink)
