"""One site on loopback, measured: a hub process with 16 simulated boards on pseudo-terminals,
the gateway process, and the Razorpay sandbox process (answering at once, auto-pay off).

    .venv/bin/python bench/site.py [--boards 16] [--rounds 10] [--backlog 100000] [--keep]

Phases:
1. purchases: every board buys ``--rounds`` times, concurrently. ``qr`` is from the board
   writing ORDER_REQUEST to the board holding the whole PAYMENT_QR frame; ``approve`` is from the
   sandbox sending the first payment webhook of that QR (stamped inside the sandbox process) to
   the board holding VEND_APPROVED. Both clocks are CLOCK_MONOTONIC, shared by every process.
2. drain: the gateway process is stopped, the boards flood LOG frames until the hub's outbox
   holds ``--backlog`` events, the gateway is started again, and ``drain_eps`` is events
   delivered and acknowledged (deleted from the hub's outbox) per second, from the first
   acknowledgement to an empty outbox.
3. ``hub_rss_mb`` is the hub process's peak resident memory (VmHWM).

The last line printed is
``site boards=.. qr_p50_ms=.. qr_p99_ms=.. approve_p50_ms=.. approve_p99_ms=.. drain_eps=..
hub_rss_mb=..`` (one line). Bar: boards=16, qr_p50_ms<=60, approve_p50_ms<=30,
approve_p99_ms<=100, drain_eps>=5000, hub_rss_mb<=80.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import os
import random
import secrets
import shutil
import signal
import socket
import sqlite3
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import aiohttp

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from edge_hub.simboard import Behaviour, PurchaseState, SimBoard  # noqa: E402

BIN = Path(sys.executable).parent
HUB_ID = "bench-hub"
SITE = "bench-site"
CATALOG = REPO / "cloud_gateway" / "examples" / "catalog.toml"
MENU = [("cappuccino", ("extra_shot",), 1), ("espresso", (), 1), ("water", (), 2),
        ("masala_chai", ("ginger",), 1)]


# --- the sandbox process: the real sandbox app, plus a record of when each webhook left -------
def sandbox_child(port: int, webhook_url: str) -> None:
    """Run in its own process (``--sandbox-child``). Every webhook attempt is stamped with
    time.monotonic() just before the POST; GET /_bench/webhook_sent returns the first stamp per
    event id. The sandbox's own delivery log (/_sim/webhooks) has no send time to read."""
    from aiohttp import web

    from cloud_gateway.sandbox import SandboxConfig, create_sandbox_app
    from cloud_gateway.sandbox.webhooks import WebhookDispatcher

    sent: dict[str, float] = {}
    attempt = WebhookDispatcher._attempt

    async def stamped(self: WebhookDispatcher, out: Any, n: int) -> bool:
        sent.setdefault(out.event_id, time.monotonic())
        return await attempt(self, out, n)

    WebhookDispatcher._attempt = stamped  # type: ignore[method-assign]

    async def webhook_sent(request: web.Request) -> web.Response:
        return web.json_response({"sent": sent})

    app = create_sandbox_app(SandboxConfig(webhook_url=webhook_url))
    app.router.add_get("/_bench/webhook_sent", webhook_sent)
    web.run_app(app, host="127.0.0.1", port=port, print=None, access_log=None)


# --- processes ---------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Proc:
    name: str
    argv: list[str]
    env: dict[str, str]
    log: Path
    proc: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        with self.log.open("ab") as out:
            self.proc = await asyncio.create_subprocess_exec(
                *self.argv, env=self.env, stdin=asyncio.subprocess.DEVNULL, stdout=out,
                stderr=asyncio.subprocess.STDOUT, start_new_session=True)

    async def stop(self) -> None:
        p = self.proc
        if p is None or p.returncode is not None:
            return
        p.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(p.wait(), 15)
        except TimeoutError:
            p.kill()
            await p.wait()

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid


async def until(what: str, check: Callable[[], Awaitable[Any]], timeout_s: float,
                every_s: float = 0.1) -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        with contextlib.suppress(aiohttp.ClientError, OSError, sqlite3.Error):
            if result := await check():
                return result
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not within {timeout_s} s")
        await asyncio.sleep(every_s)


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


def vm_hwm_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmHWM for pid {pid}")


