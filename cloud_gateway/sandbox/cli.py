"""`cloud-gateway sandbox ...`: run the offline Razorpay as its own process.

Secrets come from the environment, never from the command line: SANDBOX_KEY_SECRET (the API key
secret the SDK must send) and SANDBOX_WEBHOOK_SECRET. Once listening, one line
`sandbox listening on http://HOST:PORT` goes to stdout (useful with --port 0).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import signal
import sys
from typing import Any

from aiohttp import web

from .app import create_sandbox_app
from .config import SETTINGS_HELP, SandboxConfig
from .errors import SandboxError
from .faults import FAULTS_HELP

log = logging.getLogger(__name__)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="cloud-gateway sandbox",
        description="Offline Razorpay stand-in (REST subset + signed webhooks + fault knobs).",
        epilog="fault knobs for --faults: "
        + "; ".join(f"{k}: {h}" for k, h in FAULTS_HELP.items()),
    )
    d = SandboxConfig()
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=9010, help="0 = any free port")
    p.add_argument("--key-id", default=d.key_id, help=SETTINGS_HELP["key_id"])
    p.add_argument("--webhook-url", default=None, help=SETTINGS_HELP["webhook_url"])
    p.add_argument("--auto-pay-after", type=float, default=None, metavar="S",
                   help=SETTINGS_HELP["auto_pay_after_s"])
    p.add_argument("--refund-after", type=float, default=d.refund_process_after_s, metavar="S",
                   help=SETTINGS_HELP["refund_process_after_s"])
    p.add_argument("--qr-min-lead", type=int, default=d.qr_min_lead_s, metavar="S",
                   help=SETTINGS_HELP["qr_min_lead_s"])
    p.add_argument("--webhook-timeout", type=float, default=d.webhook_timeout_s, metavar="S",
                   help=SETTINGS_HELP["webhook_timeout_s"])
    p.add_argument("--faults", default=None, metavar="JSON",
                   help='initial fault knobs, e.g. \'{"seed": 7, "webhook_drop_rate": 0.1}\'')
    p.add_argument("--log-level", default="INFO")
    p.add_argument("--access-log", action="store_true", help="log every request (slower)")
    return p


def build_config(args: argparse.Namespace, env: dict[str, str]) -> SandboxConfig:
    d = SandboxConfig()
    return SandboxConfig(
        key_id=args.key_id,
        key_secret=env.get("SANDBOX_KEY_SECRET", d.key_secret),
        webhook_url=args.webhook_url,
        webhook_secret=env.get("SANDBOX_WEBHOOK_SECRET", d.webhook_secret),
        old_webhook_secret=env.get("SANDBOX_OLD_WEBHOOK_SECRET", d.old_webhook_secret),
        auto_pay_after_s=args.auto_pay_after,
        refund_process_after_s=args.refund_after,
        qr_min_lead_s=args.qr_min_lead,
        webhook_timeout_s=args.webhook_timeout,
    )


async def _serve(host: str, port: int, app: web.Application, access_log: bool) -> None:
    runner = web.AppRunner(
        app, handle_signals=False, access_log=logging.getLogger("aiohttp.access") if access_log
        else None,
    )
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port)
        await site.start()
        bound = runner.addresses[0]
        sys.stdout.write(f"sandbox listening on http://{bound[0]}:{bound[1]}\n")
        sys.stdout.flush()
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        log.info("sandbox stopping")
    finally:
        await runner.cleanup()


def run(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s %(message)s")
    try:
        config = build_config(args, dict(os.environ))
        faults: dict[str, Any] = json.loads(args.faults) if args.faults else {}
        if not isinstance(faults, dict):
            raise ValueError("--faults must be a JSON object")
        app = create_sandbox_app(config, faults=faults)
    except (ValueError, SandboxError) as exc:  # json.JSONDecodeError is a ValueError
        sys.stderr.write(f"cloud-gateway sandbox: {exc}\n")
        return 2
    asyncio.run(_serve(args.host, args.port, app, args.access_log))
    return 0


if __name__ == "__main__":
    raise SystemExit(run(sys.argv[1:]))
