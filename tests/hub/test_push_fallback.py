"""The push channel falls back to long-polling when the WebSocket is refused, resumes from the
cursor, and acks only after the command's effect is committed. A stand-in gateway (aiohttp on
127.0.0.1) refuses the upgrade, which the real one never does."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from aiohttp import web

from edge_hub.backoff import Backoff
from edge_hub.clock import Clock
from edge_hub.uplink.client import GatewayClient, GatewayUnavailable
from edge_hub.uplink.push import PushChannel
from protocol import hub_api
from tests.hub.conftest import serve


async def test_websocket_refused_falls_back_to_long_poll_from_the_cursor() -> None:
    seen_after: list[str] = []
    acks: list[int] = []
    commands = [{"seq": s, "type": "catalog_changed", "data": {}, "created_at": 0}
                for s in (5, 6, 7)]

    async def token(request: web.Request) -> web.Response:
        return web.json_response({"token": "t", "expires_in": 900,
                                  "server_time": int(time.time())})

    async def ws(request: web.Request) -> web.Response:
        return web.json_response({"error": {"code": "not_found", "message": "no ws",
                                            "status": 404, "details": {}, "request_id": "x"}},
                                 status=404)

    async def poll(request: web.Request) -> web.Response:
        after = int(request.query["after"])
        seen_after.append(request.query["after"])
        batch = [c for c in commands if c["seq"] > after]
        if not batch:
            await asyncio.sleep(0.05)
        return web.json_response({"commands": batch,
                                  "cursor": max([after] + [c["seq"] for c in batch])})

    async def ack(request: web.Request) -> web.Response:
        acks.append(int((await request.json())["upto"]))
        return web.json_response({"acked": 1})

    app = web.Application()
    app.router.add_post(hub_api.AUTH_TOKEN, token)
    app.router.add_get(hub_api.HUB_WS, ws)
    app.router.add_get(hub_api.HUB_COMMANDS, poll)
    app.router.add_post(hub_api.HUB_COMMANDS_ACK, ack)
    runner, url = await serve(app)
    client = GatewayClient(url, "hub-1", "s", Clock("b"), request_timeout_s=2,
                           refresh_margin_s=60)
    await client.start()
    cursor = {"value": 5}  # seq 5 was applied before a restart
    applied: list[int] = []

    async def get_cursor() -> int:
        return cursor["value"]

    async def apply(cmd: Any) -> None:
        assert not acks or acks[-1] < cmd["seq"]  # never acked before it was applied
        applied.append(cmd["seq"])
        cursor["value"] = cmd["seq"]  # "committed" with its effect

    push = PushChannel(client, cursor=get_cursor, apply=apply, mode="auto", long_poll_wait_s=1,
                       heartbeat_s=5, backoff=Backoff(0.01, 0.05))
    task = asyncio.create_task(push.run())
    try:
        for _ in range(200):
            if acks and acks[-1] == 7:
                break
            await asyncio.sleep(0.01)
        assert applied == [6, 7]  # resumed after the cursor; 5 was not applied twice
        assert acks[-1] == 7 and push.state == "long-poll"
        assert seen_after[0] == "5"
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await client.close()
        await runner.cleanup()


async def test_refused_token_is_not_hammered() -> None:
    calls: list[float] = []

    async def token(request: web.Request) -> web.Response:
        calls.append(time.monotonic())
        return web.json_response({"error": {"code": "rate_limited", "message": "slow down",
                                            "status": 429, "details": {"retry_after_s": 0.3},
                                            "request_id": "x"}}, status=429)

    app = web.Application()
    app.router.add_post(hub_api.AUTH_TOKEN, token)
    runner, url = await serve(app)
    client = GatewayClient(url, "hub-1", "s", Clock("b"), request_timeout_s=2,
                           refresh_margin_s=60, token_backoff=Backoff(0.05, 1.0))
    await client.start()
    try:
        failures = 0
        end = time.monotonic() + 0.5
        while time.monotonic() < end:  # every order in this half second wants a token
            try:
                await client.token()
            except GatewayUnavailable:
                failures += 1
            await asyncio.sleep(0.005)
        assert failures > 20
        assert len(calls) <= 2  # retry_after_s 0.3 is respected
        assert client.offline
    finally:
        await client.close()
        await runner.cleanup()