# --- the site ----------------------------------------------------------------------------------
@dataclass
class Site:
    tmp: Path
    boards_n: int
    http: aiohttp.ClientSession
    gw_port: int = field(default_factory=free_port)
    sb_port: int = field(default_factory=free_port)
    master_key: bytes = field(default_factory=lambda: secrets.token_bytes(32))
    procs: dict[str, Proc] = field(default_factory=dict)
    boards: list[SimBoard] = field(default_factory=list)
    token: str = ""

    @property
    def gw(self) -> str:
        return f"http://127.0.0.1:{self.gw_port}"

    @property
    def sb(self) -> str:
        return f"http://127.0.0.1:{self.sb_port}"

    def gateway_env(self) -> dict[str, str]:
        from cloud_gateway.sandbox import SandboxConfig

        sb = SandboxConfig()
        return {**os.environ, "GATEWAY_PORT": str(self.gw_port),
                "GATEWAY_DATA_DIR": str(self.tmp / "gateway"), "GATEWAY_LOG_LEVEL": "WARNING",
                "GATEWAY_RAZORPAY_BASE_URL": self.sb, "GATEWAY_RAZORPAY_KEY_ID": sb.key_id,
                "GATEWAY_RAZORPAY_KEY_SECRET": sb.key_secret,
                "GATEWAY_WEBHOOK_SECRET": sb.webhook_secret,
                "GATEWAY_TOKEN_KEY": secrets.token_urlsafe(48)}

    async def admin(self, env: dict[str, str], *args: str) -> str:
        p = await asyncio.create_subprocess_exec(
            str(BIN / "cloud-gateway"), *args, env=env, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE)
        out, err = await p.communicate()
        if p.returncode != 0:
            raise RuntimeError(f"cloud-gateway {' '.join(args)}: {err.decode().strip()}")
        return out.decode()

    async def start(self) -> None:
        logs = self.tmp / "logs"
        logs.mkdir()
        self.procs["sandbox"] = Proc(
            "sandbox", [sys.executable, __file__, "--sandbox-child", str(self.sb_port),
                        f"{self.gw}/webhooks/razorpay"], dict(os.environ), logs / "sandbox.log")
        await self.procs["sandbox"].start()
        gw_env = self.gateway_env()
        out = await self.admin(gw_env, "hubs", "add", HUB_ID, "--site", SITE)
        hub_secret = out.rsplit(":", 1)[1].strip()
        await self.admin(gw_env, "catalog", "load", str(CATALOG))
        self.procs["gateway"] = Proc("gateway", [str(BIN / "cloud-gateway"), "serve"], gw_env,
                                     logs / "gateway.log")
        await self.start_gateway()
        self.token = await self.get_token(hub_secret)
        await until("sandbox up", lambda: self.ok(f"{self.sb}/_sim/config"), 20)

        ports = self.tmp / "tty"
        for i in range(1, self.boards_n + 1):
            board = SimBoard(bytes.fromhex("42454e4348") + i.to_bytes(7, "big"), self.master_key,
                             name=f"board-{i:02d}", link_path=ports / f"board-{i:02d}",
                             behaviour=Behaviour(seed=i))
            await board.start()
            self.boards.append(board)
        (self.tmp / "hub.toml").write_text(HUB_TOML.format(
            hub_id=HUB_ID, data_dir=self.tmp / "hub", gw=self.gw, ports=ports / "board-*"))
        hub_env = {**os.environ, "EDGE_HUB_SECRET": hub_secret,
                   "EDGE_HUB_MASTER_KEY": self.master_key.hex()}
        self.procs["hub"] = Proc("hub", [str(BIN / "edge-hub"), "run", "--config",
                                         str(self.tmp / "hub.toml")], hub_env, logs / "hub.log")
        await self.procs["hub"].start()
        await asyncio.gather(*(b.wait_connected(30) for b in self.boards))
        await until("boards registered", self.all_registered, 30)

    async def start_gateway(self) -> None:
        await self.procs["gateway"].start()
        await until("gateway ready", lambda: self.ok(f"{self.gw}/readyz"), 30, every_s=0.02)

    async def ok(self, url: str) -> bool:
        async with self.http.get(url) as r:
            return r.status == 200

    async def get_token(self, hub_secret: str) -> str:
        async with self.http.post(f"{self.gw}/auth/token",
                                  json={"hub_id": HUB_ID, "secret": hub_secret}) as r:
            r.raise_for_status()
            return str((await r.json())["token"])

    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    async def all_registered(self) -> bool:
        async with self.http.get(f"{self.gw}/hub/boards", headers=self.auth()) as r:
            return r.status == 200 and len((await r.json())["boards"]) >= self.boards_n

    async def pay(self, qr_id: str) -> list[str]:
        async with self.http.post(f"{self.sb}/_sim/qr/{qr_id}/pay", json={}) as r:
            r.raise_for_status()
            return list((await r.json())["event_ids"])

    async def webhook_sent(self) -> dict[str, float]:
        async with self.http.get(f"{self.sb}/_bench/webhook_sent") as r:
            r.raise_for_status()
            return dict((await r.json())["sent"])

    def outbox_depth(self) -> int:
        db = sqlite3.connect(f"file:{self.tmp / 'hub' / 'hub.db'}?mode=ro", uri=True,
                             timeout=5)
        try:
            return int(db.execute("SELECT COUNT(*) FROM outbox").fetchone()[0])
        finally:
            db.close()

    def memory(self, when: str) -> None:
        status = Path(f"/proc/{self.procs['hub'].pid}/status").read_text()
        mem = {k: v.strip() for k, _, v in (x.partition(":") for x in status.splitlines())
               if k in ("VmRSS", "VmHWM")}
        print(f"  hub memory {when}: rss {mem['VmRSS']}, peak {mem['VmHWM']}", flush=True)

    async def stop(self) -> None:
        for board in self.boards:
            await board.stop()
        for name in ("hub", "gateway", "sandbox"):
            if name in self.procs:
                await self.procs[name].stop()


