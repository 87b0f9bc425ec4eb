"""The login wall, cookies, CSRF, origin checks, rate limits and logout, over HTTP."""

from __future__ import annotations

import re
from http.cookies import SimpleCookie
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from edge_hub.status import StatusSettings, TechUser, create_status_app

from .conftest import PASSWORD, REMOTE_HEADER, Tech, error_of, login, with_test_remote
from .fake_hub import FakeHub


async def test_without_a_session_only_the_login_page_is_served(
    client: TestClient[Any, Any], hub: FakeHub
) -> None:
    for path in ("/", "/static/app.js", "/static/dom.js", "/anything"):
        r = await client.get(path, allow_redirects=False)
        assert r.status == 303 and r.headers["Location"] == "/login", path
    for path in ("/api/overview", "/api/boards", "/api/orders", "/api/logs", "/api/events"):
        error = await error_of(await client.get(path), 401)
        assert error["code"] == "login_required"
    error = await error_of(await client.post("/api/sync"), 401)
    assert hub.calls == []
    page = await client.get("/login")
    assert page.status == 200
    text = await page.text()
    assert '<form method="post" action="login">' in text and "site-1-hub" not in text
    assert (await client.get("/static/style.css")).status == 200
    assert (await client.get("/static/favicon.svg")).status == 200


async def test_form_login_sets_a_strict_httponly_cookie_and_redirects(
    client: TestClient[Any, Any],
) -> None:
    r = await client.post(
        "/login", data={"name": "tech", "password": PASSWORD}, allow_redirects=False
    )
    assert r.status == 303 and r.headers["Location"] == "/"
    morsel = SimpleCookie(r.headers["Set-Cookie"])["hub_status_session"]
    assert morsel["httponly"] is True
    assert morsel["samesite"] == "Strict"
    assert morsel["path"] == "/"
    assert not morsel["secure"]  # cookie_secure defaults off: the LAN page is plain HTTP
    assert int(morsel["max-age"]) == 8 * 3600
    page = await client.get("/")
    assert page.status == 200 and 'src="static/app.js"' in await page.text()
    assert (await client.get("/static/app.js")).status == 200
    # logged in: the login page sends you to the page
    r = await client.get("/login", allow_redirects=False)
    assert r.status == 303 and r.headers["Location"] == "/"


async def test_secure_cookie_when_configured(aiohttp_client: Any, tech_hash: str) -> None:
    settings = StatusSettings(users=(TechUser("tech", tech_hash),), cookie_secure=True)
    client = await aiohttp_client(create_status_app(FakeHub(), settings))
    r = await client.post("/api/login", json={"name": "tech", "password": PASSWORD})
    assert r.status == 200
    assert SimpleCookie(r.headers["Set-Cookie"])["hub_status_session"]["secure"] is True


async def test_wrong_password_and_unknown_user_are_refused_alike(
    client: TestClient[Any, Any], caplog: pytest.LogCaptureFixture
) -> None:
    wrong = await error_of(
        await client.post("/api/login", json={"name": "tech", "password": "nope"}), 401
    )
    unknown = await error_of(
        await client.post("/api/login", json={"name": "ghost", "password": "nope"}), 401
    )
    assert wrong["code"] == unknown["code"] == "bad_credentials"
    assert wrong["message"] == unknown["message"]
    assert (await client.get("/api/overview")).status == 401
    r = await client.post("/login", data={"name": "tech", "password": "nope"})
    assert r.status == 401
    assert "wrong user name or password" in await r.text()
    assert "Set-Cookie" not in r.headers
    assert "failed login as 'ghost'" in caplog.text
    assert "nope" not in caplog.text  # the attempted password is never logged


async def test_login_validation_errors(client: TestClient[Any, Any]) -> None:
    error = await error_of(await client.post("/api/login", json={"name": "tech"}), 400)
    assert error["details"] == {"missing": ["password"]}
    error = await error_of(await client.post("/api/login", json={"name": 5, "password": "x"}), 400)
    assert "name" in error["details"]["invalid"]
    error = await error_of(await client.post("/api/login", data=b"{nope"), 400)
    assert error["code"] == "invalid_json"


async def test_login_rate_limit_per_address_with_retry_after(
    client: TestClient[Any, Any],
) -> None:
    for _ in range(3):  # login_max_failures=3 in the test settings
        await error_of(await client.post("/api/login", json={"name": "tech", "password": "x"}), 401)
    # now even the right password is refused, with how long to wait
    r = await client.post("/api/login", json={"name": "tech", "password": PASSWORD})
    error = await error_of(r, 429)
    wait = int(r.headers["Retry-After"])
    assert 0 < wait <= 60
    assert error["code"] == "rate_limited"
    assert re.fullmatch(r"too many failed logins; try again in \d+ s", error["message"])
    assert error["details"]["retry_after_s"] == wait
    # the same address is locked for other users as well; the form says so too
    await error_of(
        await client.post("/api/login", json={"name": "lead", "password": PASSWORD}), 429
    )
    form = await client.post("/login", data={"name": "lead", "password": PASSWORD})
    assert form.status == 429 and "try again in" in await form.text()


