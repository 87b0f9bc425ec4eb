"""The fault-injection run: randomized purchases on many simulated boards while things break,
then every money rule of INVARIANTS.md checked against what really happened.

    .venv/bin/python bench/chaos.py --purchases 2000 --seed 7 [--boards 24] [--time-limit 1200]

The sandbox, the gateway and the hub run as processes (the hub must be one: it is killed with
SIGKILL), the boards in this process. While customers buy, a seeded scheduler injects at random:
gateway outages (SIGTERM or SIGKILL, then a restart; some longer than the vend deadline and
the webhook retries), the hub killed with SIGKILL and restarted,
junk bytes and bit flips on serial lines, and Razorpay API errors and timeouts; each purchase
may bring its own: the board rebooting at a step of the vend (ordering, QR shown, approved,
started, dispensing, dispensed), a jammed motor, webhooks duplicated, delayed, reordered or
dropped (so only reconciliation finds the payment), a customer paying twice, paying the wrong
amount, paying after the QR expired or after cancelling. Then faults stop, the system settles
(reconciler passes, outbox drained, unknown outcomes flagged) and ``sitekit.checker`` compares
the gateway's database, the sandbox's ledger and every board's dispense ledger.

Timeouts are short (QR 5 s, vend deadline 8 s, unknown outcome flagged after 20 s, reconciler
every second) so a run takes minutes. Every fault injected is listed with its count; findings
go to ``<data-dir>/findings.txt``. The last line is
``chaos purchases=.. faults=.. paid=.. fulfilled=.. refunded=.. flagged=.. violations=..
lost_events=.. unterminated=..`` (``refunded`` counts payments refunded in full).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import random
import shutil
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench.sitekit.checker import Report, check  # noqa: E402
from bench.sitekit.collect import snapshot_site  # noqa: E402
from bench.sitekit.procs import ProcError  # noqa: E402
from bench.sitekit.site import HTTP_ERRORS, LocalSite, SiteConfig  # noqa: E402
from edge_hub.simboard import Behaviour, Purchase, PurchaseState, RebootStage, SimBoard, VendPlan  # noqa: E402
from protocol.hub_api import FINAL_ORDER_STATES  # noqa: E402

log = logging.getLogger("chaos")

MENU: tuple[tuple[str, tuple[str, ...], int], ...] = (
    ("cappuccino", ("extra_shot",), 1), ("cappuccino", ("oat_milk", "extra_milk"), 2),
    ("espresso", (), 1), ("espresso", ("extra_shot",), 3), ("masala_chai", ("ginger",), 1),
    ("masala_chai", ("less_sugar",), 2), ("water", (), 2), ("water", (), 1),
)
QR_TTL_S = 5
GATEWAY = {"qr_ttl_s": QR_TTL_S, "vend_deadline_s": 8, "unknown_outcome_deadline_s": 20,
           "reconcile_interval_s": 1.0, "razorpay_timeout_s": 1.0, "log_json": False,
           "rate_limit_per_s": 2000.0, "rate_limit_burst": 4000, "auth_rate_limit_per_s": 50.0,
           "long_poll_max_s": 5.0, "ws_heartbeat_s": 2.0}
HUB = {"gateway": {"request_timeout_s": 2.0, "ws_heartbeat_s": 2.0, "long_poll_wait_s": 3.0},
       "limits": {"order_timeout_s": 2.0, "vend_start_grace_s": 1.0, "vend_result_timeout_s": 5.0,
                  "vend_unknown_wait_s": 3.0, "status_retry_s": 0.5, "heartbeat_s": 2}}
API_SLOW_S = 1.6  # longer than the gateway's razorpay_timeout_s: the outcome is unknown to it


def _say(text: str) -> None:
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


@dataclass
class Run:
    site: LocalSite
    rng: random.Random
    target: int
    deadline: float
    started: int = 0
    finished: int = 0
    faults: Counter[str] = field(default_factory=Counter)
    outcomes: Counter[str] = field(default_factory=Counter)
    stopping: asyncio.Event = field(default_factory=asyncio.Event)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)  # one process fault at a time
    without: frozenset[str] = frozenset()  # fault names not to inject (bisecting a finding)

    def allows(self, fault: str) -> bool:
        return fault not in self.without

    def take(self) -> bool:
        if self.stopping.is_set() or self.started >= self.target or \
                time.monotonic() > self.deadline:
            return False
        self.started += 1
        return True


def qr_id_of(p: Purchase) -> str | None:
    """The QR id the customer's UPI app reads from the code (``tr=`` of the upi:// URI)."""
    if p.qr is None or not p.qr.valid:
        return None
    values = parse_qs(urlsplit(p.qr.upi_uri).query).get("tr")
    return values[0] if values else None


