"""The seam between the status page and the hub: what the page needs to read and to do.

The hub daemon implements `HubView`; the status app (`create_status_app`) only ever talks to it.
Every dict is JSON-ready: str keys; values are int, float, str, bool, None, lists or dicts.
Times are the hub's wall clock in Unix seconds (float) unless noted; None means "never"/"unknown".
Money is integer paise.
"""

from __future__ import annotations

import asyncio
from typing import Any, Protocol, runtime_checkable

JsonDict = dict[str, Any]


@runtime_checkable
class HubView(Protocol):
    def overview(self) -> JsonDict:
        """The hub as a whole.

        Keys: version, started_at, uptime_s, hub_id,
        gateway: {url, connected, push: "websocket"|"long-poll"|"down", last_sync_at, last_error,
        last_error_at}, outbox: {depth, bytes, oldest_age_s, dropped: {telemetry: int}},
        clock: {synced, offset_s}, disk_free_bytes,
        pi: {cpu_temp_c, undervoltage, throttled} (each None = not available on this system),
        taking_orders: bool, not_taking_orders_reason: str | None.
        """
        ...

    def boards(self) -> list[JsonDict]:
        """One dict per known board.

        Keys: board_uid, port, addr, link_up, link_since, last_seen, firmware, protocol_version,
        vend_state, in_service, out_of_service_reason,
        current_order: {order_id, amount, currency, state, upi_uri, expires_at} | None,
        counters: {crc_errors, retransmits, mac_failures, frames_rx, frames_tx, ...}.
        """
        ...

    async def orders(
        self, *, board_uid: str | None = None, state: str | None = None, limit: int = 100
    ) -> list[JsonDict]:
        """Recent orders, needing attention first, then newest first.

        Keys: order_id, board_uid, state, amount, currency, product, options, created_at,
        needs_attention: bool, audit: [{at, from, to, reason}].
        """
        ...

    def recent_logs(self, limit: int = 300) -> list[JsonDict]:
        """Log records at warning and above, oldest first.

        Keys: at, level (name, e.g. "WARNING"), logger, message, board_uid, order_id.
        """
        ...

    def subscribe(self) -> asyncio.Queue[JsonDict]:
        """A bounded queue of change events {"kind": "board"|"order"|"overview"|"log", ...}.

        The hub never blocks on a slow subscriber: when the queue is full it drops events.
        """
        ...

    def unsubscribe(self, q: asyncio.Queue[JsonDict]) -> None: ...

    async def sync_now(self) -> None:
        """Push the outbox and pull commands from the gateway now."""
        ...

    async def set_in_service(self, board_uid: str, in_service: bool, reason: str) -> None:
        """Take a board out of service (it rejects orders showing `reason`) or back.

        Raises KeyError for an unknown board.
        """
        ...

    async def resend_pending(self, board_uid: str) -> bool:
        """Resend the pending command (payment QR or vend approval) to the board.

        Returns False when nothing is pending. Raises KeyError for an unknown board.
        """
        ...

    async def support_bundle(self) -> JsonDict:
        """Config with secrets removed, recent logs, board and outbox state."""
        ...


__all__ = ["HubView", "JsonDict"]
