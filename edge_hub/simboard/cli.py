"""``edge-hub sim-board`` / ``python -m edge_hub.simboard``: simulated boards on pseudo-terminals.

    edge-hub sim-board --count 4 --dir /tmp/boards --scenario happy --repeat 0

prints one line per board saying where its port is (point the hub's ``[[boards]] port`` at
``/tmp/boards/board-*``), then one line per purchase, and stops cleanly on Ctrl-C or SIGTERM.
Without a script the boards just sit there like idle machines: HELLO, heartbeats, STATUS answers.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import sys
from pathlib import Path
from typing import Any

from edge_hub.simboard.board import DEFAULT_PRODUCTS, TEST_MASTER_KEY, SimBoard
from edge_hub.simboard.model import DEFAULT_FW, Behaviour, KeyMode, Purchase
from edge_hub.simboard.runner import Played, play
from edge_hub.simboard.script import SCENARIOS, ScriptError, Step, parse, scenario

logger = logging.getLogger(__name__)

MASTER_KEY_ENV = "EDGE_HUB_MASTER_KEY"  # the hub's name for it: hex, 32 bytes
DEFAULT_UID_BASE = "53494d000000000000000000"  # "SIM" then a counter: board 1 ends in ...01
EXIT_OK, EXIT_USAGE, EXIT_UNEXPECTED = 0, 2, 1


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="edge-hub sim-board",
        description="Simulated vending boards on pseudo-terminals, speaking the board side of "
        "docs/protocol.md. Scenarios: " + ", ".join(f"{k} ({v})" for k, v in SCENARIOS.items()),
    )
    p.add_argument("-n", "--count", type=int, default=1, help="boards in this process (1)")
    p.add_argument("--dir", type=Path, help="make stable port names DIR/board-1..N (symlinks)")
    p.add_argument("--uid-base", default=DEFAULT_UID_BASE,
                   help="96-bit uid (hex) of board 0; board i adds i (default %(default)s)")
    p.add_argument("--products", default=",".join(DEFAULT_PRODUCTS),
                   help="product codes the board offers (%(default)s)")
    group = p.add_mutually_exclusive_group()
    group.add_argument("--script", help="steps, e.g. buy:cappuccino+extra_shot,wait_paid,vend_ok")
    group.add_argument("--scenario", choices=sorted(SCENARIOS), help="a named script")
    p.add_argument("--repeat", type=int, default=1, help="play the script N times, 0 = forever")
    p.add_argument("--stay", action="store_true", help="keep the boards up after the script")
    p.add_argument("--key-mode", choices=[m.value for m in KeyMode], default="correct",
                   help="correct key, none, or a wrong one (%(default)s)")
    p.add_argument("--master-key-file", type=Path,
                   help=f"hex master key file (default: ${MASTER_KEY_ENV}, else the published "
                   "test key)")
    p.add_argument("--junk", type=float, default=0.0, help="junk bytes per byte on the line")
    p.add_argument("--flip", type=float, default=0.0, help="bit flips per byte on the line")
    p.add_argument("--seed", type=int, help="seed for noise and request ids")
    p.add_argument("--fw", default=DEFAULT_FW, help="firmware version in HELLO")
    p.add_argument("--log-level", default="WARNING", help="logging level (WARNING)")
    return p


class UsageError(Exception):
    pass


def run(argv: list[str]) -> int:
    """Entry point (``edge-hub sim-board`` delegates here). Returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        steps = _steps(args)
        boards = _boards(args)
    except (UsageError, ScriptError, ValueError) as exc:
        print(f"edge-hub sim-board: {exc}", file=sys.stderr)
        return EXIT_USAGE
    return asyncio.run(_main(boards, steps, repeat=args.repeat, stay=args.stay))


def _steps(args: argparse.Namespace) -> list[Step] | None:
    if args.script:
        return parse(args.script)
    if args.scenario:
        return scenario(args.scenario)
    return None


