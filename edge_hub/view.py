"""The hub's implementation of the status page's ``HubView`` (edge_hub/status/view.py)."""

from __future__ import annotations

import asyncio
import collections
import logging
import os
import shutil
import subprocess
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edge_hub.vend import VendState

if TYPE_CHECKING:
    from edge_hub.daemon import Daemon

log = logging.getLogger(__name__)

JsonDict = dict[str, Any]
SUBSCRIBER_QUEUE = 256
THERMAL = Path("/sys/class/thermal/thermal_zone0/temp")


class RecentLogs(logging.Handler):
    """Keeps the last warnings and errors in memory for the status page (a bounded ring)."""

    def __init__(self, capacity: int = 1000) -> None:
        super().__init__(level=logging.WARNING)
        self.records: collections.deque[JsonDict] = collections.deque(maxlen=capacity)
        self.listeners: list[Any] = []

    def emit(self, record: logging.LogRecord) -> None:
        try:
            entry = {"at": record.created, "level": record.levelname, "logger": record.name,
                     "message": record.getMessage(),
                     "board_uid": getattr(record, "board_uid", None),
                     "order_id": getattr(record, "order_id", None)}
        except Exception:  # a broken log call must not break the hub
            self.handleError(record)
            return
        self.records.append(entry)
        for fn in self.listeners:
            fn(entry)


def _pi_health() -> JsonDict:
    temp = None
    try:
        temp = int(THERMAL.read_text().strip()) / 1000.0
    except (OSError, ValueError):
        pass
    undervoltage = throttled = None
    if shutil.which("vcgencmd"):
        try:
            out = subprocess.run(["vcgencmd", "get_throttled"], capture_output=True, text=True,
                                 timeout=1.0, check=False).stdout
            bits = int(out.strip().split("=")[1], 16)
            undervoltage, throttled = bool(bits & 0x1 or bits & 0x10000), bool(bits & 0x4)
        except (OSError, ValueError, IndexError, subprocess.TimeoutExpired):
            pass
    return {"cpu_temp_c": temp, "undervoltage": undervoltage, "throttled": throttled}


class HubViewImpl:
    def __init__(self, daemon: Daemon, logs: RecentLogs) -> None:
        self.d = daemon
        self.logs = logs
        self._subs: list[asyncio.Queue[JsonDict]] = []
        self._pi: JsonDict = {"cpu_temp_c": None, "undervoltage": None, "throttled": None}
        self._pi_at = 0.0
        logs.listeners.append(lambda entry: self.publish({"kind": "log", **entry}))

    # --- events ------------------------------------------------------------------------------
    def publish(self, event: JsonDict) -> None:
        for q in self._subs:
            if q.full():
                continue  # a slow page loses events, never the hub
            q.put_nowait(event)

    def subscribe(self) -> asyncio.Queue[JsonDict]:
        q: asyncio.Queue[JsonDict] = asyncio.Queue(maxsize=SUBSCRIBER_QUEUE)
        self._subs.append(q)
        return q

    def unsubscribe(self, q: asyncio.Queue[JsonDict]) -> None:
        if q in self._subs:
            self._subs.remove(q)

    # --- reads -------------------------------------------------------------------------------
    def overview(self) -> JsonDict:
        d = self.d
        hub, client, push = d.hub, d.client, d.push
        try:
            free: int | None = shutil.disk_usage(d.config.hub.data_dir).free
        except OSError:
            free = None
        if time.monotonic() - self._pi_at > 30:
            self._pi, self._pi_at = _pi_health(), time.monotonic()
        reason = hub.not_taking_orders_reason
        return {
            "version": d.version, "started_at": d.started_at,
            "uptime_s": time.time() - d.started_at, "hub_id": d.config.hub.id,
            "gateway": {"url": client.base_url, "connected": client.connected,
                        "push": push.state if push else "down",
                        "last_sync_at": max(filter(None, [client.last_ok_at,
                                                          push.last_sync_at if push else None]),
                                            default=None),
                        "last_error": client.last_error, "last_error_at": client.last_error_at},
            "outbox": {k: v for k, v in hub.store.outbox.stats().items() if k != "lanes"},
            "clock": {"synced": d.clock.synced, "offset_s": d.clock.offset_s},
            "disk_free_bytes": free, "pi": dict(self._pi),
            "taking_orders": reason is None, "not_taking_orders_reason": reason,
        }

    def _current_order(self, uid: str) -> JsonDict | None:
        s = self.d.hub.session_for_board(uid)
        if s is None:
            return None
        return {"order_id": s.order_id, "amount": s.amount, "currency": s.currency,
                "state": s.state.value, "upi_uri": s.upi_uri, "expires_at": s.qr_expires_wall}

    def boards(self) -> list[JsonDict]:
        out = []
        for uid, b in sorted(self.d.hub.boards.items()):
            counters: JsonDict = {"auth_drops": b.auth_drops}
            if b.conn is not None:
                st = b.conn.link.stats
                counters.update({k: getattr(st, k) for k in st.__slots__})
            s = self.d.hub.session_for_board(uid)
            out.append({
                "board_uid": uid, "port": b.port, "addr": b.addr, "link_up": b.link_up,
                "link_since": b.link_since, "last_seen": b.last_seen, "firmware": b.firmware,
                "protocol_version": b.protocol_version,
                "vend_state": s.state.value if s else "idle", "board_state": b.board_state,
                "in_service": b.in_service, "out_of_service_reason": b.out_of_service_reason,
                "current_order": self._current_order(uid), "counters": counters,
            })
        return out

    async def orders(self, *, board_uid: str | None = None, state: str | None = None,
                     limit: int = 100) -> list[JsonDict]:
        if state is not None and state not in {s.value for s in VendState}:
            raise ValueError(f"unknown order state {state!r}")
        rows = await self.d.hub.store.list_sessions(board_uid=board_uid, state=state,
                                                    limit=limit)
        return [{"order_id": s.order_id, "board_uid": s.board_uid, "state": s.state.value,
                 "amount": s.amount, "currency": s.currency, "product": s.product,
                 "options": list(s.options), "created_at": s.created_at,
                 "needs_attention": s.needs_attention, "audit": audit}
                for s, audit in rows]

    def recent_logs(self, limit: int = 300) -> list[JsonDict]:
        return list(self.logs.records)[-limit:] if limit > 0 else []

    # --- actions -----------------------------------------------------------------------------
    async def sync_now(self) -> None:
        self.d.sender.wake()
        await self.d.sender.drain()

    async def set_in_service(self, board_uid: str, in_service: bool, reason: str) -> None:
        board = self.d.hub.boards[board_uid]  # KeyError for an unknown board
        await self.d.hub.store.set_in_service(board_uid, in_service, reason)
        board.in_service = in_service
        board.out_of_service_reason = None if in_service else reason
        log.warning("board %s %s by a technician%s", board_uid,
                    "back in service" if in_service else "taken out of service",
                    "" if in_service else f": {reason}")
        self.publish({"kind": "board", "board_uid": board_uid})

    async def resend_pending(self, board_uid: str) -> bool:
        return self.d.hub.resend_pending(board_uid)

    async def support_bundle(self) -> JsonDict:
        return {"generated_at": time.time(), "config": self.d.config.redacted(),
                "overview": self.overview(), "boards": self.boards(),
                "outbox": self.d.hub.store.outbox.stats(), "logs": self.recent_logs(1000),
                "tasks": self.d.supervisor.snapshot(), "counters": dict(self.d.hub.counters),
                "pid": os.getpid()}
