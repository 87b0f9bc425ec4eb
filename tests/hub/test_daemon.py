"""The daemon as a whole: the status page it serves (the real status app over our HubView),
systemd notifications, and a clean stop."""

from __future__ import annotations

import asyncio
import socket
import time
from pathlib import Path

import aiohttp

from edge_hub.sdnotify import Notifier
from edge_hub.simboard import PurchaseState, SimBoard
from edge_hub.status import hash_password
from edge_hub.status.view import HubView
from protocol import RejectReason
from tests.hub.conftest import HUB_SECRET, MASTER_KEY, Site, eventually

PASSWORD = "correct horse battery"


async def test_status_page_served_from_the_hub(site: Site) -> None:
    status = {"enabled": True, "host": "127.0.0.1", "port": 0,
              "users": [{"name": "tech", "password_hash": hash_password(PASSWORD)}]}
    hub = await site.start_hub(status=status)
    assert isinstance(hub.view, HubView)
    board = await site.add_board(1)
    await board.wait_connected(5)
    base = f"http://127.0.0.1:{hub.status_port}"
    jar = aiohttp.CookieJar(unsafe=True)  # keep cookies from an IP address
    async with aiohttp.ClientSession(cookie_jar=jar) as http:
        await _use_status_page(site, http, base, board)


async def _use_status_page(site: Site, http: aiohttp.ClientSession, base: str,
                           board: SimBoard) -> None:
    async with http.post(f"{base}/api/login",
                              json={"name": "tech", "password": PASSWORD}) as r:
        assert r.status == 200, await r.text()
        csrf = (await r.json())["csrf_token"]
    async with http.get(f"{base}/api/overview") as r:
        assert r.status == 200, await r.text()
        ov = await r.json()
    assert ov["hub_id"] == "hub-1" and ov["taking_orders"] is True
    assert set(ov["gateway"]) >= {"url", "connected", "push", "last_sync_at", "last_error"}
    assert set(ov["outbox"]) >= {"depth", "bytes", "oldest_age_s", "dropped"}
    uid = board.uid.hex()
    async with http.get(f"{base}/api/boards") as r:
        body = await r.json()
    boards = body["boards"] if isinstance(body, dict) else body
    assert [b["board_uid"] for b in boards] == [uid] and boards[0]["link_up"] is True
    async with http.post(f"{base}/api/boards/{uid}/service",
                              json={"in_service": False, "reason": "door open"},
                              headers={"X-CSRF-Token": csrf, "Origin": base}) as r:
        assert r.status == 200, await r.text()
    p = await board.request("water")
    assert p.state is PurchaseState.REJECTED and p.reject_reason == RejectReason.OUT_OF_SERVICE
    async with http.post(f"{base}/api/support-bundle",
                              headers={"X-CSRF-Token": csrf, "Origin": base}) as r:
        assert r.status == 200, await r.text()
        text = await r.text()
    assert HUB_SECRET not in text and MASTER_KEY.hex() not in text


async def test_ready_and_stopping_are_notified(site: Site, tmp_path: Path) -> None:
    path = tmp_path / "notify.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as srv:
        srv.bind(str(path))
        srv.settimeout(5)
        await site.start_hub(notifier=Notifier({"NOTIFY_SOCKET": str(path)}))
        first = srv.recv(4096).decode()
        assert first.startswith("READY=1\nSTATUS=")
        await site.stop_hub()
        assert "STOPPING=1" in srv.recv(4096).decode()


async def test_watchdog_pings_only_while_healthy(site: Site, tmp_path: Path) -> None:
    path = tmp_path / "notify.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as srv:
        srv.bind(str(path))
        srv.settimeout(5)
        hub = await site.start_hub(notifier=Notifier({"NOTIFY_SOCKET": str(path),
                                                      "WATCHDOG_USEC": "300000"}),
                                   watchdog_stall_s=3.0)
        assert srv.recv(4096).startswith(b"READY=1")
        assert b"WATCHDOG=1" in await _next_message(srv, b"WATCHDOG=1")
        # A supervised task that is gone for good (cancelled behind the supervisor's back).
        task = hub.supervisor._tasks["deadlines"].task
        assert task is not None
        task.cancel()
        await eventually(task.done, 2)
        pings = await _collect(srv, 0.6)
        assert not any(b"WATCHDOG=1" in m for m in pings[1:]), pings
        await site.stop_hub()


async def _next_message(srv: socket.socket, want: bytes) -> bytes:
    srv.setblocking(False)
    end = time.monotonic() + 5
    while time.monotonic() < end:
        try:
            m = srv.recv(4096)
            if want in m:
                return m
        except BlockingIOError:
            await asyncio.sleep(0.02)
    return b""


async def _collect(srv: socket.socket, seconds: float) -> list[bytes]:
    srv.setblocking(False)
    out: list[bytes] = []
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        try:
            out.append(srv.recv(4096))
        except BlockingIOError:
            await asyncio.sleep(0.02)
    return out
