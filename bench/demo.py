"""``make demo``: a complete site on loopback, buying by itself, until Ctrl-C.

    .venv/bin/python bench/demo.py [--boards 3] [--duration S] [--data-dir demo-data] [--seed N]

Starts the Razorpay sandbox (it pays each QR ``--pay-after`` seconds after it is shown), the
gateway on SQLite, a hub with its status page, and simulated boards that keep buying: products
with options, now and then a customer who cancels, now and then a jammed motor (a vend failure
that the gateway refunds). It prints what runs where, the status page URL with a technician
login, and a progress line every few seconds. Ctrl-C (or ``--duration``) stops every process,
waits for each, and kills a process group that does not stop in time. See docs/demo.md.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import random
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench.sitekit.procs import free_port  # noqa: E402
from bench.sitekit.site import LocalSite, SiteConfig  # noqa: E402
from edge_hub.simboard import PurchaseState, SimBoard, VendPlan  # noqa: E402

log = logging.getLogger("demo")

MENU: tuple[tuple[str, tuple[str, ...], int], ...] = (
    ("cappuccino", ("extra_shot",), 1), ("cappuccino", ("oat_milk", "extra_milk"), 1),
    ("espresso", (), 1), ("espresso", ("extra_shot",), 2), ("masala_chai", ("ginger",), 1),
    ("masala_chai", ("less_sugar",), 1), ("water", (), 2), ("water", (), 1),
)


@dataclass
class Tally:
    vended: int = 0
    cancelled: int = 0
    failed: int = 0
    other: int = 0
    first_vend_s: float | None = None


def _say(text: str) -> None:
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


async def shopper(board: SimBoard, rng: random.Random, tally: Tally, t0: float,
                  cancel_rate: float, jam_rate: float, pay_after_s: float) -> None:
    """One board's customers, one after another, with a short pause between them."""
    while True:
        product, options, qty = rng.choice(MENU)
        jam = rng.random() < jam_rate
        plan = VendPlan.jam(qty - 1) if jam else VendPlan.ok(item_time_s=0.3)
        p = await board.request(product, options, qty, plan=plan)
        if p.state is PurchaseState.SHOWING_QR and rng.random() < cancel_rate:
            await asyncio.sleep(rng.uniform(0.2, pay_after_s * 0.6))
            if p.state is PurchaseState.SHOWING_QR:
                await board.cancel(p)
        if not p.done:
            with contextlib.suppress(TimeoutError):
                await board.wait_closed(p, pay_after_s + 60)
        if p.state is PurchaseState.VENDED:
            tally.vended += 1
            if tally.first_vend_s is None:
                tally.first_vend_s = time.monotonic() - t0
        elif p.state is PurchaseState.CANCELLED:
            tally.cancelled += 1
        elif p.state is PurchaseState.FAILED:
            tally.failed += 1
        else:
            tally.other += 1
        await asyncio.sleep(rng.uniform(0.5, 2.0))


def _pty_of(board: SimBoard) -> str:
    return os.path.realpath(board.port)


def progress(site: LocalSite, tally: Tally, t0: float) -> str:
    rows = site.gateway_query("SELECT state, COUNT(*) AS n FROM orders GROUP BY state")
    states = {r["state"]: r["n"] for r in rows}
    refunds = site.gateway_query("SELECT COUNT(*) AS n FROM refunds WHERE state = 'processed'"
                                 " OR refund_id IS NOT NULL")[0]["n"]
    return (f"[{time.monotonic() - t0:6.1f} s] purchases={tally.vended} "
            f"cancelled={tally.cancelled} vend_failures={tally.failed} refunds={refunds} "
            f"outbox={site.outbox_depth()} gateway_orders="
            + ",".join(f"{k}:{v}" for k, v in sorted(states.items())))


async def demo(args: argparse.Namespace) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    config = SiteConfig(root=Path(args.data_dir), boards=args.boards,
                        auto_pay_after_s=args.pay_after, status_port=free_port(),
                        log_level="WARNING", site="demo-site",
                        gateway={"qr_ttl_s": 120, "reconcile_interval_s": 5.0, "log_json": False})
    site = LocalSite(config)
    t0 = time.monotonic()
    _say(f"demo: starting a site in {site.root} ...")
    tasks: list[asyncio.Task[None]] = []
    try:
        starting = asyncio.create_task(site.start())
        waiter = asyncio.create_task(stop.wait())
        await asyncio.wait({starting, waiter}, return_when=asyncio.FIRST_COMPLETED)
        if not starting.done():
            starting.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await starting
            return 130
        waiter.cancel()
        starting.result()
        _say(f"  sandbox (offline Razorpay)  {site.sandbox_url}   pays each QR after "
             f"{args.pay_after:g} s; ledger: {site.sandbox_url}/_sim/ledger")
        _say(f"  gateway                     {site.gateway_url}   db {site.gateway_db_path}")
        _say(f"  hub                         pid {site.procs['hub'].pid}   db {site.hub_db_path}")
        _say(f"  status page                 {site.status_url}   login: "
             f"{config.status_user} / {config.status_password}")
        for b in site.boards:
            _say(f"  {b.name} (simulated)       {b.port} -> {_pty_of(b)}")
        _say(f"  logs                        {site.root / 'logs'}")
        _say("Ctrl-C stops everything.")
        tally = Tally()
        rng = random.Random(args.seed)
        for b in site.boards:
            tasks.append(asyncio.create_task(shopper(
                b, random.Random(rng.random()), tally, t0, args.cancel_rate, args.jam_rate,
                args.pay_after)))
        deadline = None if args.duration is None else time.monotonic() + args.duration
        while not stop.is_set():
            timeout = args.every
            if deadline is not None:
                timeout = min(timeout, max(0.0, deadline - time.monotonic()))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout)
            for t in tasks:
                if t.done() and not t.cancelled() and t.exception() is not None:
                    raise RuntimeError("a shopper stopped") from t.exception()
            _say(progress(site, tally, t0))
            if deadline is not None and time.monotonic() >= deadline:
                break
        first = "none yet" if tally.first_vend_s is None else f"{tally.first_vend_s:.1f} s"
        _say(f"demo: stopping (first purchase completed after {first})")
        _say(f"demo purchases={tally.vended} cancelled={tally.cancelled} "
             f"vend_failures={tally.failed} other={tally.other}")
        return 0
    finally:
        for t in tasks:
            t.cancel()
        for t in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
        await site.stop()
        _say("demo: every process stopped")


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--boards", type=int, default=3)
    p.add_argument("--duration", type=float, default=None, metavar="S",
                   help="stop after S seconds (default: run until Ctrl-C)")
    p.add_argument("--data-dir", default=str(REPO / "demo-data"),
                   help="wiped at start (git-ignored); holds databases and logs")
    p.add_argument("--pay-after", type=float, default=3.0, metavar="S",
                   help="the sandbox pays each QR this long after it was created")
    p.add_argument("--cancel-rate", type=float, default=0.1)
    p.add_argument("--jam-rate", type=float, default=0.1)
    p.add_argument("--every", type=float, default=5.0, metavar="S", help="progress interval")
    p.add_argument("--seed", type=int, default=None)
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    return asyncio.run(demo(args))


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