HUB_TOML = """
[hub]
id = "{hub_id}"
data_dir = "{data_dir}"

[gateway]
url = "{gw}"
backoff_initial_s = 0.1
backoff_max_s = 1.0

[limits]
port_retry_initial_s = 0.1
port_retry_max_s = 1.0

[status]
enabled = false

[log]
level = "WARNING"

[[boards]]
port = "{ports}"
"""


# --- phase 1: purchases ------------------------------------------------------------------------
@dataclass
class Sample:
    board: str
    qr_ms: float | None = None
    event_ids: list[str] = field(default_factory=list)
    t_approved: float | None = None
    state: str = ""


async def shopper(site: Site, board: SimBoard, rounds: int, think_s: float,
                  samples: list[Sample]) -> None:
    rng = random.Random(board.name)
    await asyncio.sleep(rng.uniform(0, think_s))
    for n in range(rounds):
        product, options, qty = MENU[(n + len(board.name)) % len(MENU)]
        s = Sample(board.name)
        samples.append(s)
        p = await board.request(product, options, qty)
        if p.state is not PurchaseState.SHOWING_QR or p.qr_latency_s is None:
            s.state = f"{p.state.value} {p.reject_reason or ''} {p.reject_message or ''}"
            continue
        s.qr_ms = p.qr_latency_s * 1000
        if p.qr is None or not p.qr.valid:  # the display could not show a scannable QR
            s.state = f"bad QR: {p.qr.problem if p.qr else 'none'}"
            continue
        # The customer's phone scans the QR on the display and pays it: the sandbox's UPI URI
        # names its QR code in `tr` (the gateway is not asked: the hub has it to itself).
        assert p.qr.decoded is not None
        qr_id = parse_qs(urlsplit(p.qr.decoded).query)["tr"][0]
        s.event_ids = await site.pay(qr_id)
        await board.wait_closed(p, 30)
        s.t_approved, s.state = p.t_approved, p.state.value
        await asyncio.sleep(rng.uniform(0.5, 1.5) * think_s)  # the next customer walks up


async def purchases(site: Site, rounds: int, think_s: float
                    ) -> tuple[list[float], list[float], int]:
    samples: list[Sample] = []
    await asyncio.gather(*(shopper(site, b, rounds, think_s, samples) for b in site.boards))
    sent = await site.webhook_sent()
    qr = [s.qr_ms for s in samples if s.qr_ms is not None]
    approve = [(s.t_approved - min(sent[e] for e in s.event_ids)) * 1000 for s in samples
               if s.t_approved is not None and s.event_ids and all(e in sent for e in s.event_ids)]
    bad = [s for s in samples if s.state != PurchaseState.VENDED.value]
    dispensed = sum(sum(r.dispensed for r in b.ledger.values()) for b in site.boards)
    ordered = sum(MENU[(n + len(b.name)) % len(MENU)][2] for b in site.boards
                  for n in range(rounds))
    print(f"  ledgers: {dispensed} items dispensed for {ordered} ordered", flush=True)
    for s in bad[:5]:
        print(f"  purchase on {s.board} ended {s.state}", flush=True)
    return qr, approve, len(bad)


