"""The push channel: commands from the gateway over a WebSocket, falling back to long-polling.

Resumes from the stored cursor (``?after=``), so no command is missed; a command at or below the
cursor was already applied and is only acknowledged again (a duplicate push is harmless). The
handler commits the command's effect together with the new cursor; only then is it acked.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Literal, cast

import aiohttp

from edge_hub.backoff import Backoff
from edge_hub.supervisor import BEAT_EVERY_S, await_beating, sleep_beating
from edge_hub.uplink.client import GatewayClient, GatewayError, GatewayUnavailable
from protocol import hub_api
from protocol.hub_api import Command

log = logging.getLogger(__name__)

PushMode = Literal["websocket", "long-poll", "down"]
# After falling back to long-poll, try the WebSocket again this often.
WS_RETRY_S = 60.0


class PushChannel:
    def __init__(self, client: GatewayClient, *, cursor: Callable[[], Awaitable[int]],
                 apply: Callable[[Command], Awaitable[None]], mode: str, long_poll_wait_s: float,
                 heartbeat_s: float, backoff: Backoff,
                 beat: Callable[[], None] = lambda: None) -> None:
        self.client = client
        self._cursor = cursor
        self._apply = apply
        self.mode = mode
        self.long_poll_wait_s = long_poll_wait_s
        self.heartbeat_s = heartbeat_s
        self.backoff = backoff
        self._beat = beat
        self.state: PushMode = "down"
        self.last_sync_at: float | None = None
        self.applied = 0
        self._ws_failed_at: float | None = None

    async def run(self) -> None:
        while True:
            self._beat()
            try:
                if self._use_ws():
                    await self._run_ws()
                else:
                    await self._poll_once()
                    continue
            except (GatewayUnavailable, aiohttp.ClientError, TimeoutError, OSError) as e:
                self._down(f"push channel: {e}")
            except GatewayError as e:
                if self.mode == "auto" and e.status in (400, 404, 405, 426, 501):
                    log.warning("WebSocket push refused (%s); falling back to long-poll", e)
                    self._ws_failed_at = time.monotonic()
                    continue
                self._down(f"push channel: {e}")
            await sleep_beating(self.backoff.next_delay(), self._beat)

    def _down(self, why: str) -> None:
        if self.state != "down":
            log.warning("%s; reconnecting with backoff", why)
        self.state = "down"
        self.client.note_failure(why)

    def _use_ws(self) -> bool:
        if self.mode == "long-poll":
            return False
        if self.mode == "websocket" or self._ws_failed_at is None:
            return True
        return time.monotonic() - self._ws_failed_at > WS_RETRY_S

    async def _handle(self, cmd: Command) -> bool:
        """Apply one command if new; True when it was at or below the cursor already."""
        if cmd["seq"] <= await self._cursor():
            log.debug("command %d already applied; acking again", cmd["seq"])
            return True
        await self._apply(cmd)
        self.applied += 1
        return False

    async def _poll_once(self) -> None:
        after = await self._cursor()
        batch = await await_beating(self.client.get_commands(after, self.long_poll_wait_s),
                                    self._beat)
        self._connected("long-poll")
        upto = after
        for cmd in batch.get("commands", []):
            await self._handle(cmd)
            upto = max(upto, cmd["seq"])
        if upto > after:
            await self.client.ack_commands(upto)

    def _connected(self, how: PushMode) -> None:
        if self.state != how:
            log.info("push channel up (%s)", how)
        self.state = how
        self.last_sync_at = time.time()
        self.backoff.reset()
        self._beat()

    async def _run_ws(self) -> None:
        after = await self._cursor()
        headers = await self.client.auth_headers()
        try:
            ws = await self.client.background.ws_connect(
                self.client.url(hub_api.HUB_WS), params={"after": str(after)}, headers=headers,
                heartbeat=self.heartbeat_s, timeout=aiohttp.ClientWSTimeout(
                    ws_close=self.client.request_timeout_s),
                autoping=True)
        except aiohttp.WSServerHandshakeError as e:
            if e.status == 401:
                self.client.token_expired()
            raise GatewayError(e.status, "ws_handshake", str(e.message)) from e
        async with ws:
            self._connected("websocket")
            self._ws_failed_at = None
            while True:
                try:
                    # aiohttp pings every heartbeat_s and closes a silent socket; this timeout
                    # only lets the task report that it is alive while idle.
                    async with asyncio.timeout(BEAT_EVERY_S):
                        msg = await ws.receive()
                except TimeoutError:
                    self._beat()
                    continue
                if msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSING,
                                aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.ERROR):
                    raise GatewayUnavailable(f"WebSocket closed ({msg.type.name})")
                if msg.type != aiohttp.WSMsgType.TEXT:
                    continue
                self.last_sync_at = time.time()
                self._beat()
                try:
                    data = json.loads(msg.data)
                except json.JSONDecodeError:
                    log.warning("push channel: ignoring a non-JSON message")
                    continue
                if data.get("type") != "command" or "command" not in data:
                    continue
                cmd = cast(Command, data["command"])
                await self._handle(cmd)
                await ws.send_json({"type": "ack", "upto": cmd["seq"]})
