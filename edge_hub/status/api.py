"""The JSON API under /api/ that the page itself uses (documented in docs/status-page.md)."""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Mapping
from typing import Any

from aiohttp import web

from .errors import StatusError
from .keys import SETTINGS, VIEW
from .qr import qr_svg
from .security import current_session
from .view import JsonDict

logger = logging.getLogger(__name__)

BOARD_UID_RE = re.compile(r"[A-Za-z0-9_.:-]{1,64}")
STATE_RE = re.compile(r"[a-z_]{1,32}")
MAX_REASON = 64  # the board shows the reason on its display
DEFAULT_ORDERS_LIMIT = 100
DEFAULT_LOGS_LIMIT = 300
# Keys whose values never leave the hub in a support bundle, whatever the view put there.
SECRET_KEY_RE = re.compile(
    r"secret|passw|token|api_?key|private|credential|master_?key|board_?key|hmac|signature|cookie",
    re.IGNORECASE,
)
REDACTED = "[redacted]"


def _dumps(data: Any) -> str:
    return json.dumps(data, default=str, ensure_ascii=False)


def _json(data: Any, status: int = 200) -> web.Response:
    return web.json_response(data, status=status, dumps=_dumps)


def _query(request: web.Request, allowed: frozenset[str]) -> Mapping[str, str]:
    unknown = sorted(set(request.query) - allowed)
    if unknown:
        raise StatusError(
            400,
            "validation_error",
            f"unknown query parameter(s): {', '.join(unknown)}",
            {"invalid": {k: "unknown parameter" for k in unknown}},
        )
    return request.query


def _limit(query: Mapping[str, str], default: int, maximum: int) -> int:
    raw = query.get("limit")
    if raw is None:
        return min(default, maximum)
    if not raw.isdigit() or not 1 <= int(raw) <= maximum:
        raise StatusError(
            400,
            "validation_error",
            f"limit must be an integer in 1..{maximum}",
            {"invalid": {"limit": f"integer in 1..{maximum}"}},
        )
    return int(raw)


def _board_uid(raw: str, where: str = "board_uid") -> str:
    if not BOARD_UID_RE.fullmatch(raw):
        raise StatusError(
            400,
            "validation_error",
            "board_uid must be 1..64 letters, digits or _.:-",
            {"invalid": {where: "1..64 of [A-Za-z0-9_.:-]"}},
        )
    return raw


def _with_qr(board: JsonDict) -> JsonDict:
    order = board.get("current_order")
    if not isinstance(order, dict) or not order.get("upi_uri"):
        return board
    return {**board, "current_order": {**order, "qr_svg": qr_svg(str(order["upi_uri"]))}}


async def api_overview(request: web.Request) -> web.StreamResponse:
    return _json(request.app[VIEW].overview())


async def api_boards(request: web.Request) -> web.StreamResponse:
    return _json({"boards": [_with_qr(b) for b in request.app[VIEW].boards()]})


async def api_orders(request: web.Request) -> web.StreamResponse:
    query = _query(request, frozenset({"board_uid", "state", "limit"}))
    board_uid = _board_uid(query["board_uid"]) if query.get("board_uid") else None
    state = query.get("state") or None
    if state is not None and not STATE_RE.fullmatch(state):
        raise StatusError(
            400,
            "validation_error",
            "state must be an order state such as payment_pending",
            {"invalid": {"state": "1..32 of [a-z_]"}},
        )
    limit = _limit(query, DEFAULT_ORDERS_LIMIT, request.app[SETTINGS].orders_limit_max)
    try:
        orders = await request.app[VIEW].orders(board_uid=board_uid, state=state, limit=limit)
    except ValueError as exc:  # the hub names what it cannot filter on, e.g. an unknown state
        raise StatusError(
            400, "validation_error", str(exc), {"invalid": {"state": str(exc)}}
        ) from None
    return _json({"orders": orders})


async def api_logs(request: web.Request) -> web.StreamResponse:
    query = _query(request, frozenset({"limit"}))
    limit = _limit(query, DEFAULT_LOGS_LIMIT, request.app[SETTINGS].logs_limit_max)
    return _json({"logs": request.app[VIEW].recent_logs(limit)})