# --- phase 2: outbox drain after an outage -----------------------------------------------------
async def drain(site: Site, backlog: int) -> tuple[float, int, float]:
    await site.procs["gateway"].stop()
    base = site.outbox_depth()
    per_board = math.ceil(max(0, backlog - base) / len(site.boards))
    t0 = time.monotonic()
    await asyncio.gather(*(b.send_logs(per_board, text="bench telemetry", timeout_s=600)
                           for b in site.boards))
    depth = await until("backlog in the outbox",
                        lambda: _at_least(site, backlog), 120, every_s=0.2)
    site.memory("with the backlog")
    fill_s = time.monotonic() - t0
    print(f"  backlog: {depth} events in the hub outbox after {fill_s:.1f} s "
          f"({per_board * len(site.boards) / fill_s:.0f} LOG frames/s in)", flush=True)
    t_gw = time.monotonic()
    await site.start_gateway()
    first = last = depth
    t_first = t_end = 0.0
    last_poll = t_gw
    while True:
        now, d = time.monotonic(), site.outbox_depth()
        if d < first and not t_first:
            t_first = last_poll
        if d == 0 or (t_first and now - t_first > 300):
            t_end, last = now, d
            break
        last_poll = now
        await asyncio.sleep(0.05)
    drained = first - last
    eps = drained / (t_end - t_first)
    print(f"  drain: {drained} events in {t_end - t_first:.2f} s after the first ack "
          f"({drained / (t_end - t_gw):.0f} ev/s counting the gateway restart)", flush=True)
    return eps, drained, fill_s


async def _at_least(site: Site, n: int) -> int:
    d = site.outbox_depth()
    return d if d >= n else 0


# --- main --------------------------------------------------------------------------------------
async def bench(args: argparse.Namespace) -> str:
    tmp = Path(tempfile.mkdtemp(prefix="site-bench-"))
    async with aiohttp.ClientSession() as http:
        site = Site(tmp, args.boards, http)
        try:
            load = " ".join(f"{x:.1f}" for x in os.getloadavg())
            print(f"site bench in {tmp}: {args.boards} boards, {args.rounds} purchases each "
                  f"(load average {load} on {os.cpu_count()} cores)", flush=True)
            await site.start()
            site.memory("started")
            qr, approve, bad = await purchases(site, args.rounds, args.think_s)
            print(f"  purchases: {len(qr)} QRs, {len(approve)} approvals, {bad} not vended",
                  flush=True)
            site.memory("after the purchases")
            eps, _, _ = await drain(site, args.backlog)
            site.memory("after the drain")
            rss = vm_hwm_mb(site.procs["hub"].pid)
        finally:
            await site.stop()
            if not args.keep:
                shutil.rmtree(tmp, ignore_errors=True)
    return (f"site boards={len(site.boards)} qr_p50_ms={percentile(qr, 50):.2f} "
            f"qr_p99_ms={percentile(qr, 99):.2f} approve_p50_ms={percentile(approve, 50):.2f} "
            f"approve_p99_ms={percentile(approve, 99):.2f} drain_eps={eps:.1f} "
            f"hub_rss_mb={rss:.1f}")


def main(argv: list[str]) -> int:
    if argv[:1] == ["--sandbox-child"]:
        sandbox_child(int(argv[1]), argv[2])
        return 0
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--boards", type=int, default=16)
    p.add_argument("--rounds", type=int, default=10, help="purchases per board")
    p.add_argument("--think-s", type=float, default=1.0,
                   help="mean pause between two purchases on one board (uniform 0.5x..1.5x)")
    p.add_argument("--backlog", type=int, default=100_000, help="outbox events to drain")
    p.add_argument("--keep", action="store_true", help="keep the temporary directory (logs)")
    line = asyncio.run(bench(p.parse_args(argv)))
    print(line, flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