async def test_login_rate_limit_per_user_across_addresses(
    aiohttp_client: Any, hub: FakeHub, settings: StatusSettings
) -> None:
    client = await aiohttp_client(with_test_remote(create_status_app(hub, settings)))
    for i in range(3):  # one attacker, three addresses, one account
        r = await client.post(
            "/status/api/login",
            json={"name": "tech", "password": "x"},
            headers={REMOTE_HEADER: f"10.0.0.{i}"},
        )
        assert r.status == 401
    r = await client.post(
        "/status/api/login",
        json={"name": "tech", "password": PASSWORD},
        headers={REMOTE_HEADER: "10.0.0.99"},
    )
    assert r.status == 429
    # another account from a fresh address is not affected
    r = await client.post(
        "/status/api/login",
        json={"name": "lead", "password": PASSWORD},
        headers={REMOTE_HEADER: "10.0.0.100"},
    )
    assert r.status == 200


async def test_app_works_mounted_under_a_prefix(
    aiohttp_client: Any, hub: FakeHub, settings: StatusSettings
) -> None:
    client = await aiohttp_client(with_test_remote(create_status_app(hub, settings)))
    r = await client.get("/status/", allow_redirects=False)
    assert r.status == 303 and r.headers["Location"] == "/status/login"
    r = await client.post(
        "/status/login", data={"name": "tech", "password": PASSWORD}, allow_redirects=False
    )
    assert r.status == 303 and r.headers["Location"] == "/status/"
    assert (await client.get("/status/api/overview")).status == 200


async def test_actions_need_the_csrf_token(tech: Tech, hub: FakeHub) -> None:
    client = tech.client
    missing = await error_of(await client.post("/api/sync", json={}), 403)
    assert missing["code"] == "csrf_failed"
    wrong = await error_of(
        await client.post("/api/sync", json={}, headers={"X-CSRF-Token": tech.csrf[:-2] + "xx"}),
        403,
    )
    assert wrong["code"] == "csrf_failed"
    uid = hub.boards()[0]["board_uid"]
    for path, body in (
        (f"/api/boards/{uid}/service", {"in_service": False, "reason": "jammed"}),
        (f"/api/boards/{uid}/resend", {}),
        ("/api/support-bundle", {}),
        ("/api/logout", {}),
    ):
        await error_of(await client.post(path, json=body), 403)
        await error_of(await client.post(path, data={"csrf_token": "wrong"}), 403)
    assert hub.calls == []
    r = await tech.post("/api/sync")
    assert r.status == 200 and await r.json() == {"ok": True}
    assert hub.calls == [("sync_now", ())]


async def test_a_token_from_another_session_is_refused(
    client: TestClient[Any, Any], hub: FakeHub
) -> None:
    first = await login(client)
    second = await login(client, "lead")  # the client now holds the second session's cookie
    await error_of(await client.post("/api/sync", headers=first.headers()), 403)
    assert (await second.post("/api/sync")).status == 200


async def test_foreign_origin_is_refused_even_with_the_token(tech: Tech, hub: FakeHub) -> None:
    r = await tech.client.post(
        "/api/sync", json={}, headers={**tech.headers(), "Origin": "http://evil.example"}
    )
    assert (await error_of(r, 403))["code"] == "bad_origin"
    r = await tech.client.post(
        "/api/login",
        json={"name": "tech", "password": PASSWORD},
        headers={"Origin": "http://evil.example"},
    )
    await error_of(r, 403)
    origin = f"http://{tech.client.host}:{tech.client.port}"
    r = await tech.client.post("/api/sync", json={}, headers={**tech.headers(), "Origin": origin})
    assert r.status == 200
    assert hub.calls == [("sync_now", ())]


async def test_logout_ends_the_session(tech: Tech) -> None:
    session = await tech.client.get("/api/session")
    assert (await session.json())["user"] == "tech"
    r = await tech.post("/api/logout")
    assert r.status == 200
    assert 'hub_status_session=""' in r.headers["Set-Cookie"]
    assert (await tech.client.get("/api/session")).status == 401


async def test_stolen_cookie_is_useless_after_logout(tech: Tech, aiohttp_client: Any) -> None:
    cookie = tech.client.session.cookie_jar.filter_cookies(tech.client.make_url("/"))
    sid = cookie["hub_status_session"].value
    await tech.post("/api/logout")
    r = await tech.client.get("/api/overview", cookies={"hub_status_session": sid})
    assert r.status == 401
