"""The durable outbox: every event for the gateway is a row here before it is sent.

Two lanes, each sent in id order: ``money`` (vend and order records: never dropped) and
``telemetry`` (may be dropped oldest-first when the outbox is over its limits, and counted).
An event is deleted only after the gateway acknowledged it (per-event results).
When money records alone fill the limits, the outbox reports itself full and the hub stops
taking orders (it still stores every money record it is given).
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from protocol.hub_api import HubEvent

if TYPE_CHECKING:
    from edge_hub.store.store import Store, Tx

log = logging.getLogger(__name__)

TELEMETRY_BUFFER_MAX = 500  # events held in memory before a commit is forced


class Lane(StrEnum):
    MONEY = "money"
    TELEMETRY = "telemetry"


@dataclass(frozen=True, slots=True)
class OutboxRow:
    id: int
    event_id: str
    lane: Lane
    order_key: str | None
    body: str


@dataclass(slots=True)
class LaneStats:
    rows: int = 0
    bytes: int = 0


class Outbox:
    def __init__(self, store: Store, *, max_rows: int, max_bytes: int, max_age_s: float) -> None:
        self._store = store
        self.max_rows = max_rows
        self.max_bytes = max_bytes
        self.max_age_s = max_age_s
        self.lanes = {lane: LaneStats() for lane in Lane}
        self.dropped = {lane: 0 for lane in Lane}
        self._oldest_wall: float | None = None
        self.full_reason: str | None = None
        # (event id, JSON body, order key): serialised at once, a str is far smaller than dicts
        self._telemetry_buffer: list[tuple[str, str, str | None]] = []

    async def load(self) -> None:
        db = self._store.db
        async with db.execute("SELECT lane, COUNT(*), COALESCE(SUM(size), 0), MIN(created_wall) "
                              "FROM outbox GROUP BY lane") as cur:
            oldest: list[float] = []
            for lane, rows, size, first in await cur.fetchall():
                self.lanes[Lane(lane)] = LaneStats(int(rows), int(size))
                oldest.append(float(first))
        self._oldest_wall = min(oldest) if oldest else None
        async with db.execute("SELECT lane, count FROM dropped") as cur:
            for lane, count in await cur.fetchall():
                self.dropped[Lane(lane)] = int(count)
        self._check_full()

    # --- appending ---------------------------------------------------------------------------
    async def add(self, tx: Tx, event: HubEvent, lane: Lane = Lane.MONEY,
                  order_key: str | None = None) -> None:
        """Append inside the caller's transaction (the same one as the state change it reports)."""
        await self._add_many(tx, [(event["id"], _dump(event), order_key)], lane)

    async def _add_many(self, tx: Tx, events: list[tuple[str, str, str | None]],
                        lane: Lane) -> None:
        now_wall, now_mono = time.time(), time.monotonic()
        rows = []
        total = 0
        for event_id, body, key in events:
            total += len(body)
            rows.append((event_id, lane.value, key, body, len(body), now_mono, now_wall))
        await tx.db.executemany(
            "INSERT INTO outbox (event_id, lane, order_key, body, size, created_mono, "
            "created_wall) VALUES (?, ?, ?, ?, ?, ?, ?)", rows)

        def counted() -> None:
            stats = self.lanes[lane]
            stats.rows += len(rows)
            stats.bytes += total
            if self._oldest_wall is None:
                self._oldest_wall = now_wall
            self._check_full()

        tx.after_commit(counted)

    def buffer_telemetry(self, event: HubEvent, order_key: str | None = None) -> bool:
        """Telemetry is committed in batches (``flush_telemetry``) to spare the SD card.
        True when the buffer is full and should be flushed now (bounded memory)."""
        self._telemetry_buffer.append((event["id"], _dump(event), order_key))
        return len(self._telemetry_buffer) >= TELEMETRY_BUFFER_MAX

    async def flush_telemetry(self) -> int:
        if not self._telemetry_buffer:
            return 0
        batch, self._telemetry_buffer = self._telemetry_buffer, []
        async with self._store.transaction(durable=False) as tx:
            await self._add_many(tx, batch, Lane.TELEMETRY)
        await self.enforce_limits()
        return len(batch)

    # --- limits ------------------------------------------------------------------------------
    @property
    def depth(self) -> int:
        return sum(s.rows for s in self.lanes.values())

    @property
    def size_bytes(self) -> int:
        return sum(s.bytes for s in self.lanes.values())

    def oldest_age_s(self) -> float | None:
        return None if self._oldest_wall is None else max(0.0, time.time() - self._oldest_wall)

    def _check_full(self) -> None:
        money = self.lanes[Lane.MONEY]
        reason = None
        if money.rows >= self.max_rows:
            reason = f"outbox full: {money.rows} unsent vend records (limit {self.max_rows} rows)"
        elif money.bytes >= self.max_bytes:
            reason = (f"outbox full: {money.bytes} bytes of unsent vend records "
                      f"(limit {self.max_bytes} bytes)")
        if reason != self.full_reason:
            if reason:
                log.error("%s: not taking new orders until the gateway takes them", reason)
            elif self.full_reason:
                log.warning("outbox has room again: taking orders")
            self.full_reason = reason

    async def enforce_limits(self) -> int:
        """Drop telemetry oldest-first while over rows/bytes/age; count what was dropped."""
        tel = self.lanes[Lane.TELEMETRY]
        over_rows = self.depth - self.max_rows
        over_bytes = self.size_bytes - self.max_bytes
        cutoff = time.time() - self.max_age_s
        if tel.rows == 0 or (over_rows <= 0 and over_bytes <= 0
                             and (self._oldest_wall is None or self._oldest_wall >= cutoff)):
            return 0
        ids: list[int] = []
        freed = 0
        db = self._store.db
        async with db.execute("SELECT id, size, created_wall FROM outbox WHERE lane = 'telemetry' "
                              "ORDER BY id") as cur:
            async for row_id, size, created in cur:
                if len(ids) < over_rows or freed < over_bytes or created < cutoff:
                    ids.append(int(row_id))
                    freed += int(size)
                else:
                    break
        if not ids:
            return 0
        async with self._store.transaction() as tx:
            await _delete_ids(tx, ids)
            await tx.execute("INSERT INTO dropped (lane, count) VALUES ('telemetry', ?) "
                             "ON CONFLICT(lane) DO UPDATE SET count = count + excluded.count",
                             (len(ids),))

            def counted() -> None:
                tel.rows -= len(ids)
                tel.bytes -= freed
                self.dropped[Lane.TELEMETRY] += len(ids)

            tx.after_commit(counted)
        log.warning("outbox over its limits: dropped %d oldest telemetry events (%d in all)",
                    len(ids), self.dropped[Lane.TELEMETRY])
        await self._refresh_oldest()
        return len(ids)

    async def _refresh_oldest(self) -> None:
        async with self._store.db.execute(
                "SELECT created_wall FROM outbox ORDER BY id LIMIT 1") as cur:
            row = await cur.fetchone()
        self._oldest_wall = None if row is None else float(row[0])

    # --- sending -----------------------------------------------------------------------------
    async def next_batch(self, lane: Lane, after_id: int, limit: int,
                         busy_keys: set[str]) -> list[OutboxRow]:
        """The next events of a lane after ``after_id``, stopping before an event whose order is
        already in flight in another batch (events of one order reach the gateway in order)."""
        out: list[OutboxRow] = []
        async with self._store.reader.execute(
                "SELECT id, event_id, order_key, body FROM outbox WHERE lane = ? AND id > ? "
                "ORDER BY id LIMIT ?", (lane.value, after_id, limit)) as cur:
            for row_id, event_id, key, body in await cur.fetchall():
                if key is not None and key in busy_keys:
                    break
                out.append(OutboxRow(int(row_id), event_id, lane, key, body))
        return out

    async def delete(self, rows: list[OutboxRow]) -> None:
        if not rows:
            return
        async with self._store.transaction(durable=False) as tx:
            await _delete_ids(tx, [r.id for r in rows])
            sizes: dict[Lane, tuple[int, int]] = {}
            for r in rows:
                n, b = sizes.get(r.lane, (0, 0))
                sizes[r.lane] = (n + 1, b + len(r.body))

            def counted() -> None:
                for lane, (n, b) in sizes.items():
                    self.lanes[lane].rows -= n
                    self.lanes[lane].bytes -= b
                self._check_full()

            tx.after_commit(counted)
        await self._refresh_oldest()

    def stats(self) -> dict[str, Any]:
        return {"depth": self.depth, "bytes": self.size_bytes,
                "oldest_age_s": self.oldest_age_s(),
                "dropped": {"telemetry": self.dropped[Lane.TELEMETRY]},
                "lanes": {lane.value: {"rows": s.rows, "bytes": s.bytes}
                          for lane, s in self.lanes.items()}}


def _dump(event: HubEvent) -> str:
    return json.dumps(event, separators=(",", ":"))


async def _delete_ids(tx: Tx, ids: list[int]) -> None:
    for i in range(0, len(ids), 500):
        chunk = ids[i:i + 500]
        await tx.execute(f"DELETE FROM outbox WHERE id IN ({','.join('?' * len(chunk))})", chunk)