def pick_plan(rng: random.Random, qty: int, run: Run) -> VendPlan:
    x = rng.random()
    if x < 0.10 and run.allows("vend_jam"):
        return VendPlan.jam(rng.randrange(qty))
    if x < 0.30:
        stages = [s for s in RebootStage if run.allows(f"board_reboot_{s.value}")]
        if stages:
            return VendPlan.reboot(rng.choice(stages))
    return VendPlan.ok()


WEBHOOK_VARIANTS = ("normal", "duplicate", "delay", "reorder", "drop")


async def pay(run: Run, qr_id: str, *, fault: str | None = None, **body: object) -> None:
    variant = run.rng.choice(WEBHOOK_VARIANTS)
    if not run.allows(f"webhook_{variant}"):
        variant = "normal"
    hooks: dict[str, object] = {}
    if variant == "duplicate":
        hooks["duplicates"] = run.rng.randint(1, 2)
    elif variant == "delay":
        hooks["delay_s"] = round(run.rng.uniform(0.3, 3.0), 2)
    elif variant == "reorder":
        hooks["reorder"] = True
    elif variant == "drop":
        hooks["drop"] = True
    if hooks:
        body["webhooks"] = hooks
        run.faults[f"webhook_{variant}"] += 1
    if fault:
        run.faults[fault] += 1
    try:
        await run.site.sim_pay(qr_id, **body)
    except ProcError as exc:  # the sandbox refused (e.g. a QR it never issued): note it
        run.outcomes["pay_refused"] += 1
        log.info("pay %s refused: %s", qr_id, exc)


async def one_purchase(run: Run, board: SimBoard, rng: random.Random) -> None:
    product, options, qty = rng.choice(MENU)
    plan = pick_plan(rng, qty, run)
    reboot_while_ordering = rng.random() < 0.03 and run.allows("board_reboot_ordering")
    request = asyncio.create_task(board.request(product, options, qty, plan=plan))
    if reboot_while_ordering:
        await asyncio.sleep(rng.uniform(0.0, 0.05))
        if not request.done():
            run.faults["board_reboot_ordering"] += 1
            await board.reboot()
    p = await request
    if p.state is PurchaseState.SHOWING_QR:
        await customer(run, board, p, rng)
    with contextlib.suppress(TimeoutError):
        await board.wait_closed(p, 60)
    if p.approved_quantity is not None and plan.reboot_at is not None:
        run.faults[f"board_reboot_{plan.reboot_at.value}"] += 1
    if p.approved_quantity is not None and plan.dispense is not None:
        run.faults["vend_jam"] += 1
    run.outcomes[p.state.value] += 1
    run.finished += 1
    if p.state in (PurchaseState.REJECTED, PurchaseState.UNDELIVERED):
        await asyncio.sleep(rng.uniform(1.0, 3.0))  # the customer walks off; the next comes later


# cumulative thresholds of the customer's behaviours in `customer` (the rest pay normally)
CUSTOMER_FAULTS = ((0.06, "pay_twice"), (0.11, "pay_wrong_amount"), (0.16, "pay_after_expiry"),
                   (0.20, "pay_after_cancel"), (0.27, "customer_cancel"),
                   (0.31, "customer_walks_away"), (0.34, "board_reboot_qr_shown"),
                   (0.37, "pay_fail_first"))


