"""The status page against a real site on loopback, in a real browser.

    .venv/bin/python -m edge_hub.statuspage_check [--boards 3] [--out status.png] [--keep]

Starts the Razorpay sandbox and the gateway (as `cloud-gateway` processes), a hub process
(`edge-hub run`) with ``--boards`` simulated boards on pseudo-terminals, opens the status page in
headless Debian Chromium (``/usr/bin/chromium`` driven by Playwright; no browser download) and
logs in. Then one customer buys a cappuccino on the first board: the page must show the board
awaiting payment with the QR code of the order (screenshot ``--out``, default ``status.png``),
the sandbox pays the QR, the board vends, and the page must show the order done, all without a
reload. Then the board is taken out of service from the page (it must refuse the next order,
showing the reason) and put back (it must take one again). The last line printed is

    statuspage screenshot=<path> boards=<int> live_updates=<int>

where ``live_updates`` counts the server-sent updates the page received during the purchase.
Bar: the screenshot shows the boards, the purchase in progress and its QR; boards >= 3;
live_updates >= 3. Progress and errors go to stderr; the processes' logs stay in the work
directory when the check fails or with ``--keep``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import secrets
import shutil
import signal
import socket
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from edge_hub.simboard import Behaviour, Purchase, PurchaseState, SimBoard, VendPlan
from edge_hub.status.auth import hash_password
from protocol import RejectReason

log = logging.getLogger(__name__)

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
)
BIN = Path(sys.executable).parent
CATALOG = Path(__file__).resolve().parents[1] / "cloud_gateway" / "examples" / "catalog.toml"
HUB_ID = "hub1"
SITE = "check-site"
TECH = "tech"
PRODUCT, OPTIONS = "cappuccino", ("extra_shot",)
SERVICE_REASON = "coin jam: technician on site"
VEND_ITEM_S = 1.5  # motor time, so the page can be seen vending
START_TIMEOUT_S = 30.0
STEP_TIMEOUT_S = 20.0
MIN_BOARDS = 3
MIN_LIVE_UPDATES = 3

HUB_TOML = """\
[hub]
id = "{hub_id}"
data_dir = "{data_dir}"

[gateway]
url = "{gateway}"
backoff_initial_s = 0.1
backoff_max_s = 1.0

[limits]
port_retry_initial_s = 0.1
port_retry_max_s = 1.0

[status]
enabled = true
host = "127.0.0.1"
port = {status_port}

[[status.users]]
name = "{tech}"
password_hash = "{password_hash}"

[log]
level = "INFO"

