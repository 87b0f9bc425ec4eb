"""The hub's in-memory picture of its boards (the database holds the durable part)."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from edge_hub.ports import BoardConnection


@dataclass
class BoardInfo:
    uid: str
    port: str = ""
    addr: int = 0
    firmware: str = ""
    protocol_version: int = 0
    products: list[str] = field(default_factory=list)
    in_service: bool = True
    out_of_service_reason: str | None = None
    registered: bool = False
    last_seen: float | None = None
    link_since: float | None = None
    conn: BoardConnection | None = None
    peer_epoch: int = 0  # the board's session epoch as of its last HELLO / frame
    board_state: str | None = None  # last BoardState it reported
    auth_drops: int = 0
    last_status: dict[str, Any] = field(default_factory=dict)

    @property
    def link_up(self) -> bool:
        return self.conn is not None

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> BoardInfo:
        return cls(uid=row["board_uid"], port=row["port"], addr=row["addr"],
                   firmware=row["firmware"], protocol_version=row["protocol_version"],
                   products=json.loads(row["products"]), in_service=bool(row["in_service"]),
                   out_of_service_reason=row["out_of_service_reason"],
                   registered=bool(row["registered"]), last_seen=row["last_seen"])

    def registration(self) -> dict[str, Any]:
        reg: dict[str, Any] = {"board_uid": self.uid, "firmware": self.firmware,
                               "protocol_version": self.protocol_version,
                               "products": list(self.products), "addr": self.addr}
        if self.port:
            reg["port"] = self.port
        return reg

    def touch(self) -> None:
        self.last_seen = time.time()