async def customer(run: Run, board: SimBoard, p: Purchase, rng: random.Random) -> None:
    """What the person in front of the machine does with the QR on the display."""
    qr_id = qr_id_of(p)
    assert p.qr is not None
    if qr_id is None:
        run.outcomes["qr_unreadable"] += 1
        return
    await asyncio.sleep(rng.uniform(0.0, 1.0))
    x = rng.random()
    if p.state is not PurchaseState.SHOWING_QR:
        return
    chosen = next((name for limit, name in CUSTOMER_FAULTS if x < limit), None)
    if chosen is not None and not run.allows(chosen):
        x = 1.0  # that fault is off: an ordinary customer
    if x < 0.06:  # pays twice (two captured payments on a single-use QR)
        await pay(run, qr_id, fault="pay_twice", times=2)
    elif x < 0.11:  # pays the wrong amount
        delta = rng.choice((-1, -100, 100))
        await pay(run, qr_id, fault="pay_wrong_amount", amount=p.qr.amount_paise + delta)
    elif x < 0.16:  # waits until the QR expired, then pays anyway
        with contextlib.suppress(TimeoutError):
            await board.wait_closed(p, QR_TTL_S + 5)
        await asyncio.sleep(rng.uniform(0.2, 1.5))
        await pay(run, qr_id, fault="pay_after_expiry")
    elif x < 0.20:  # cancels, then pays anyway
        if p.state is PurchaseState.SHOWING_QR:
            await board.cancel(p)
        await asyncio.sleep(rng.uniform(0.1, 1.0))
        await pay(run, qr_id, fault="pay_after_cancel")
    elif x < 0.27:  # cancels
        await board.cancel(p)
    elif x < 0.31:  # walks away: the QR expires
        pass
    elif x < 0.34:  # pays, and the board reboots while the payment is on its way
        await pay(run, qr_id)
        await asyncio.sleep(rng.uniform(0.0, 0.3))
        if p.state is PurchaseState.SHOWING_QR:
            run.faults["board_reboot_qr_shown"] += 1
            await board.reboot()
    elif x < 0.37:  # the bank fails the first attempt, then it goes through
        await pay(run, qr_id, fault="pay_fail_first", fail_first=True)
    else:
        await pay(run, qr_id)


async def shopper(run: Run, board: SimBoard, rng: random.Random) -> None:
    while run.take():
        try:
            await one_purchase(run, board, rng)
        except Exception:
            log.exception("%s: purchase crashed", board.name)
            run.outcomes["shopper_error"] += 1
        await asyncio.sleep(rng.uniform(0.0, 0.3))


# --- faults that are not tied to one purchase --------------------------------------------------
async def gateway_outage(run: Run, rng: random.Random) -> None:
    site = run.site
    if rng.random() < 0.5:
        run.faults["gateway_kill"] += 1
        await site.kill_gateway()
    else:
        run.faults["gateway_restart"] += 1
        await site.stop_gateway()
    await asyncio.sleep(outage_s(rng))
    await site.start_gateway()


def outage_s(rng: random.Random) -> float:
    """Mostly a blip; now and then longer than the vend deadline and the sandbox's webhook
    retries (so approvals come too late and only polling finds payments)."""
    return rng.uniform(9.0, 15.0) if rng.random() < 0.15 else rng.uniform(0.3, 3.0)


async def hub_kill(run: Run, rng: random.Random) -> None:
    run.faults["hub_sigkill"] += 1
    await run.site.kill_hub()
    await asyncio.sleep(rng.uniform(0.1, 2.0) if rng.random() < 0.85 else outage_s(rng))
    await run.site.procs["hub"].start()


