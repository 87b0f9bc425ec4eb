"""Live updates: the hub's change events as a server-sent event stream (GET /api/events).

Messages: `hello` once ({"ping_s", "server_time"}), `change` per hub event (the event as the hub
gave it: {"kind": "board"|"order"|"overview"|"log", ...}), `ping` when quiet for `ping_s`
({"server_time"}). The page refetches what a change names and treats a missing ping as a lost
connection. A stream ends when its session does (logout, expiry).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import Any

from aiohttp import web

from .keys import SESSIONS, SETTINGS, STREAMS, VIEW
from .security import current_session

logger = logging.getLogger(__name__)

RETRY_MS = 1000  # how soon EventSource reconnects after losing the stream


def _message(event: str, data: Any) -> bytes:
    body = json.dumps(data, default=str, ensure_ascii=False)
    return f"event: {event}\ndata: {body}\n\n".encode()


async def api_events(request: web.Request) -> web.StreamResponse:
    view = request.app[VIEW]
    ping_s = request.app[SETTINGS].sse_ping_s
    response = web.StreamResponse(
        headers={
            "Content-Type": "text/event-stream",
            "Cache-Control": "no-store",
            "X-Accel-Buffering": "no",
        }
    )
    await response.prepare(request)
    task = asyncio.current_task()
    assert task is not None
    streams = request.app[STREAMS]
    streams.add(task)
    sessions, sid = request.app[SESSIONS], current_session(request).sid
    queue = view.subscribe()
    try:
        await response.write(f"retry: {RETRY_MS}\n".encode())
        await response.write(_message("hello", {"ping_s": ping_s, "server_time": time.time()}))
        # The stream lives as long as its session: after a logout or expiry it ends at the next
        # change or ping, and the page's reconnect then meets the login wall.
        while sessions.get(sid) is not None:
            try:
                event = await asyncio.wait_for(queue.get(), timeout=ping_s)
            except TimeoutError:
                await response.write(_message("ping", {"server_time": time.time()}))
                continue
            await response.write(_message("change", event))
    except ConnectionResetError:
        logger.debug("status page: live stream to %s closed", request.remote)
    finally:
        view.unsubscribe(queue)
        streams.discard(task)
    return response


async def close_streams(app: web.Application) -> None:
    """on_shutdown: end every live stream so the hub does not wait for them."""
    streams = app[STREAMS]
    for task in tuple(streams):
        task.cancel()


__all__ = ["api_events", "close_streams"]
