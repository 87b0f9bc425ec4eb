"""An in-memory HubView whose state a test drives (boards, orders, logs, change events)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

JsonDict = dict[str, Any]

UPI_URI = "upi://pay?pa=vendsite@razorpay&pn=Vending&tr={order_id}&am={rupees}&cu=INR"


KNOWN_STATES = frozenset({"awaiting_payment", "payment_pending", "paid", "dispensing", "fulfilled"})


def board_uid(n: int) -> str:
    return f"{n:024x}"


class FakeHub:
    """Implements edge_hub.status.view.HubView; records every action it is asked for."""

    def __init__(self, n_boards: int = 3, queue_size: int = 256) -> None:
        now = time.time()
        self.queue_size = queue_size
        self.subscribers: list[asyncio.Queue[JsonDict]] = []
        self.calls: list[tuple[str, tuple[Any, ...]]] = []
        self.resend_result = True
        self.fail_with: Exception | None = None
        self.bundle: JsonDict = {
            "config": {
                "hub_id": "site-1-hub",
                "gateway": {"url": "http://127.0.0.1:1", "secret": "s3"},
            },
            "logs": [],
        }
        self._overview: JsonDict = {
            "version": "0.1.0",
            "started_at": now - 3600,
            "uptime_s": 3600.0,
            "hub_id": "site-1-hub",
            "gateway": {
                "url": "http://127.0.0.1:8080",
                "connected": True,
                "push": "websocket",
                "last_sync_at": now - 2,
                "last_error": None,
                "last_error_at": None,
            },
            "outbox": {"depth": 0, "bytes": 0, "oldest_age_s": None, "dropped": {"telemetry": 0}},
            "clock": {"synced": True, "offset_s": 0.01},
            "disk_free_bytes": 12 * 1024**3,
            "pi": {"cpu_temp_c": None, "undervoltage": None, "throttled": None},
            "taking_orders": True,
            "not_taking_orders_reason": None,
        }
        self._boards: dict[str, JsonDict] = {}
        self._orders: dict[str, JsonDict] = {}
        self._logs: list[JsonDict] = []
        for i in range(1, n_boards + 1):
            self.add_board(board_uid(i), port=f"/dev/ttyUSB{i - 1}", addr=0)

    # --- driving the state ---------------------------------------------------------------------
    def publish(self, event: JsonDict) -> None:
        for q in self.subscribers:
            try:
                q.put_nowait(event)
            except asyncio.QueueFull:
                pass  # like the hub: a slow page loses events, never blocks the hub

    def add_board(self, uid: str, **fields: Any) -> None:
        now = time.time()
        board: JsonDict = {
            "board_uid": uid,
            "port": "/dev/ttyUSB0",
            "addr": 0,
            "link_up": True,
            "link_since": now - 600,
            "last_seen": now - 1,
            "firmware": "vend-fw 1.2.0",
            "protocol_version": 1,
            "vend_state": "idle",
            "in_service": True,
            "out_of_service_reason": None,
            "current_order": None,
            "counters": {
                "crc_errors": 0,
                "retransmits": 0,
                "mac_failures": 0,
                "frames_rx": 120,
                "frames_tx": 118,
            },
        }
        board.update(fields)
        self._boards[uid] = board
        self.publish({"kind": "board", "board_uid": uid})

    def update_board(self, uid: str, **fields: Any) -> None:
        self._boards[uid].update(fields, last_seen=time.time())
        self.publish({"kind": "board", "board_uid": uid})

    def update_overview(self, **fields: Any) -> None:
        self._overview.update(fields)
        self.publish({"kind": "overview"})

    def put_order(self, order: JsonDict) -> None:
        self._orders[order["order_id"]] = order
        self.publish({"kind": "order", "order_id": order["order_id"]})

    def add_log(self, level: str, message: str, **fields: Any) -> None:
        record = {"at": time.time(), "level": level, "logger": "edge_hub.test", "message": message}
        record.update({"board_uid": None, "order_id": None, **fields})
        self._logs.append(record)
        self.publish({"kind": "log"})

    def purchase_step(self, uid: str, order_id: str, vend_state: str, order_state: str) -> None:
        """Move one board's purchase to the next state: the board and the order change together."""
        order = self._orders.get(order_id) or {
            "order_id": order_id,
            "board_uid": uid,
            "state": order_state,
            "amount": 2500,
            "currency": "INR",
            "product": "coffee",
            "options": ["sugar"],
            "created_at": time.time(),
            "needs_attention": False,
            "audit": [],
        }
        order["audit"].append(
            {
                "at": time.time(),
                "from": order["state"] if order["audit"] else None,
                "to": order_state,
                "reason": f"board {vend_state}",
            }
        )
        order["state"] = order_state
        self.put_order(order)
        current = None
        if vend_state not in ("idle", "done"):
            current = {
                "order_id": order_id,
                "amount": order["amount"],
                "currency": "INR",
                "state": order_state,
                "upi_uri": UPI_URI.format(order_id=order_id, rupees="25.00"),
                "expires_at": time.time() + 300,
            }
        self.update_board(uid, vend_state=vend_state, current_order=current)

    # --- HubView ---------------------------------------------------------------------------------
    def overview(self) -> JsonDict:
        if self.fail_with is not None:
            raise self.fail_with
        return {**self._overview, "uptime_s": time.time() - self._overview["started_at"]}

    def boards(self) -> list[JsonDict]:
        return [dict(b) for b in self._boards.values()]

    async def orders(
        self, *, board_uid: str | None = None, state: str | None = None, limit: int = 100
    ) -> list[JsonDict]:
        self.calls.append(("orders", (board_uid, state, limit)))
        if state is not None and state not in KNOWN_STATES:
            raise ValueError(f"unknown order state {state!r}")  # like the hub
        rows = [
            o
            for o in self._orders.values()
            if (board_uid is None or o["board_uid"] == board_uid)
            and (state is None or o["state"] == state)
        ]
        rows.sort(key=lambda o: (not o["needs_attention"], -o["created_at"]))
        return rows[:limit]

    def recent_logs(self, limit: int = 300) -> list[JsonDict]:
        return self._logs[-limit:]

    def subscribe(self) -> asyncio.Queue[JsonDict]:
        q: asyncio.Queue[JsonDict] = asyncio.Queue(self.queue_size)
        self.subscribers.append(q)
        return q

    def unsubscribe(self, q: asyncio.Queue[JsonDict]) -> None:
        self.subscribers.remove(q)

    async def sync_now(self) -> None:
        self.calls.append(("sync_now", ()))
        self.update_overview(gateway={**self._overview["gateway"], "last_sync_at": time.time()})

    async def set_in_service(self, board_uid: str, in_service: bool, reason: str) -> None:
        board = self._boards[board_uid]  # KeyError for an unknown board, like the hub
        self.calls.append(("set_in_service", (board_uid, in_service, reason)))
        self.update_board(
            board["board_uid"],
            in_service=in_service,
            out_of_service_reason=None if in_service else reason,
            vend_state="idle" if in_service else "out_of_service",
        )

    async def resend_pending(self, board_uid: str) -> bool:
        if board_uid not in self._boards:
            raise KeyError(board_uid)
        self.calls.append(("resend_pending", (board_uid,)))
        return self.resend_result

    async def support_bundle(self) -> JsonDict:
        self.calls.append(("support_bundle", ()))
        return self.bundle
