"""Per-hub command queue: stored until acked, resent from the hub's cursor.

Other modules call:
* `CommandQueue.enqueue(hub_id, type, order_id, board_uid, data, deadline=None)` (its own
  transaction) or `enqueue_tx(tx, ...)` inside another unit (so "order paid" and "tell the hub"
  commit together);
* `pending(hub_id, after, limit)` -> list of `protocol.hub_api.Command`, seq > after, not acked;
* `wait(hub_id, after, wait_s)` -> commands, waiting until one exists or `wait_s` passes;
* `ack(hub_id, upto)` -> how many commands it acknowledged;
* `pending_count()` for /metrics.

Sequence numbers are per hub, strictly increasing (`hubs.last_seq`). A command with a `deadline`
(payment_confirmed) gets `vend_deadline_in_s = deadline - now` computed each time it is sent,
never stored (architecture.md section 3).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable, Mapping

from protocol.hub_api import Command, CommandType

from .db import Database, Tx
from .errors import NotFound, ValidationError

log = logging.getLogger(__name__)

# Another process (the CLI) can enqueue too; waiters re-check the database this often.
RECHECK_S = 2.0


class CommandQueue:
    def __init__(self, db: Database, clock: Callable[[], float] = time.time) -> None:
        self._db = db
        self._clock = clock
        self._waiters: dict[str, set[asyncio.Event]] = {}

    def enqueue_tx(self, tx: Tx, hub_id: str, type: CommandType, order_id: str | None,
                   board_uid: str | None, data: Mapping[str, object],
                   deadline: int | None = None) -> int:
        row = tx.one("UPDATE hubs SET last_seq = last_seq + 1 WHERE hub_id = ? "
                     "RETURNING last_seq", (hub_id,))
        if row is None:
            raise NotFound(f"unknown hub {hub_id!r}")
        seq = int(row[0])
        tx.execute("INSERT INTO commands (hub_id, seq, type, order_id, board_uid, data, deadline,"
                   " created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                   (hub_id, seq, str(type), order_id, board_uid, json.dumps(dict(data)),
                    deadline, int(self._clock())))
        tx.after_commit(lambda: self.notify(hub_id))
        log.info("command queued", extra={"hub_id": hub_id, "order_id": order_id, "seq": seq,
                                          "command": str(type)})
        return seq

    async def enqueue(self, hub_id: str, type: CommandType, order_id: str | None,
                      board_uid: str | None, data: Mapping[str, object],
                      deadline: int | None = None) -> int:
        return await self._db.write(
            lambda tx: self.enqueue_tx(tx, hub_id, type, order_id, board_uid, data, deadline))

    def notify(self, hub_id: str) -> None:
        for event in self._waiters.get(hub_id, ()):
            event.set()

    def pending(self, hub_id: str, after: int, limit: int = 100) -> list[Command]:
        rows = self._db.query(
            "SELECT seq, type, order_id, board_uid, data, deadline, created_at FROM commands "
            "WHERE hub_id = ? AND seq > ? AND acked = 0 ORDER BY seq LIMIT ?",
            (hub_id, after, limit))
        now = self._clock()
        out: list[Command] = []
        for r in rows:
            data = json.loads(r["data"])
            if r["deadline"] is not None:
                data["vend_deadline_in_s"] = max(0, int(r["deadline"] - now))
            out.append({"seq": r["seq"], "type": r["type"], "order_id": r["order_id"],
                        "board_uid": r["board_uid"], "data": data,
                        "created_at": r["created_at"]})
        return out

    async def wait(self, hub_id: str, after: int, wait_s: float,
                   limit: int = 100) -> list[Command]:
        loop = asyncio.get_running_loop()
        end = loop.time() + wait_s
        event = asyncio.Event()
        self._waiters.setdefault(hub_id, set()).add(event)
        try:
            while True:
                event.clear()
                found = self.pending(hub_id, after, limit)
                remaining = end - loop.time()
                if found or remaining <= 0:
                    return found
                try:
                    await asyncio.wait_for(event.wait(), min(remaining, RECHECK_S))
                except TimeoutError:
                    pass
        finally:
            waiters = self._waiters.get(hub_id)
            if waiters is not None:
                waiters.discard(event)
                if not waiters:
                    del self._waiters[hub_id]

    async def ack(self, hub_id: str, upto: int) -> int:
        def unit(tx: Tx) -> int:
            row = tx.one("SELECT last_seq FROM hubs WHERE hub_id = ?", (hub_id,))
            if row is None:
                raise NotFound(f"unknown hub {hub_id!r}")
            if upto < 0 or upto > row[0]:
                raise ValidationError(invalid={"upto": f"must be in 0..{row[0]} (the last "
                                                       "command sequence number sent)"})
            cur = tx.execute("UPDATE commands SET acked = 1, acked_at = ? "
                             "WHERE hub_id = ? AND seq <= ? AND acked = 0",
                             (int(self._clock()), hub_id, upto))
            return cur.rowcount

        acked = await self._db.write(unit)
        if acked:
            log.info("commands acked", extra={"hub_id": hub_id, "upto": upto, "count": acked})
        return acked

    def pending_count(self) -> int:
        row = self._db.query_one("SELECT COUNT(*) FROM commands WHERE acked = 0")
        return int(row[0]) if row else 0


__all__ = ["CommandQueue"]
