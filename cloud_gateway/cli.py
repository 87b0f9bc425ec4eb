"""The `cloud-gateway` command (console script entry point `cloud_gateway.cli:main`).

    cloud-gateway serve --config gateway.toml
    cloud-gateway hubs add HUB_ID --site SITE     (prints the hub's secret once)
    cloud-gateway hubs list | hubs revoke HUB_ID
    cloud-gateway catalog load FILE               (tells every hub: catalog_changed)
    cloud-gateway settings                        (every setting, its variable, default, help)
    cloud-gateway sandbox ...                     (the offline Razorpay: cloud_gateway.sandbox.cli)

Every subcommand but `sandbox` reads the same settings (TOML via --config, then GATEWAY_*
variables, then $CREDENTIALS_DIRECTORY). Exit codes: 0 ok, 1 failed, 2 usage or settings error.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import secrets
import sys
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import TypeVar

from protocol.hub_api import CommandType

from .auth import add_hub_tx, hash_secret, list_hubs, revoke_hub_tx
from .catalog import CatalogError, parse_catalog_file, replace_catalog_tx
from .commands import CommandQueue
from .db import Database, DatabaseError, Tx
from .errors import GatewayError
from .logs import setup_logging
from .settings import SETTINGS, Settings, SettingsError, load_settings

log = logging.getLogger(__name__)
T = TypeVar("T")


def _out(text: str) -> None:
    sys.stdout.write(text + "\n")


def _parser() -> argparse.ArgumentParser:
    # --config is accepted before or after the subcommand (`serve --config gateway.toml`)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", type=Path, default=argparse.SUPPRESS,
                        help="gateway TOML file (optional)")
    p = argparse.ArgumentParser(prog="cloud-gateway", description=__doc__.split("\n\n")[0],
                                parents=[common])
    sub = p.add_subparsers(dest="command", required=True)
    sub.add_parser("serve", help="run the HTTP service", parents=[common])
    hubs = sub.add_parser("hubs", help="manage hub credentials").add_subparsers(
        dest="action", required=True)
    add = hubs.add_parser("add", help="add a hub and print its secret (shown once)",
                          parents=[common])
    add.add_argument("hub_id")
    add.add_argument("--site", required=True, help="site whose prices the hub sells at")
    hubs.add_parser("list", help="list hubs", parents=[common])
    revoke = hubs.add_parser("revoke", help="revoke a hub: its tokens stop working at once",
                             parents=[common])
    revoke.add_argument("hub_id")
    cat = sub.add_parser("catalog", help="manage the catalog").add_subparsers(
        dest="action", required=True)
    load = cat.add_parser("load", help="replace the catalog from a TOML file", parents=[common])
    load.add_argument("file", type=Path)
    sub.add_parser("settings", help="list every setting with its variable, default and help")
    sub.add_parser("sandbox", help="run the offline Razorpay sandbox (see its --help)",
                   add_help=False)
    return p


async def _with_db(settings: Settings, fn: Callable[[Database], Awaitable[T]]) -> T:
    db = Database(settings.db_path, max_batch=settings.commit_max_batch,
                  checkpoint_interval_s=settings.checkpoint_interval_s)
    await db.open()
    try:
        return await fn(db)
    finally:
        await db.close()


async def _hubs_add(db: Database, hub_id: str, site: str) -> str:
    secret = secrets.token_urlsafe(32)
    secret_hash = hash_secret(secret)
    await db.write(lambda tx: add_hub_tx(tx, hub_id, site, secret_hash))
    return secret


async def _catalog_load(db: Database, path: Path) -> int:
    catalog = parse_catalog_file(path)
    queue = CommandQueue(db)

    def unit(tx: Tx) -> int:
        replace_catalog_tx(tx, catalog)
        hubs = tx.all("SELECT hub_id FROM hubs WHERE revoked_at IS NULL")
        for row in hubs:
            queue.enqueue_tx(tx, row["hub_id"], CommandType.CATALOG_CHANGED, None, None, {})
        return len(catalog.items)

    return await db.write(unit)


def _settings_table() -> str:
    lines = []
    for s in SETTINGS:
        default = "(secret: env or credential file)" if s.secret else json.dumps(s.default)
        lines.append(f"{s.name}  [{s.env}]  default {default}\n    {s.help}")
    return "\n".join(lines)


def run(argv: Sequence[str]) -> int:
    argv = list(argv)
    if argv[:1] == ["sandbox"]:
        from .sandbox.cli import run as sandbox_run  # imported only when asked for

        return sandbox_run(argv[1:])
    args = _parser().parse_args(argv)
    try:
        settings = load_settings(getattr(args, "config", None))
    except SettingsError as exc:
        sys.stderr.write(f"cloud-gateway: {exc}\n")
        return 2
    try:
        if args.command == "serve":
            return _serve(settings)
        if args.command == "settings":
            _out(_settings_table())
        elif args.command == "hubs" and args.action == "add":
            secret = asyncio.run(_with_db(
                settings, lambda db: _hubs_add(db, args.hub_id, args.site)))
            _out(f"hub {args.hub_id} added at site {args.site}")
            _out(f"secret (shown once; give it to the hub): {secret}")
        elif args.command == "hubs" and args.action == "list":
            for hub in asyncio.run(_with_db(settings, _list)):
                _out(json.dumps(hub))
        elif args.command == "hubs" and args.action == "revoke":
            asyncio.run(_with_db(settings, lambda db: db.write(
                lambda tx: revoke_hub_tx(tx, args.hub_id))))
            _out(f"hub {args.hub_id} revoked")
        elif args.command == "catalog":
            n = asyncio.run(_with_db(settings, lambda db: _catalog_load(db, args.file)))
            _out(f"catalog loaded: {n} products and options; hubs notified")
    except (GatewayError, CatalogError, DatabaseError, OSError) as exc:
        sys.stderr.write(f"cloud-gateway: {getattr(exc, 'message', exc)}\n")
        return 1
    return 0


async def _list(db: Database) -> list[dict[str, object]]:
    return list_hubs(db)


def _serve(settings: Settings) -> int:
    from aiohttp import web

    from .app import create_app

    setup_logging(settings.log_level, settings.log_json)
    try:
        app = create_app(settings)
    except SettingsError as exc:
        sys.stderr.write(f"cloud-gateway: {exc}\n")
        return 2
    log.info("serving", extra={"host": settings.host, "port": settings.port,
                               "data_dir": settings.data_dir})
    web.run_app(app, host=settings.host, port=settings.port, access_log=None, print=None,
                shutdown_timeout=10.0)
    return 0


def main() -> None:
    sys.exit(run(sys.argv[1:]))


__all__ = ["main", "run"]


if __name__ == "__main__":
    main()