def _boards(args: argparse.Namespace) -> list[SimBoard]:
    if not 1 <= args.count <= 247:
        raise UsageError(f"--count must be 1..247, got {args.count}")
    if args.repeat < 0:
        raise UsageError("--repeat must be >= 0")
    try:
        base = int(args.uid_base, 16)
    except ValueError:
        raise UsageError(f"--uid-base is not hex: {args.uid_base!r}") from None
    if not 0 <= base < 1 << 96 or base + args.count >= 1 << 96:
        raise UsageError("--uid-base must be a 96-bit (24 hex digit) value")
    products = tuple(x for x in args.products.split(",") if x)
    if not products:
        raise UsageError("--products is empty")
    key = _master_key(args.master_key_file)
    behaviour = Behaviour(key_mode=KeyMode(args.key_mode), junk_rate=args.junk,
                          flip_rate=args.flip, seed=args.seed, fw_version=args.fw)
    return [
        SimBoard((base + i).to_bytes(12, "big"), key, name=f"board-{i}",
                 link_path=args.dir / f"board-{i}" if args.dir else None,
                 products=products, behaviour=behaviour, on_purchase=_print_purchase)
        for i in range(1, args.count + 1)
    ]


def _master_key(path: Path | None) -> bytes:
    if path is not None:
        try:
            text = path.read_text().strip()
        except OSError as exc:
            raise UsageError(f"cannot read the master key file: {exc.strerror}") from None
        source = str(path)
    elif MASTER_KEY_ENV in os.environ:
        text, source = os.environ[MASTER_KEY_ENV].strip(), f"${MASTER_KEY_ENV}"
    else:
        logger.warning("no master key given: using the published TEST key")
        return TEST_MASTER_KEY
    try:
        key = bytes.fromhex(text)
    except ValueError:
        raise UsageError(f"master key in {source} is not hex") from None
    if len(key) != 32:
        raise UsageError(f"master key in {source} must be 32 bytes, got {len(key)}")
    return key


async def _main(boards: list[SimBoard], steps: list[Step] | None, *, repeat: int,
                stay: bool) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    played: list[Played] = []
    try:
        for board in boards:
            port = await board.start()
            print(f"{board.name} uid={board.uid.hex()} port={port} pty={board.line.slave_path}",
                  flush=True)
        if steps is not None:
            scripts = asyncio.gather(*(_loop_script(b, steps, repeat, played) for b in boards))
            stopped = asyncio.ensure_future(stop.wait())
            waiters: set[asyncio.Future[Any]] = {scripts, stopped}
            await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
            if not scripts.done():
                scripts.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await scripts
            if stay and not stop.is_set():
                await stopped
            stopped.cancel()
        else:
            await stop.wait()
    finally:
        for board in boards:
            await board.stop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
    unexpected = [p for p in played if not p.as_expected]
    print(f"done: {len(played)} purchases, {len(unexpected)} not as scripted", flush=True)
    return EXIT_UNEXPECTED if unexpected else EXIT_OK


async def _loop_script(board: SimBoard, steps: list[Step], repeat: int,
                       played: list[Played]) -> None:
    n = 0
    while repeat == 0 or n < repeat:
        for item in await play(board, steps):
            played.append(item)
            if not item.as_expected:
                expected = "/".join(sorted(s.value for s in item.step.expected))
                print(f"{board.name} {item.purchase.order_ref}: expected {expected}", flush=True)
        n += 1


def _print_purchase(board: SimBoard, p: Purchase) -> None:
    what = "+".join((p.product, *p.options)) + f" x{p.quantity}"
    parts = [f"{board.name} {p.order_ref or f'request#{p.request_id}'} {what}: {p.state.value}"]
    if p.qr_latency_s is not None:
        parts.append(f"qr {p.qr_latency_s * 1000:.1f} ms")
    if p.qr is not None and not p.qr.valid:
        parts.append(f"BAD QR: {p.qr.problem}")
    if p.dispensed or p.t_approved:
        parts.append(f"dispensed {p.dispensed}/{p.approved_quantity or p.quantity}")
    if p.reject_reason is not None:
        parts.append(f"rejected {p.reject_reason}: {p.reject_message}")
    print(", ".join(parts), flush=True)
