"""The live stream: hello, changes as the hub publishes them, pings, and clean endings."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import aiohttp
from aiohttp import web

from edge_hub.status import StatusSettings, create_status_app

from .conftest import PASSWORD, Tech
from .fake_hub import FakeHub, board_uid

READ_TIMEOUT_S = 5.0


async def next_message(content: aiohttp.StreamReader) -> tuple[str, Any]:
    """Read one server-sent event; returns (event name, parsed data)."""
    while True:
        raw = await asyncio.wait_for(content.readuntil(b"\n\n"), READ_TIMEOUT_S)
        if not raw.endswith(b"\n\n"):
            raise AssertionError(f"the stream ended: {raw!r}")
        fields = dict(
            line.split(": ", 1) for line in raw.decode().strip().split("\n") if ": " in line
        )
        if "event" in fields:
            return fields["event"], json.loads(fields["data"])


async def wait_until_unsubscribed(hub: FakeHub) -> None:
    for _ in range(100):
        if not hub.subscribers:
            return
        await asyncio.sleep(0.02)
    raise AssertionError("the stream did not unsubscribe from the hub")


async def test_stream_delivers_changes_and_pings(tech: Tech, hub: FakeHub) -> None:
    r = await tech.client.get("/api/events")
    assert r.status == 200
    assert r.headers["Content-Type"] == "text/event-stream"
    assert "default-src 'self'" in r.headers["Content-Security-Policy"]
    assert (await r.content.readuntil(b"\n")) == b"retry: 1000\n"
    event, hello = await next_message(r.content)
    assert event == "hello" and hello["ping_s"] == 0.2
    assert len(hub.subscribers) == 1

    hub.purchase_step(board_uid(1), "ord_9", "awaiting_payment", "payment_pending")
    assert await next_message(r.content) == ("change", {"kind": "order", "order_id": "ord_9"})
    assert await next_message(r.content) == (
        "change",
        {"kind": "board", "board_uid": board_uid(1)},
    )
    event, ping = await next_message(r.content)  # quiet for sse_ping_s
    assert event == "ping" and isinstance(ping["server_time"], float)
    hub.add_log("ERROR", "board 1 reset", board_uid=board_uid(1))
    assert await next_message(r.content) == ("change", {"kind": "log"})

    r.close()
    await wait_until_unsubscribed(hub)


async def test_stream_ends_with_its_session(tech: Tech, hub: FakeHub) -> None:
    r = await tech.client.get("/api/events")
    assert (await next_message(r.content))[0] == "hello"
    assert (await tech.post("/api/logout")).status == 200
    # at the next ping (sse_ping_s) the stream sees the session gone and ends
    tail = await asyncio.wait_for(r.content.read(), READ_TIMEOUT_S)
    assert b"event: change" not in tail
    await wait_until_unsubscribed(hub)
    assert (await tech.client.get("/api/events")).status == 401


async def test_each_page_gets_its_own_stream(tech: Tech, hub: FakeHub) -> None:
    a = await tech.client.get("/api/events")
    b = await tech.client.get("/api/events")
    for r in (a, b):
        assert (await next_message(r.content))[0] == "hello"
    hub.update_overview(taking_orders=False, not_taking_orders_reason="storage full")
    for r in (a, b):
        assert await next_message(r.content) == ("change", {"kind": "overview"})
    a.close()
    b.close()
    await wait_until_unsubscribed(hub)


async def test_shutdown_ends_open_streams(settings: StatusSettings) -> None:
    hub = FakeHub()
    runner = web.AppRunner(create_status_app(hub, settings))
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
        login = await http.post(
            f"http://127.0.0.1:{port}/api/login", json={"name": "tech", "password": PASSWORD}
        )
        assert login.status == 200
        stream = await http.get(f"http://127.0.0.1:{port}/api/events")
        assert (await next_message(stream.content))[0] == "hello"
        # without the on_shutdown hook this waits for aiohttp's 60 s shutdown timeout
        await asyncio.wait_for(runner.cleanup(), READ_TIMEOUT_S)
        assert hub.subscribers == []
        stream.close()