async def line_noise(run: Run, rng: random.Random) -> None:
    boards = rng.sample(run.site.boards, k=max(1, len(run.site.boards) // 4))
    for b in boards:
        run.faults["line_noise"] += 1
        b.set_noise(junk_rate=rng.uniform(2e-3, 1e-2), flip_rate=rng.uniform(5e-4, 3e-3))
    await asyncio.sleep(rng.uniform(1.0, 4.0))
    for b in boards:
        b.set_noise(junk_rate=0.0, flip_rate=0.0)


async def razorpay_errors(run: Run, rng: random.Random) -> None:
    n = rng.randint(1, 4)
    kind = rng.choice(("server", "gateway", "html"))
    await run.site.sandbox("POST", "/_sim/faults", {"api_error_next": n, "api_error_kind": kind})
    run.faults["razorpay_api_error"] += n


async def razorpay_timeouts(run: Run, rng: random.Random) -> None:
    n = rng.randint(1, 3)
    await run.site.sandbox("POST", "/_sim/faults", {"api_slow_next": n, "api_slow_s": API_SLOW_S})
    run.faults["razorpay_timeout"] += n


SCHEDULE = ((gateway_outage, 2), (hub_kill, 4), (line_noise, 3), (razorpay_errors, 3),
            (razorpay_timeouts, 2))


async def scheduler(run: Run, rng: random.Random, every_s: float) -> None:
    kinds = [f for f, w in SCHEDULE for _ in range(w) if run.allows(f.__name__)]
    if not kinds:
        return
    while not run.stopping.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(run.stopping.wait(), rng.uniform(0.5, 2.0) * every_s)
        if run.stopping.is_set():
            return
        fault = rng.choice(kinds)
        async with run.lock:
            await fault(run, rng)


# --- settle and check --------------------------------------------------------------------------
async def restore(run: Run) -> None:
    """Faults off: quiet lines, every process up, the sandbox honest again."""
    site = run.site
    for b in site.boards:
        b.set_noise(junk_rate=0.0, flip_rate=0.0)
    left = await site.sandbox("GET", "/_sim/faults")
    run.faults["razorpay_api_error"] -= int(left.get("api_error_next", 0))
    run.faults["razorpay_timeout"] -= int(left.get("api_slow_next", 0))
    await site.sandbox("POST", "/_sim/faults", {"api_error_next": 0, "api_slow_next": 0})
    if not site.procs["gateway"].running:
        await site.start_gateway()
    if not site.procs["hub"].running:
        await site.procs["hub"].start()


async def settle(run: Run, timeout_s: float) -> bool:
    """Wait until the site is at rest twice in a row: every order final, every payment Razorpay
    captured known and decided by the gateway, no refund open, the hub's money outbox empty
    and no board mid-purchase. (A payment whose webhook was dropped is found only by the
    reconciler's polling, so the sandbox's ledger is part of the check.)"""
    site = run.site
    t_end = time.monotonic() + timeout_s
    quiet = 0
    while time.monotonic() < t_end:
        with contextlib.suppress(*HTTP_ERRORS):
            await site.sandbox("POST", "/_sim/drain")
        quiet = quiet + 1 if await at_rest(site) else 0
        if quiet >= 2:
            return True
        await asyncio.sleep(1.0)
    return False


async def at_rest(site: LocalSite) -> bool:
    marks = ",".join("?" * len(FINAL_ORDER_STATES))
    open_orders = site.gateway_query(
        f"SELECT COUNT(*) AS n FROM orders WHERE state NOT IN ({marks})",
        tuple(map(str, FINAL_ORDER_STATES)))[0]["n"]
    open_refunds = site.gateway_query(
        "SELECT COUNT(*) AS n FROM refunds WHERE state NOT IN ('processed', 'refused')")[0]["n"]
    if open_orders or open_refunds or site.outbox_depth("money") or \
            any(b.current is not None for b in site.boards):
        return False
    captured = {p["id"] for p in (await site.ledger())["payments"]
                if p["status"] in ("captured", "refunded")}
    decided = {r["payment_id"] for r in site.gateway_query(
        "SELECT payment_id FROM payments WHERE disposition IS NOT NULL")}
    return captured <= decided


async def chaos(args: argparse.Namespace) -> tuple[Report, int]:
    rng = random.Random(args.seed)
    root = Path(args.data_dir) if args.data_dir else Path(tempfile.mkdtemp(prefix="chaos-"))
    config = SiteConfig(
        root=root, boards=args.boards, hub_id="chaos1", site="chaos-site",
        sandbox_faults={"seed": args.seed}, gateway=GATEWAY, hub=HUB, log_level="WARNING",
        board_behaviour=Behaviour(seed=args.seed, hello_retry_s=0.5, order_timeout_s=4.0))
    site = LocalSite(config)
    report: Report | None = None
    t0 = time.monotonic()
    _say(f"chaos: seed {args.seed}, {args.purchases} purchases on {args.boards} boards, "
         f"data in {site.root}")
    try:
        await site.start()
        run = Run(site, rng, args.purchases, t0 + args.time_limit,
                  without=frozenset(args.without.split(",")) if args.without else frozenset())
        shoppers = [asyncio.create_task(shopper(run, b, random.Random(rng.random())))
                    for b in site.boards]
        faults = asyncio.create_task(scheduler(run, random.Random(rng.random()), args.fault_every))
        progress = asyncio.create_task(report_progress(run, t0))
        await asyncio.gather(*shoppers)
        run.stopping.set()
        await faults
        progress.cancel()
        _say(f"chaos: {run.finished} purchases done after {time.monotonic() - t0:.0f} s; "
             "faults off, settling")
        await restore(run)
        settled = await settle(run, args.settle_s)
        _say(f"chaos: {'settled' if settled else 'NOT settled'} after "
             f"{time.monotonic() - t0:.0f} s")
        report = check(await snapshot_site(site))
        report.purchases = run.started
        noise = Counter[str]()
        for b in site.boards:
            noise.update(b.noise_counters)
        _say("faults injected:")
        for name, n in sorted(run.faults.items()):
            _say(f"  {name:28} {n}")
        _say(f"  (line noise: {noise['junk_bytes']} junk bytes, {noise['bits_flipped']} bits "
             "flipped)")
        _say("purchases ended: " + ", ".join(f"{k}={v}" for k, v in sorted(run.outcomes.items())))
        if report.notes:
            _say("notes: " + ", ".join(f"{k}={v}" for k, v in sorted(report.notes.items())))
        (site.root / "findings.txt").write_text("".join(f"{f}\n" for f in report.findings))
        for f in sorted(report.findings, key=lambda f: f.kind.startswith("note_"))[:40]:
            _say(f"  FINDING {f}")
        return report, sum(run.faults.values())
    finally:
        await site.stop()
        clean = report is not None and not report.findings
        if clean and not args.keep and not args.data_dir:
            shutil.rmtree(root, ignore_errors=True)  # kept when there is anything to look at


async def report_progress(run: Run, t0: float) -> None:
    while True:
        await asyncio.sleep(10)
        with contextlib.suppress(OSError, ProcError):
            _say(f"  [{time.monotonic() - t0:5.0f} s] started={run.started} "
                 f"finished={run.finished} faults={sum(run.faults.values())} "
                 f"outbox={run.site.outbox_depth()}")


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--purchases", type=int, default=2000)
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--boards", type=int, default=24)
    p.add_argument("--time-limit", type=float, default=1200.0, metavar="S",
                   help="stop starting purchases after S seconds")
    p.add_argument("--settle-s", type=float, default=120.0, help="longest settle after faults")
    p.add_argument("--fault-every", type=float, default=1.5, metavar="S",
                   help="mean seconds between process/line/API faults")
    p.add_argument("--without", default="", metavar="A,B",
                   help="fault names not to inject: scheduler faults by function name "
                   "(gateway_outage, hub_kill, line_noise, razorpay_errors, razorpay_timeouts) "
                   "or the per-purchase names printed in the fault list")
    p.add_argument("--data-dir", default=None, help="keep everything here (wiped at start)")
    p.add_argument("--keep", action="store_true", help="keep the temporary directory")
    p.add_argument("--log-level", default="ERROR")
    return p.parse_args(argv)


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=args.log_level, format="%(levelname)s %(name)s: %(message)s")
    report, faults = asyncio.run(chaos(args))
    _say(report.line(faults))
    return 0 if report.violations == report.lost_events == report.unterminated == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