[[boards]]
port = "{ports}"
"""


class CheckError(RuntimeError):
    """The site or the page did not do what the check needs; the message says what."""


@dataclass(frozen=True)
class CheckResult:
    screenshot: Path
    boards: int
    live_updates: int

    def line(self) -> str:
        return (f"statuspage screenshot={self.screenshot} boards={self.boards} "
                f"live_updates={self.live_updates}")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Child:
    """A child process in its own process group, its output appended to a log file."""

    def __init__(self, name: str, argv: Sequence[str], env: Mapping[str, str], logs: Path):
        self.name, self.argv, self.env = name, list(argv), dict(env)
        self.log_path = logs / f"{name}.log"
        self.proc: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        with self.log_path.open("ab") as out:
            self.proc = await asyncio.create_subprocess_exec(
                *self.argv, env=self.env, stdin=asyncio.subprocess.DEVNULL, stdout=out,
                stderr=asyncio.subprocess.STDOUT, start_new_session=True)

    def check_alive(self) -> None:
        if self.proc is not None and self.proc.returncode is not None:
            raise CheckError(f"{self.name} exited with {self.proc.returncode}; "
                             f"see {self.log_path}")

    async def stop(self, timeout_s: float = 10.0) -> None:
        p = self.proc
        if p is None or p.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(p.pid, signal.SIGTERM)
        try:
            await asyncio.wait_for(p.wait(), timeout_s)
        except TimeoutError:
            log.warning("%s did not stop within %s s: killed", self.name, timeout_s)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(p.pid, signal.SIGKILL)
            await p.wait()


async def until(what: str, check: Callable[[], Awaitable[Any]], timeout_s: float,
                children: Sequence[Child] = ()) -> Any:
    """Poll `check` until it returns something true; CheckError naming `what` on timeout."""
    deadline = time.monotonic() + timeout_s
    while True:
        for child in children:
            child.check_alive()
        with contextlib.suppress(aiohttp.ClientError, OSError):
            if result := await check():
                return result
        if time.monotonic() > deadline:
            raise CheckError(f"{what}: not within {timeout_s} s")
        await asyncio.sleep(0.1)


class Site:
    """Sandbox, gateway and hub processes, and the simulated boards, in one work directory."""

    def __init__(self, work: Path, boards_n: int, http: aiohttp.ClientSession) -> None:
        self.work, self.boards_n, self.http = work, boards_n, http
        self.logs = work / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)
        self.gw = f"http://127.0.0.1:{free_port()}"
        self.sb = f"http://127.0.0.1:{free_port()}"
        self.status = f"http://127.0.0.1:{free_port()}/"
        self.password = secrets.token_urlsafe(12)
        self.master_key = secrets.token_bytes(32)
        self.hub_secret = ""
        self.children: list[Child] = []
        self.boards: list[SimBoard] = []

    def _gateway_env(self, sandbox_env: Mapping[str, str]) -> dict[str, str]:
        port = self.gw.rsplit(":", 1)[1]
        return {**os.environ, "GATEWAY_PORT": port, "GATEWAY_DATA_DIR": str(self.work / "gw"),
                "GATEWAY_LOG_LEVEL": "WARNING", "GATEWAY_RAZORPAY_BASE_URL": self.sb,
                "GATEWAY_RAZORPAY_KEY_ID": "rzp_test_check",
                "GATEWAY_RAZORPAY_KEY_SECRET": sandbox_env["SANDBOX_KEY_SECRET"],
                "GATEWAY_WEBHOOK_SECRET": sandbox_env["SANDBOX_WEBHOOK_SECRET"],
                "GATEWAY_TOKEN_KEY": secrets.token_urlsafe(48)}

    async def _admin(self, env: Mapping[str, str], *args: str) -> str:
        p = await asyncio.create_subprocess_exec(
            str(BIN / "cloud-gateway"), *args, env=dict(env), stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE)
        out, err = await p.communicate()
        if p.returncode != 0:
            raise CheckError(f"cloud-gateway {args[0]} {args[1]} failed: {err.decode().strip()}")
        return out.decode()

    async def _get_ok(self, url: str) -> bool:
        async with self.http.get(url, allow_redirects=False) as r:
            return r.status == 200

    async def start(self) -> None:
        if not CATALOG.is_file():
            raise CheckError(f"{CATALOG} is missing: run the check from the repository")
        sandbox_env = {**os.environ, "SANDBOX_KEY_SECRET": secrets.token_urlsafe(24),
                       "SANDBOX_WEBHOOK_SECRET": secrets.token_urlsafe(24)}
        sandbox = Child("sandbox", [
            str(BIN / "cloud-gateway"), "sandbox", "--port", self.sb.rsplit(":", 1)[1],
            "--key-id", "rzp_test_check", "--webhook-url", f"{self.gw}/webhooks/razorpay",
            "--log-level", "WARNING"], sandbox_env, self.logs)
        self.children.append(sandbox)
        await sandbox.start()
        gw_env = self._gateway_env(sandbox_env)
        added = await self._admin(gw_env, "hubs", "add", HUB_ID, "--site", SITE)
        self.hub_secret = added.rsplit(":", 1)[1].strip()
        await self._admin(gw_env, "catalog", "load", str(CATALOG))
        gateway = Child("gateway", [str(BIN / "cloud-gateway"), "serve"], gw_env, self.logs)
        self.children.append(gateway)
        await gateway.start()
        await until("gateway ready", lambda: self._get_ok(f"{self.gw}/readyz"),
                    START_TIMEOUT_S, self.children)

        ttys = self.work / "tty"
        for i in range(1, self.boards_n + 1):
            board = SimBoard(bytes.fromhex("5354") + i.to_bytes(10, "big"), self.master_key,
                             name=f"board-{i}", link_path=ttys / f"board-{i}",
                             behaviour=Behaviour(seed=i))
            await board.start()
            self.boards.append(board)
        toml = HUB_TOML.format(
            hub_id=HUB_ID, data_dir=self.work / "hub", gateway=self.gw,
            status_port=self.status.rsplit(":", 1)[1].rstrip("/"), tech=TECH,
            password_hash=hash_password(self.password), ports=ttys / "board-*")
        (self.work / "hub.toml").write_text(toml)
        hub_env = {**os.environ, "EDGE_HUB_SECRET": self.hub_secret,
                   "EDGE_HUB_MASTER_KEY": self.master_key.hex()}
        hub = Child("hub", [str(BIN / "edge-hub"), "run", "--config",
                            str(self.work / "hub.toml")], hub_env, self.logs)
        self.children.append(hub)
        await hub.start()
        await until("status page up", lambda: self._get_ok(f"{self.status}login"),
                    START_TIMEOUT_S, self.children)
        await asyncio.gather(*(b.wait_connected(START_TIMEOUT_S) for b in self.boards))

    async def pay(self, order_id: str) -> None:
        """What the customer's UPI app does: pay the order's QR (through the sandbox)."""
        async with self.http.post(f"{self.gw}/auth/token",
                                  json={"hub_id": HUB_ID, "secret": self.hub_secret}) as r:
            r.raise_for_status()
            token = (await r.json())["token"]
        async with self.http.get(f"{self.gw}/orders/{order_id}",
                                 headers={"Authorization": f"Bearer {token}"}) as r:
            r.raise_for_status()
            qr_id = (await r.json())["payment"]["qr_id"]
        async with self.http.post(f"{self.sb}/_sim/qr/{qr_id}/pay", json={}) as r:
            r.raise_for_status()

    async def stop(self) -> None:
        for board in self.boards:
            await board.stop()
        for child in reversed(self.children):
            await child.stop()


def require_chromium() -> None:
    if not os.path.exists(CHROMIUM):
        raise CheckError(f"Debian chromium is not installed at {CHROMIUM} (make browser)")


@contextlib.asynccontextmanager
async def chromium_page() -> AsyncIterator[Any]:
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=list(CHROMIUM_ARGS))
        try:
            context = await browser.new_context(viewport={"width": 1280, "height": 1000})
            yield await context.new_page()
        finally:
            await browser.close()


async def live_updates(page: Any) -> int:
    return int(await page.get_attribute("body", "data-live-updates") or 0)


async def watch_purchase(site: Site, page: Any, out: Path) -> CheckResult:
    from playwright.async_api import expect

    expect.set_options(timeout=STEP_TIMEOUT_S * 1000)
    await page.goto(site.status)
    await page.fill("input[name=name]", TECH)
    await page.fill("input[name=password]", site.password)
    await page.click("button[type=submit]")
    await page.wait_for_url(site.status)
    cards = page.locator("article.board")
    await expect(cards).to_have_count(site.boards_n)
    await expect(page.locator("article.board .link", has_text="link up")).to_have_count(
        site.boards_n)
    await expect(page.locator("#live")).to_have_text("live")
    await page.evaluate("window.__sameDocument = true")
    before = await live_updates(page)

    board = site.boards[0]
    card = page.locator(f'article[data-board-uid="{board.uid.hex()}"]')
    log.info("customer at %s orders %s", board.name, PRODUCT)
    purchase: Purchase = await board.request(PRODUCT, OPTIONS, 1,
                                             plan=VendPlan.ok(item_time_s=VEND_ITEM_S))
    if purchase.state is not PurchaseState.SHOWING_QR or purchase.order_ref is None:
        raise CheckError(f"{board.name} got no QR: {purchase.state.value} "
                         f"{purchase.reject_reason or ''} {purchase.reject_message or ''}")
    await expect(card.locator(".vend")).to_have_text("awaiting_payment")
    await expect(card.locator(".qr svg path")).to_have_count(1)
    out.parent.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(out), full_page=True)
    log.info("QR on the page; screenshot %s; paying order %s", out, purchase.order_ref)

    await site.pay(purchase.order_ref)
    await expect(card.locator(".vend")).to_have_text("vending")
    closed = await board.wait_closed(purchase, STEP_TIMEOUT_S)
    if closed.state is not PurchaseState.VENDED:
        raise CheckError(f"the purchase ended {closed.state.value}, not vended")
    row = page.locator(f'#orders tr[data-order-id="{purchase.order_ref}"]')
    await expect(row).to_contain_text("done")
    await expect(card.locator(".no-order")).to_be_visible()
    await page.screenshot(path=str(out.with_name(out.stem + "-done.png")), full_page=True)
    if await page.evaluate("window.__sameDocument") is not True:
        raise CheckError("the page reloaded during the purchase")
    updates = await live_updates(page) - before
    await out_of_service_round_trip(page, card, board)
    return CheckResult(out, await cards.count(), updates)


async def out_of_service_round_trip(page: Any, card: Any, board: SimBoard) -> None:
    """Take the board out of service from the page: it must refuse an order showing the reason.
    Then put it back from the page: it must take orders again."""
    from playwright.async_api import expect

    await card.locator(".svc-toggle").click()
    await card.locator(".reason-form input").fill(SERVICE_REASON)
    await card.locator(".reason-form button[type=submit]").click()
    await expect(card.locator(".service")).to_have_text("out of service")
    refused = await board.request("espresso")
    if (refused.state is not PurchaseState.REJECTED
            or refused.reject_reason != RejectReason.OUT_OF_SERVICE
            or refused.reject_message != SERVICE_REASON):
        raise CheckError(f"an out-of-service board's order ended {refused.state.value} "
                         f"({refused.reject_reason}, {refused.reject_message!r})")
    log.info("out of service from the page: the board refused an order showing %r",
             refused.reject_message)
    await card.locator(".svc-toggle").click()
    await expect(card.locator(".service")).to_have_text("in service")
    again = await board.request("espresso")
    if again.state is not PurchaseState.SHOWING_QR:
        raise CheckError(f"back in service, the board's order ended {again.state.value}")
    await board.cancel(again)
    await board.wait_closed(again, STEP_TIMEOUT_S)
    await expect(card.locator(".no-order")).to_be_visible()


async def run_check(out: Path, boards_n: int = MIN_BOARDS, work: Path | None = None,
                    keep: bool = False) -> CheckResult:
    """Start the site, watch one purchase on the page, stop everything; see the module doc.

    `out` is where the screenshot goes (give an absolute path: it is printed as given).
    """
    work_dir = work or Path(tempfile.mkdtemp(prefix="statuspage-check-"))
    ok = False
    async with aiohttp.ClientSession() as http:
        site = Site(work_dir, boards_n, http)
        try:
            log.info("starting sandbox, gateway and hub with %d boards in %s", boards_n, work_dir)
            await site.start()
            async with chromium_page() as page:
                result = await watch_purchase(site, page, out)
            ok = True
        finally:
            await site.stop()
            if ok and not keep and work is None:
                shutil.rmtree(work_dir, ignore_errors=True)
            elif not ok:
                log.error("logs kept in %s", site.logs)
    return result


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m edge_hub.statuspage_check",
                                description=__doc__.split("\n\n")[0])
    p.add_argument("--boards", type=int, default=MIN_BOARDS, help="simulated boards")
    p.add_argument("--out", type=Path, default=Path("status.png"), help="screenshot path")
    p.add_argument("--keep", action="store_true", help="keep the work directory and its logs")
    args = p.parse_args(argv)
    if args.boards < 1:
        p.error("--boards must be at least 1")
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(message)s")
    try:
        require_chromium()
        result = asyncio.run(run_check(args.out.resolve(), args.boards, keep=args.keep))
    except (CheckError, AssertionError) as exc:  # AssertionError: what the page did not show
        log.error("statuspage check failed: %s", exc)
        return 1
    sys.stdout.write(result.line() + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
