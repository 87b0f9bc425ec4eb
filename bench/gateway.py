"""Gateway benchmark: create-and-pay latency at 32 concurrent hubs, and signed-webhook throughput
against a hello-world aiohttp server measured with the same client in the same run.

Three processes besides this one: the Razorpay sandbox (`cloud-gateway sandbox`, answers at
once, no faults, sends no webhooks itself), the gateway (`cloud-gateway serve`, its own data
directory in a temporary folder), and a minimal aiohttp hello-world server. This script is the
client: one aiohttp session for everything.

1. 32 hubs (one board each) each create-and-pay orders in one round trip
   (POST /orders with "pay": true), one at a time per hub: p50/p99 latency of that call.
2. Every one of those QR codes is paid in the sandbox (/_sim), and a `payment.captured` webhook
   for each payment is built and signed (HMAC-SHA256 of the raw body) like Razorpay's.
3. The signed webhooks are POSTed to the gateway by 64 concurrent senders; the gateway verifies,
   stores in its inbox, and applies each one (order paid, payment_confirmed queued) before its
   200. Then the same bodies and headers go to the hello-world server the same way.

Last line: `gateway webhooks_per_s=... hello_per_s=... ratio=... create_pay_p50_ms=...
create_pay_p99_ms=...`. Bar: ratio >= 0.25, create_pay_p99_ms <= 50. Run:
`.venv/bin/python bench/gateway.py [--orders-per-hub N]`.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import hmac
import json
import os
import secrets
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import aiohttp

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from cloud_gateway.auth import add_hub_tx, hash_secret  # noqa: E402
from cloud_gateway.catalog import parse_catalog_file, replace_catalog_tx  # noqa: E402
from cloud_gateway.db import Database, Tx  # noqa: E402

HUBS = 32
# Razorpay delivers webhooks over many connections at once; both servers get the same number
WEBHOOK_SENDERS = 64
ROUNDS = 4
KEY_ID = "rzp_test_bench"
HELLO = """
import sys
from aiohttp import web

async def ok(request):
    await request.read()
    return web.Response(text='{"status":"ok"}', content_type="application/json")

app = web.Application()
app.router.add_post("/webhooks/razorpay", ok)
app.router.add_get("/healthz", ok)
web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), print=None, access_log=None)
"""
GATEWAY = "from cloud_gateway.cli import main; main()"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def pct(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def wait_ready(http: aiohttp.ClientSession, url: str, proc: subprocess.Popen[bytes],
                     timeout_s: float = 20.0) -> None:
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise RuntimeError(f"{url}: process exited with {proc.returncode}")
        try:
            async with http.get(url) as resp:
                if resp.status == 200:
                    return
        except aiohttp.ClientError:
            pass
        await asyncio.sleep(0.05)
    raise RuntimeError(f"{url} not ready after {timeout_s} s")


async def run_pool(jobs: Sequence[Any], workers: int,
                   fn: Callable[[Any], Awaitable[None]]) -> float:
    """Run fn over jobs with `workers` concurrent workers; returns the elapsed seconds."""
    queue: asyncio.Queue[Any] = asyncio.Queue()
    for job in jobs:
        queue.put_nowait(job)

    async def worker() -> None:
        while not queue.empty():
            await fn(queue.get_nowait())

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(workers)))
    return time.perf_counter() - started


async def seed(data_dir: Path, hub_secrets: dict[str, str]) -> None:
    db = Database(data_dir / "gateway.sqlite3")
    await db.open()
    hashes = {hub: hash_secret(secret) for hub, secret in hub_secrets.items()}
    catalog = parse_catalog_file(ROOT / "cloud_gateway" / "examples" / "catalog.toml")

    def unit(tx: Tx) -> None:
        for hub, digest in hashes.items():
            add_hub_tx(tx, hub, "bench-site", digest)
        replace_catalog_tx(tx, catalog)

    await db.write(unit)
    await db.close()


def captured_event(payment: dict[str, Any]) -> bytes:
    """A `payment.captured` envelope in Razorpay's shape, slashes escaped as Razorpay does."""
    envelope = {"entity": "event", "account_id": "acc_Bench000000001",
                "event": "payment.captured", "contains": ["payment"],
                "payload": {"payment": {"entity": payment}}, "created_at": int(time.time())}
    return json.dumps(envelope, separators=(",", ":")).replace("/", "\\/").encode()


