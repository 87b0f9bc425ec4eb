"""Hub sync API: boards, catalog, event batches, and commands (long-poll, ack, WebSocket).

WebSocket protocol (`protocol.hub_api.WsServerMessage` / `WsClientMessage`): the hub connects to
``/hub/ws?after=<cursor>``; the gateway sends every unacked command with seq > cursor, then new
ones as they are queued, and ``{"type": "ping"}`` when idle. The hub answers
``{"type": "ack", "upto": seq}`` once it has applied and committed them. Unacked commands are sent
again on the next connection from the cursor the hub gives (which may repeat some: the hub
dedupes by seq). A malformed client message closes the socket with code 1008.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import weakref
from typing import TypedDict

from aiohttp import WSCloseCode, WSMsgType, web

from protocol import hub_api as api

from ..auth import HubIdentity
from ..catalog import site_catalog
from ..errors import GatewayError
from ..http import RouteSpec, hub_of, json_response, query_int, read_json
from ..keys import COMMANDS, DB, HUB_SYNC, METRICS, SETTINGS
from ..schemas import validate

log = logging.getLogger(__name__)

SOCKETS = web.AppKey("hub_sockets", weakref.WeakSet[web.WebSocketResponse])
MAX_SEQ = 2**53


async def list_boards(request: web.Request) -> web.Response:
    return json_response({"boards": request.app[HUB_SYNC].boards(hub_of(request))})


async def put_board(request: web.Request) -> web.Response:
    body = await read_json(request, api.BoardRegistration)
    board = await request.app[HUB_SYNC].register_board(
        hub_of(request), request.match_info["board_uid"], body)
    return json_response(board)


async def catalog(request: web.Request) -> web.Response:
    settings = request.app[SETTINGS]
    return json_response(site_catalog(request.app[DB], hub_of(request).site, settings.currency))


class _EventsEnvelope(TypedDict):
    """EventBatch with each event checked on its own (a bad event is rejected, not the batch)."""

    events: list[object]


async def post_events(request: web.Request) -> web.Response:
    raw = await read_json(request, _EventsEnvelope)
    results = await request.app[HUB_SYNC].ingest(hub_of(request), raw["events"])
    return json_response({"results": results})


async def get_commands(request: web.Request) -> web.Response:
    settings = request.app[SETTINGS]
    after = query_int(request, "after", 0, 0, MAX_SEQ)
    max_wait = int(min(api.LONG_POLL_MAX_WAIT_S, settings.long_poll_max_s))
    wait = query_int(request, "wait", 0, 0, max_wait)
    hub = hub_of(request)
    commands = await request.app[COMMANDS].wait(hub.hub_id, after, float(wait))
    if commands:
        request.app[METRICS].inc("gateway_commands_sent_total", {"channel": "poll"},
                                 len(commands))
    cursor = commands[-1]["seq"] if commands else after
    return json_response({"commands": commands, "cursor": cursor})


async def ack_commands(request: web.Request) -> web.Response:
    body = await read_json(request, api.CommandAck)
    acked = await request.app[COMMANDS].ack(hub_of(request).hub_id, body["upto"])
    return json_response({"acked": acked})


async def _ws_sender(app: web.Application, ws: web.WebSocketResponse, hub: HubIdentity,
                     cursor: int) -> None:
    queue = app[COMMANDS]
    idle_s = app[SETTINGS].ws_heartbeat_s
    while not ws.closed:
        commands = await queue.wait(hub.hub_id, cursor, idle_s)
        if ws.closed:
            return
        if not commands:
            await ws.send_json({"type": "ping"})
            continue
        for command in commands:
            await ws.send_json({"type": "command", "command": command})
            cursor = command["seq"]
        app[METRICS].inc("gateway_commands_sent_total", {"channel": "ws"}, len(commands))


async def _ws_reader(app: web.Application, ws: web.WebSocketResponse, hub: HubIdentity) -> None:
    async for msg in ws:
        if msg.type != WSMsgType.TEXT:
            await ws.close(code=WSCloseCode.UNSUPPORTED_DATA, message=b"text frames only")
            return
        try:
            body = validate(api.WsClientMessage, json.loads(msg.data))
            await app[COMMANDS].ack(hub.hub_id, body["upto"])
        except (ValueError, GatewayError) as exc:
            reason = exc.message if isinstance(exc, GatewayError) else "malformed JSON"
            log.warning("bad WebSocket message from hub: %s", reason)
            await ws.close(code=WSCloseCode.POLICY_VIOLATION, message=reason[:120].encode())
            return


async def websocket(request: web.Request) -> web.WebSocketResponse:
    hub = hub_of(request)
    after = query_int(request, "after", 0, 0, MAX_SEQ)
    ws = web.WebSocketResponse(heartbeat=request.app[SETTINGS].ws_heartbeat_s * 2)
    await ws.prepare(request)
    request.app[SOCKETS].add(ws)
    log.info("hub connected (WebSocket)", extra={"after": after})
    sender = asyncio.create_task(_ws_sender(request.app, ws, hub, after))
    try:
        await _ws_reader(request.app, ws, hub)
    finally:
        sender.cancel()
        with contextlib.suppress(asyncio.CancelledError, ConnectionError):
            await sender
        if not ws.closed:
            await ws.close()
        log.info("hub disconnected (WebSocket)")
    return ws


async def close_sockets(app: web.Application) -> None:
    """on_shutdown: tell connected hubs we are going away (they reconnect from their cursor)."""
    for ws in list(app[SOCKETS]):
        await ws.close(code=WSCloseCode.GOING_AWAY, message=b"gateway shutting down")


ROUTES = (
    RouteSpec("GET", api.HUB_BOARDS, list_boards, "This hub's boards"),
    RouteSpec("PUT", api.HUB_BOARD, put_board, "Register or update a board",
              request=api.BoardRegistration, response=api.Board),
    RouteSpec("GET", api.HUB_CATALOG, catalog, "The catalog at this hub's site prices",
              response=api.Catalog),
    RouteSpec("POST", api.HUB_EVENTS, post_events,
              "Ingest a batch of hub events, idempotent by event id; one result per event",
              request=api.EventBatch, response=api.EventBatchResult),
    RouteSpec("GET", api.HUB_COMMANDS, get_commands,
              "Commands after the cursor (long-poll with wait seconds)",
              response=api.CommandBatch, query=("after", "wait")),
    RouteSpec("POST", api.HUB_COMMANDS_ACK, ack_commands,
              "Acknowledge every command up to a seq", request=api.CommandAck),
    RouteSpec("GET", api.HUB_WS, websocket, "WebSocket push of commands from the cursor",
              query=("after",), status=101),
)
