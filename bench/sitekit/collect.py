"""Build a ``checker.Snapshot`` from a running ``LocalSite`` (its databases, the sandbox's
ledger, the boards' own records and the processes' logs)."""

from __future__ import annotations

import time
from typing import Any

from bench.sitekit.checker import BoardPurchase, Snapshot, site_prices
from bench.sitekit.site import LocalSite
from edge_hub.simboard import SimBoard


def board_purchases(boards: list[SimBoard]) -> tuple[list[BoardPurchase], dict[str, int]]:
    """Every purchase each board made, and items dispensed per order (the boards' ledgers)."""
    wall = time.time() - time.monotonic()  # CLOCK_MONOTONIC is shared by every process
    purchases: list[BoardPurchase] = []
    dispensed: dict[str, int] = {}
    for b in boards:
        for p in b.purchases:
            purchases.append(BoardPurchase(
                board=b.name, order_ref=p.order_ref, state=p.state.value, product=p.product,
                options=p.options, quantity=p.quantity, approved_quantity=p.approved_quantity,
                dispensed=p.dispensed, outcome=int(p.outcome),
                qr_amount=p.qr.amount_paise if p.qr is not None else None,
                approved_wall=None if p.t_approved is None else p.t_approved + wall))
        for ref, rec in b.ledger.items():
            dispensed[ref] = dispensed.get(ref, 0) + rec.dispensed
    return purchases, dispensed


def _rows(site: LocalSite, table: str) -> list[dict[str, Any]]:
    return [dict(r) for r in site.gateway_query(f"SELECT * FROM {table}")]


async def snapshot_site(site: LocalSite) -> Snapshot:
    purchases, dispensed = board_purchases(site.boards)
    logs = {name: p.log_path.read_text(errors="replace")
            for name, p in site.procs.items() if p.log_path.exists()}
    return Snapshot(
        orders=_rows(site, "orders"), payments=_rows(site, "payments"),
        refunds=_rows(site, "refunds"), hub_events=_rows(site, "hub_events"),
        ledger=await site.ledger(), purchases=purchases, dispensed=dispensed,
        prices=site_prices(site.config.catalog, site.config.site),
        outbox_left=site.outbox_depth('money'), logs=logs, secrets=site.secret_values())