def bench(orders_per_hub: int) -> str:
    key_secret = secrets.token_urlsafe(24)
    webhook_secret = secrets.token_urlsafe(24)
    hub_secrets = {f"bench-hub-{i:02d}": secrets.token_urlsafe(24) for i in range(HUBS)}
    procs: list[subprocess.Popen[bytes]] = []
    with tempfile.TemporaryDirectory(prefix="gateway-bench-") as tmp:
        data_dir = Path(tmp) / "data"
        asyncio.run(seed(data_dir, hub_secrets))
        base_env = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")}
        try:
            sandbox = subprocess.Popen(
                [sys.executable, "-m", "cloud_gateway.sandbox.cli", "--port", "0",
                 "--key-id", KEY_ID, "--log-level", "WARNING"],
                cwd=ROOT, stdout=subprocess.PIPE,
                env={**base_env, "SANDBOX_KEY_SECRET": key_secret,
                     "SANDBOX_WEBHOOK_SECRET": webhook_secret})
            procs.append(sandbox)
            assert sandbox.stdout is not None
            line = sandbox.stdout.readline().decode().strip()
            sandbox_url = line.rsplit(" ", 1)[-1]
            if not sandbox_url.startswith("http://"):
                raise RuntimeError(f"sandbox did not start: {line!r}")
            gw_port, hello_port = free_port(), free_port()
            gateway = subprocess.Popen(
                [sys.executable, "-c", GATEWAY, "serve"], cwd=ROOT,
                env={**base_env, "GATEWAY_PORT": str(gw_port), "GATEWAY_DATA_DIR": str(data_dir),
                     "GATEWAY_RAZORPAY_KEY_ID": KEY_ID,
                     "GATEWAY_RAZORPAY_KEY_SECRET": key_secret,
                     "GATEWAY_RAZORPAY_BASE_URL": sandbox_url,
                     "GATEWAY_WEBHOOK_SECRET": webhook_secret,
                     "GATEWAY_TOKEN_KEY": secrets.token_urlsafe(48),
                     "GATEWAY_LOG_LEVEL": "WARNING", "GATEWAY_RAZORPAY_PROCESSES": "2",
                     # 32 hubs from one address and one benchmark: lift the per-hub limits
                     "GATEWAY_RATE_LIMIT_PER_S": "100000", "GATEWAY_RATE_LIMIT_BURST": "100000",
                     "GATEWAY_AUTH_RATE_LIMIT_PER_S": "1000"})
            procs.append(gateway)
            hello = subprocess.Popen([sys.executable, "-c", HELLO, str(hello_port)], cwd=ROOT)
            procs.append(hello)
            return asyncio.run(_client(f"http://127.0.0.1:{gw_port}",
                                       f"http://127.0.0.1:{hello_port}", sandbox_url,
                                       gateway, hello, hub_secrets, webhook_secret,
                                       orders_per_hub, data_dir))
        finally:
            for proc in reversed(procs):  # the gateway stops before its Razorpay does
                proc.terminate()
                try:
                    proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()


async def _client(gw_url: str, hello_url: str, sandbox_url: str,
                  gateway: subprocess.Popen[bytes], hello: subprocess.Popen[bytes],
                  hub_secrets: dict[str, str], webhook_secret: str, orders_per_hub: int,
                  data_dir: Path) -> str:
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as http:
        await wait_ready(http, gw_url + "/readyz", gateway)
        await wait_ready(http, hello_url + "/healthz", hello)
        return await _measure(http, gw_url, hello_url, sandbox_url, hub_secrets,
                              webhook_secret, orders_per_hub, data_dir)


