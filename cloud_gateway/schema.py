"""SQLite schema as numbered migrations (PRAGMA user_version).

`cloud_gateway.db.Database` applies `MIGRATIONS[n-1]` to move a database from version n-1 to n,
each in one transaction. Never edit an applied migration: append a new one. Only `db` imports
this module.

Money is INTEGER paise; times are Unix seconds (INTEGER) unless the column says `_ts` (REAL).
State columns are changed only by `cloud_gateway.orders.service` through the transition table.
"""

from __future__ import annotations

from typing import Final

_V1: Final = (
    """CREATE TABLE hubs (
        hub_id TEXT PRIMARY KEY,
        site TEXT NOT NULL,
        secret_hash TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        revoked_at INTEGER,
        last_seq INTEGER NOT NULL DEFAULT 0
    ) STRICT""",
    """CREATE TABLE boards (
        board_uid TEXT PRIMARY KEY,
        hub_id TEXT NOT NULL REFERENCES hubs(hub_id),
        firmware TEXT NOT NULL,
        protocol_version INTEGER NOT NULL,
        products TEXT NOT NULL,
        addr INTEGER,
        port TEXT,
        registered_at INTEGER NOT NULL,
        updated_at INTEGER NOT NULL,
        status TEXT
    ) STRICT""",
    "CREATE INDEX boards_hub ON boards(hub_id)",
    # option = '' is the product row itself
    """CREATE TABLE catalog (
        product TEXT NOT NULL,
        option TEXT NOT NULL DEFAULT '',
        name TEXT NOT NULL,
        price INTEGER NOT NULL CHECK (price >= 0),
        position INTEGER NOT NULL,
        PRIMARY KEY (product, option)
    ) STRICT""",
    """CREATE TABLE catalog_overrides (
        site TEXT NOT NULL,
        product TEXT NOT NULL,
        option TEXT NOT NULL DEFAULT '',
        price INTEGER CHECK (price IS NULL OR price >= 0),
        available INTEGER,
        PRIMARY KEY (site, product, option)
    ) STRICT""",
    """CREATE TABLE orders (
        order_id TEXT PRIMARY KEY,
        hub_id TEXT NOT NULL REFERENCES hubs(hub_id),
        site TEXT NOT NULL,
        board_uid TEXT NOT NULL,
        idempotency_key TEXT NOT NULL,
        request_hash TEXT NOT NULL,
        product TEXT NOT NULL,
        options TEXT NOT NULL,
        quantity INTEGER NOT NULL CHECK (quantity > 0),
        amount INTEGER NOT NULL CHECK (amount > 0),
        currency TEXT NOT NULL,
        state TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        updated_at INTEGER NOT NULL,
        qr_id TEXT UNIQUE,
        upi_uri TEXT,
        close_by INTEGER,
        payment_id TEXT,
        paid_at INTEGER,
        vend_deadline INTEGER,
        dispensed_at INTEGER,
        fulfilled_at INTEGER,
        vend_dispensed INTEGER,
        closed_reason TEXT,
        UNIQUE (hub_id, idempotency_key)
    ) STRICT""",
    "CREATE INDEX orders_state ON orders(state, updated_at)",
    """CREATE TABLE order_audit (
        id INTEGER PRIMARY KEY,
        order_id TEXT NOT NULL REFERENCES orders(order_id),
        at_ts REAL NOT NULL,
        who TEXT NOT NULL,
        from_state TEXT,
        to_state TEXT NOT NULL,
        why TEXT NOT NULL
    ) STRICT""",
    "CREATE INDEX order_audit_order ON order_audit(order_id, id)",
    """CREATE TABLE payments (
        id INTEGER PRIMARY KEY,
        payment_id TEXT NOT NULL UNIQUE,
        order_id TEXT REFERENCES orders(order_id),
        qr_id TEXT,
        amount INTEGER NOT NULL,
        currency TEXT NOT NULL,
        status TEXT NOT NULL,
        method TEXT,
        vpa TEXT,
        disposition TEXT,
        source TEXT NOT NULL,
        entity TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        updated_at INTEGER NOT NULL
    ) STRICT""",
    "CREATE INDEX payments_order ON payments(order_id)",
    """CREATE TABLE refunds (
        id INTEGER PRIMARY KEY,
        payment_id TEXT NOT NULL UNIQUE REFERENCES payments(payment_id),
        order_id TEXT REFERENCES orders(order_id),
        amount INTEGER NOT NULL CHECK (amount > 0),
        reason TEXT NOT NULL,
        idempotency_key TEXT NOT NULL UNIQUE,
        state TEXT NOT NULL,
        refund_id TEXT UNIQUE,
        attempts INTEGER NOT NULL DEFAULT 0,
        last_error TEXT,
        next_attempt_at INTEGER,
        created_at INTEGER NOT NULL,
        updated_at INTEGER NOT NULL
    ) STRICT""",
    "CREATE INDEX refunds_state ON refunds(state, next_attempt_at)",
    """CREATE TABLE webhook_inbox (
        id INTEGER PRIMARY KEY,
        event_id TEXT NOT NULL UNIQUE,
        event TEXT,
        raw BLOB NOT NULL,
        headers TEXT NOT NULL,
        received_ts REAL NOT NULL,
        processed_ts REAL,
        outcome TEXT,
        error TEXT
    ) STRICT""",
    "CREATE INDEX webhook_inbox_pending ON webhook_inbox(processed_ts) WHERE processed_ts IS NULL",
    """CREATE TABLE commands (
        hub_id TEXT NOT NULL REFERENCES hubs(hub_id),
        seq INTEGER NOT NULL,
        type TEXT NOT NULL,
        order_id TEXT,
        board_uid TEXT,
        data TEXT NOT NULL,
        deadline INTEGER,
        created_at INTEGER NOT NULL,
        acked INTEGER NOT NULL DEFAULT 0,
        acked_at INTEGER,
        PRIMARY KEY (hub_id, seq)
    ) STRICT""",
    "CREATE INDEX commands_pending ON commands(hub_id, seq) WHERE acked = 0",
    """CREATE TABLE hub_events (
        hub_id TEXT NOT NULL,
        event_id TEXT NOT NULL,
        type TEXT NOT NULL,
        board_uid TEXT,
        order_id TEXT,
        status TEXT NOT NULL,
        error TEXT,
        at_wall REAL,
        at_synced INTEGER,
        received_at INTEGER NOT NULL,
        PRIMARY KEY (hub_id, event_id)
    ) STRICT""",
)

MIGRATIONS: Final[tuple[tuple[str, ...], ...]] = (_V1,)

__all__ = ["MIGRATIONS"]
