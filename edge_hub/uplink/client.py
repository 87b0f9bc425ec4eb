"""HTTP client for the gateway's hub API (shapes in protocol/hub_api.py).

Two connection pools: one for live order calls, one for background traffic (events, commands,
acks), so a purchase never queues behind an outbox drain. Every non-2xx answer is turned into
``GatewayError`` from the one error shape; network failures and timeouts into
``GatewayUnavailable``. The access token is fetched on demand and refreshed before it expires;
its ``server_time`` teaches the hub's clock the gateway's time.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import Any, cast

import aiohttp

from edge_hub.backoff import Backoff
from edge_hub.clock import Clock
from protocol import hub_api
from protocol.hub_api import (
    BoardRegistration,
    CommandBatch,
    CreateOrder,
    EventBatchResult,
    Order,
    TokenResponse,
)

log = logging.getLogger(__name__)


class GatewayError(Exception):
    """The gateway answered with an error (its one error shape)."""

    def __init__(self, status: int, code: str, message: str,
                 details: dict[str, Any] | None = None) -> None:
        super().__init__(f"gateway {status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.details = details or {}


class GatewayUnavailable(GatewayError):
    """The gateway could not be reached or did not answer in time."""

    def __init__(self, message: str) -> None:
        super().__init__(0, "unavailable", message)


class GatewayClient:
    def __init__(self, base_url: str, hub_id: str, secret: str, clock: Clock, *,
                 request_timeout_s: float, refresh_margin_s: float,
                 token_backoff: Backoff | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self.hub_id = hub_id
        self._secret = secret
        self.clock = clock
        self.request_timeout_s = request_timeout_s
        self.refresh_margin_s = refresh_margin_s
        self._token: str | None = None
        self._token_expires_mono = 0.0
        self._token_lock = asyncio.Lock()
        # After a failed token request nobody asks again before this (no hammering of
        # /auth/token by every order while the gateway is down or rate limiting us).
        self._token_backoff = token_backoff or Backoff(0.5, 30.0)
        self._token_retry_at = 0.0
        self._live: aiohttp.ClientSession | None = None
        self._bg: aiohttp.ClientSession | None = None
        self.connected = False
        self.last_ok_at: float | None = None
        self.last_error: str | None = None
        self.last_error_at: float | None = None

    async def start(self) -> None:
        self._live = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=32))
        self._bg = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=16))

    async def close(self) -> None:
        for s in (self._live, self._bg):
            if s is not None:
                await s.close()
        self._live = self._bg = None

    @property
    def background(self) -> aiohttp.ClientSession:
        if self._bg is None:
            raise RuntimeError("GatewayClient.start() was not called")
        return self._bg

    def url(self, path: str) -> str:
        return self.base_url + path

    # --- bookkeeping for the status page -----------------------------------------------------
    def _ok(self) -> None:
        if not self.connected:
            log.info("gateway %s reachable", self.base_url)
        self.connected = True
        self.last_ok_at = time.time()

    def note_failure(self, err: str) -> None:
        if self.connected:
            log.warning("gateway %s unreachable: %s", self.base_url, err)
        self.connected = False
        self.last_error = err
        self.last_error_at = time.time()

    # --- token -------------------------------------------------------------------------------
    @property
    def offline(self) -> bool:
        """True while a failed token request is backing off: calls would fail at once."""
        return self._token is None and time.monotonic() < self._token_retry_at

    async def token(self, *, timeout_s: float | None = None) -> str:
        if self._token and time.monotonic() < self._token_expires_mono - self.refresh_margin_s:
            return self._token
        async with self._token_lock:
            now = time.monotonic()
            if self._token and now < self._token_expires_mono - self.refresh_margin_s:
                return self._token
            if now < self._token_retry_at:
                if self._token and now < self._token_expires_mono:
                    return self._token  # refresh failed lately; the old one is still valid
                raise GatewayUnavailable(f"no token; next attempt in "
                                         f"{self._token_retry_at - now:.1f} s ({self.last_error})")
            sent = time.monotonic()
            try:
                body = await self._send("POST", hub_api.AUTH_TOKEN,
                                        {"hub_id": self.hub_id, "secret": self._secret},
                                        auth=False, timeout_s=timeout_s)
            except GatewayError as e:
                delay = self._token_backoff.next_delay()
                retry_after = e.details.get("retry_after_s")
                if isinstance(retry_after, int | float):
                    delay = max(delay, float(retry_after))
                self._token_retry_at = time.monotonic() + delay
                if e.status in (401, 403):
                    log.error("gateway refused this hub's credentials (%s); check hub.id and "
                              "the hub secret", e.code)
                raise
            self._token_backoff.reset()
            self._token_retry_at = 0.0
            ans = cast(TokenResponse, body)
            rtt = time.monotonic() - sent
            self.clock.note_server_time(float(ans["server_time"]), rtt)
            self._token = str(ans["token"])
            self._token_expires_mono = sent + float(ans["expires_in"])
            return self._token

    def token_expired(self) -> None:
        self._token = None

    async def auth_headers(self, timeout_s: float | None = None) -> dict[str, str]:
        return {"Authorization": f"Bearer {await self.token(timeout_s=timeout_s)}"}

    # --- requests ----------------------------------------------------------------------------
    async def _send(self, method: str, path: str, body: Any = None, *, auth: bool = True,
                    timeout_s: float | None = None, live: bool = False,
                    raw_body: str | None = None, params: dict[str, str] | None = None) -> Any:
        session = self._live if live else self._bg
        if session is None:
            raise RuntimeError("GatewayClient.start() was not called")
        timeout = timeout_s if timeout_s is not None else self.request_timeout_s
        for attempt in (1, 2):
            headers = {"Content-Type": "application/json"}
            if auth:
                headers.update(await self.auth_headers(timeout))
            data = raw_body if raw_body is not None else (
                None if body is None else json.dumps(body))
            try:
                async with session.request(method, self.url(path), data=data, headers=headers,
                                           params=params,
                                           timeout=aiohttp.ClientTimeout(total=timeout)) as resp:
                    text = await resp.text()
                    status = resp.status
            except (aiohttp.ClientError, TimeoutError, OSError) as e:
                err = f"{method} {path}: {type(e).__name__}: {e}".rstrip(": ")
                self.note_failure(err)
                raise GatewayUnavailable(err) from e
            if status == 401 and auth and attempt == 1:
                self.token_expired()
                continue
            if status >= 500 or status == 429:
                # Overloaded or rate limited: retried with backoff like an outage.
                self.note_failure(f"{method} {path}: HTTP {status}")
                busy = GatewayUnavailable(f"{method} {path}: HTTP {status}")
                try:
                    busy.details = dict(json.loads(text).get("error", {}).get("details", {}))
                except (json.JSONDecodeError, AttributeError, TypeError, ValueError):
                    pass
                raise busy
            self._ok()
            try:
                parsed = json.loads(text) if text else {}
            except json.JSONDecodeError:
                raise GatewayError(status, "bad_response", f"{method} {path}: not JSON") from None
            if status >= 400:
                err = parsed.get("error", {}) if isinstance(parsed, dict) else {}
                raise GatewayError(status, str(err.get("code", "error")),
                                   str(err.get("message", text[:200])), err.get("details"))
            return parsed
        raise GatewayError(401, "unauthorized", "token refused twice")

    async def create_order(self, order: CreateOrder, *, timeout_s: float) -> Order:
        """Create the order and its UPI QR in one round trip (``pay: true``)."""
        return cast(Order, await self._send("POST", hub_api.ORDERS, order, live=True,
                                            timeout_s=timeout_s))

    async def get_order(self, order_id: str) -> Order:
        return cast(Order, await self._send("GET", hub_api.ORDER.format(order_id=order_id)))

    async def register_board(self, reg: BoardRegistration) -> None:
        await self._send("PUT", hub_api.HUB_BOARD.format(board_uid=reg["board_uid"]), reg)

    async def post_events(self, bodies: list[str]) -> EventBatchResult:
        """POST already-serialised events (straight from the outbox rows) as one batch."""
        raw = '{"events":[' + ",".join(bodies) + "]}"
        return cast(EventBatchResult, await self._send("POST", hub_api.HUB_EVENTS,
                                                       raw_body=raw))

    async def get_commands(self, after: int, wait_s: float) -> CommandBatch:
        return cast(CommandBatch, await self._send(
            "GET", hub_api.HUB_COMMANDS, params={"after": str(after), "wait": str(int(wait_s))},
            timeout_s=wait_s + self.request_timeout_s))

    async def ack_commands(self, upto: int) -> None:
        await self._send("POST", hub_api.HUB_COMMANDS_ACK, {"upto": upto})
