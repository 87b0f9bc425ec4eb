"""SQLite persistence for the hub: schema and migrations, vend sessions, the durable outbox."""

from edge_hub.store.db import StoreError, open_database
from edge_hub.store.outbox import Lane, Outbox, OutboxRow
from edge_hub.store.store import Session, StaleTransition, Store, Tx

__all__ = ["Lane", "Outbox", "OutboxRow", "Session", "StaleTransition", "Store", "StoreError",
           "Tx", "open_database"]