async def _measure(http: aiohttp.ClientSession, gw_url: str, hello_url: str, sandbox_url: str,
                   hub_secrets: dict[str, str], webhook_secret: str, orders_per_hub: int,
                   data_dir: Path) -> str:
    headers: dict[str, dict[str, str]] = {}
    for n, (hub, secret) in enumerate(hub_secrets.items()):
        async with http.post(gw_url + "/auth/token",
                             json={"hub_id": hub, "secret": secret}) as resp:
            token = (await resp.json())["token"]
        headers[hub] = {"Authorization": f"Bearer {token}"}
        uid = f"{n:024x}"
        async with http.put(f"{gw_url}/hub/boards/{uid}", headers=headers[hub], json={
                "board_uid": uid, "firmware": "bench", "protocol_version": 1,
                "products": ["cappuccino"]}) as resp:
            assert resp.status == 200, await resp.text()

    # 1. create-and-pay, one round trip, 32 hubs concurrently, each one order at a time
    latencies: list[float] = []
    qr_ids: list[str] = []

    async def hub_loop(n: int, hub: str, count: int, record: bool) -> None:
        uid = f"{n:024x}"
        for i in range(count):
            body = {"board_uid": uid, "product": "cappuccino", "options": ["extra_shot"],
                    "quantity": 1, "idempotency_key": f"{hub}-{record}-{i}", "pay": True}
            started = time.perf_counter()
            async with http.post(gw_url + "/orders", json=body, headers=headers[hub]) as resp:
                order = await resp.json()
            elapsed = time.perf_counter() - started
            if resp.status != 201:
                raise RuntimeError(f"create+pay failed: {resp.status} {order}")
            qr_ids.append(order["payment"]["qr_id"])
            if record:
                latencies.append(elapsed)

    hubs = list(hub_secrets)
    await asyncio.gather(*(hub_loop(n, h, 3, False) for n, h in enumerate(hubs)))  # warm-up
    await asyncio.gather(*(hub_loop(n, h, orders_per_hub, True) for n, h in enumerate(hubs)))

    # 2. pay every QR in the sandbox; build one signed payment.captured per payment
    deliveries: list[tuple[bytes, dict[str, str]]] = []

    async def pay(qr_id: str) -> None:
        async with http.post(f"{sandbox_url}/_sim/qr/{qr_id}/pay", json={}) as resp:
            payment = (await resp.json())["payments"][0]
        raw = captured_event(payment)
        signature = hmac.new(webhook_secret.encode(), raw, hashlib.sha256).hexdigest()
        deliveries.append((raw, {"Content-Type": "application/json",
                                 "X-Razorpay-Signature": signature,
                                 "X-Razorpay-Event-Id": "evt_" + secrets.token_hex(7)}))

    await run_pool(qr_ids, 16, pay)

    # 3. the same client and concurrency against the gateway and hello-world, in alternating
    #    rounds (each round a slice of the webhooks) so a change in machine load hits both
    async def send_to(base: str, items: Sequence[tuple[bytes, dict[str, str]]],
                      senders: int = WEBHOOK_SENDERS) -> float:
        failures: list[str] = []

        async def send(item: tuple[bytes, dict[str, str]]) -> None:
            raw, hdrs = item
            async with http.post(base + "/webhooks/razorpay", data=raw, headers=hdrs) as resp:
                body = await resp.read()
                if resp.status != 200:
                    failures.append(f"{resp.status} {body[:200]!r}")

        elapsed = await run_pool(items, senders, send)
        if failures:
            raise RuntimeError(f"{len(failures)} webhook deliveries failed: {failures[:3]}")
        return elapsed

    gw_s = hello_s = 0.0
    for r in range(ROUNDS):
        chunk = deliveries[r::ROUNDS]
        gw_s += await send_to(gw_url, chunk)
        hello_s += await send_to(hello_url, chunk)
    webhooks_per_s = len(deliveries) / gw_s
    hello_per_s = len(deliveries) / hello_s

    conn = sqlite3.connect(f"file:{data_dir / 'gateway.sqlite3'}?mode=ro", uri=True)
    try:
        paid = conn.execute("SELECT COUNT(*) FROM orders WHERE state = 'paid'").fetchone()[0]
        inbox = conn.execute("SELECT COUNT(*) FROM webhook_inbox").fetchone()[0]
    finally:
        conn.close()
    print(f"create+pay: {len(latencies)} orders from {HUBS} hubs; webhooks: {len(deliveries)} "
          f"stored {inbox}, orders paid {paid}")
    if paid != len(deliveries):
        raise RuntimeError(f"only {paid} of {len(deliveries)} orders were paid by the webhooks")
    p50 = statistics.median(latencies) * 1000
    p99 = pct(latencies, 0.99) * 1000
    return (f"gateway webhooks_per_s={webhooks_per_s:.1f} hello_per_s={hello_per_s:.1f} "
            f"ratio={webhooks_per_s / hello_per_s:.3f} create_pay_p50_ms={p50:.2f} "
            f"create_pay_p99_ms={p99:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--orders-per-hub", type=int, default=60)
    args = parser.parse_args()
    print(bench(args.orders_per_hub))


if __name__ == "__main__":
    main()
