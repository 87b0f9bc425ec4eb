"""``edge-hub``: run the daemon, hash a technician password, or run a simulated board."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import logging
import signal
import sys
from collections.abc import Sequence

from edge_hub.config import ConfigError, load_config
from edge_hub.store import StoreError

log = logging.getLogger(__name__)

EXIT_CONFIG = 2


async def _run(config_path: str) -> int:
    from edge_hub.daemon import Daemon
    from edge_hub.view import RecentLogs

    config = load_config(config_path)
    logging.getLogger().setLevel(config.log.level)
    logs = RecentLogs()
    logging.getLogger().addHandler(logs)
    daemon = Daemon(config, logs=logs)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await daemon.start()
    try:
        await stop.wait()
    finally:
        await daemon.stop()
    return 0


def _hash_password(args: argparse.Namespace) -> int:
    from edge_hub.status.auth import hash_password

    if args.stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = getpass.getpass("password: ")
        if getpass.getpass("again: ") != password:
            sys.stderr.write("passwords differ\n")
            return 1
    if not password:
        sys.stderr.write("empty password\n")
        return 1
    sys.stdout.write(hash_password(password) + "\n")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "sim-board":
        from edge_hub.simboard.cli import run as sim_run

        return int(sim_run(argv[1:]) or 0)
    parser = argparse.ArgumentParser(prog="edge-hub", description=__doc__)
    sub = parser.add_subparsers(dest="cmd", required=True)
    p_run = sub.add_parser("run", help="run the hub daemon")
    p_run.add_argument("--config", "-c", default="/etc/edge-hub/hub.toml",
                       help="path to hub.toml (default: %(default)s)")
    p_hash = sub.add_parser("hash-password",
                            help="print a scrypt hash for a [[status.users]] entry")
    p_hash.add_argument("--stdin", action="store_true",
                        help="read the password from the first line of stdin")
    sub.add_parser("sim-board", help="run a simulated board on a pseudo-terminal "
                                     "(edge-hub sim-board --help)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if args.cmd == "hash-password":
        return _hash_password(args)
    try:
        return asyncio.run(_run(args.config))
    except ConfigError as e:
        sys.stderr.write(f"edge-hub: configuration error: {e}\n")
        return EXIT_CONFIG
    except StoreError as e:
        sys.stderr.write(f"edge-hub: database error: {e}\n")
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