async def _json_body(request: web.Request) -> JsonDict:
    if request.content_type != "application/json":
        raise StatusError(415, "unsupported_media_type", "send a JSON body (application/json)")
    try:
        data = await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise StatusError(400, "invalid_json", "the body is not valid JSON") from None
    if not isinstance(data, dict):
        raise StatusError(400, "validation_error", "the body must be a JSON object")
    return data


def _service_request(data: JsonDict) -> tuple[bool, str]:
    unknown = sorted(set(data) - {"in_service", "reason"})
    if unknown:
        raise StatusError(
            400,
            "validation_error",
            f"unknown field(s): {', '.join(unknown)}",
            {"invalid": {k: "unknown field" for k in unknown}},
        )
    if "in_service" not in data:
        raise StatusError(
            400, "validation_error", "in_service is required", {"missing": ["in_service"]}
        )
    in_service = data["in_service"]
    if not isinstance(in_service, bool):
        raise StatusError(
            400,
            "validation_error",
            "in_service must be true or false",
            {"invalid": {"in_service": "boolean"}},
        )
    reason = data.get("reason", "")
    if not isinstance(reason, str):
        raise StatusError(
            400, "validation_error", "reason must be a string", {"invalid": {"reason": "string"}}
        )
    reason = reason.strip()
    if not in_service and not reason:
        raise StatusError(
            400,
            "validation_error",
            "say why the board goes out of service (the board shows the reason)",
            {"missing": ["reason"]},
        )
    if len(reason) > MAX_REASON or not reason.isprintable():
        raise StatusError(
            400,
            "validation_error",
            f"reason must be printable text of at most {MAX_REASON} characters",
            {"invalid": {"reason": f"printable, at most {MAX_REASON} characters"}},
        )
    return in_service, reason or "back in service"


async def api_sync(request: web.Request) -> web.StreamResponse:
    logger.info("status page: %s asked for a sync now", current_session(request).user)
    await request.app[VIEW].sync_now()
    return _json({"ok": True})


async def api_set_service(request: web.Request) -> web.StreamResponse:
    board_uid = _board_uid(request.match_info["board_uid"])
    in_service, reason = _service_request(await _json_body(request))
    try:
        await request.app[VIEW].set_in_service(board_uid, in_service, reason)
    except KeyError:
        raise StatusError(404, "unknown_board", f"no board {board_uid} on this hub") from None
    logger.info(
        "status page: %s put board %s %s: %s",
        current_session(request).user,
        board_uid,
        "in service" if in_service else "out of service",
        reason,
    )
    return _json({"board_uid": board_uid, "in_service": in_service, "reason": reason})


async def api_resend(request: web.Request) -> web.StreamResponse:
    board_uid = _board_uid(request.match_info["board_uid"])
    try:
        resent = await request.app[VIEW].resend_pending(board_uid)
    except KeyError:
        raise StatusError(404, "unknown_board", f"no board {board_uid} on this hub") from None
    logger.info(
        "status page: %s asked to resend the pending command to board %s (resent=%s)",
        current_session(request).user,
        board_uid,
        resent,
    )
    return _json({"board_uid": board_uid, "resent": resent})


def redact(value: Any) -> Any:
    """A copy of `value` with every secret-looking key's value replaced (defence in depth)."""
    if isinstance(value, dict):
        return {
            k: REDACTED if isinstance(k, str) and SECRET_KEY_RE.search(k) else redact(v)
            for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [redact(v) for v in value]
    return value


async def api_support_bundle(request: web.Request) -> web.StreamResponse:
    """A JSON download; POST with the CSRF token (form field or header) as it holds hub state."""
    bundle = redact(await request.app[VIEW].support_bundle())
    hub_id = str(request.app[VIEW].overview().get("hub_id") or "hub")
    safe_id = re.sub(r"[^A-Za-z0-9_-]", "_", hub_id)[:40]
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    logger.info("status page: %s downloaded a support bundle", current_session(request).user)
    return web.Response(
        text=json.dumps(bundle, default=str, indent=2, ensure_ascii=False),
        content_type="application/json",
        headers={"Content-Disposition": f'attachment; filename="support-{safe_id}-{stamp}.json"'},
    )


__all__ = [
    "api_boards",
    "api_logs",
    "api_orders",
    "api_overview",
    "api_resend",
    "api_set_service",
    "api_support_bundle",
    "api_sync",
    "redact",
]
