"""Fixtures: a fake hub, the status app around it, and a logged-in test client."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from edge_hub.status import StatusSettings, TechUser, create_status_app, hash_password

from .fake_hub import FakeHub

PASSWORD = "correct horse battery"
# Cheap scrypt cost for test accounts (the cost is read from the hash); the default is 2**14.
TEST_N = 2**10
REMOTE_HEADER = "X-Test-Remote"
ERROR_KEYS = {"code", "message", "status", "details", "request_id"}


async def error_of(response: Any, status: int) -> dict[str, Any]:
    assert response.status == status, await response.text()
    body = await response.json()
    assert set(body) == {"error"} and set(body["error"]) == ERROR_KEYS
    assert body["error"]["status"] == status
    assert response.headers["X-Request-Id"] == body["error"]["request_id"]
    error: dict[str, Any] = body["error"]
    return error


@pytest.fixture(scope="session")
def tech_hash() -> str:
    return hash_password(PASSWORD, n=TEST_N)


@pytest.fixture
def hub() -> FakeHub:
    return FakeHub()


@pytest.fixture
def settings(tech_hash: str) -> StatusSettings:
    return StatusSettings(
        users=(TechUser("tech", tech_hash), TechUser("lead", tech_hash)),
        login_max_failures=3,
        login_window_s=60,
        sse_ping_s=0.2,
    )


def with_test_remote(status_app: web.Application) -> web.Application:
    """Mount the status app at /status/ under a parent whose middleware takes the client
    address from a header, so tests can log in from several addresses over loopback."""

    @web.middleware
    async def remote_from_header(
        request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        remote = request.headers.get(REMOTE_HEADER)
        return await handler(request.clone(remote=remote) if remote else request)

    parent = web.Application(middlewares=[remote_from_header])
    parent.add_subapp("/status/", status_app)
    return parent


@dataclass
class Tech:
    """A logged-in client: its CSRF token and the headers an action needs."""

    client: TestClient[Any, Any]
    csrf: str

    def headers(self) -> dict[str, str]:
        return {"X-CSRF-Token": self.csrf}

    async def post(self, path: str, body: Any = None) -> Any:
        return await self.client.post(
            path, json=body if body is not None else {}, headers=self.headers()
        )


ClientFactory = Callable[..., Awaitable[TestClient[Any, Any]]]


@pytest.fixture
async def client(
    aiohttp_client: Any, hub: FakeHub, settings: StatusSettings
) -> TestClient[Any, Any]:
    c: TestClient[Any, Any] = await aiohttp_client(create_status_app(hub, settings))
    return c


async def login(client: TestClient[Any, Any], name: str = "tech", password: str = PASSWORD) -> Tech:
    response = await client.post("/api/login", json={"name": name, "password": password})
    assert response.status == 200, await response.text()
    body = await response.json()
    return Tech(client, body["csrf_token"])


@pytest.fixture
async def tech(client: TestClient[Any, Any]) -> Tech:
    return await login(client)
