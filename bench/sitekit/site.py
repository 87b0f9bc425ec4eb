"""A whole site on loopback: the Razorpay sandbox, the gateway and the hub as processes, and
simulated boards (``edge_hub.simboard.SimBoard``) on pseudo-terminals in this process.

    site = LocalSite(SiteConfig(root=Path("demo-data"), boards=3, auto_pay_after_s=3.0))
    await site.start()        # sandbox, gateway (hub added, catalog loaded), boards, hub
    ...                       # site.boards, site.sim_pay(...), site.kill_hub(), ...
    await site.stop()         # boards, hub, gateway, sandbox; every process group reaped

The root directory is wiped at start (a fresh site every time: running twice in a row works) and
holds ``gateway/`` (its SQLite database), ``hub/`` (hub.db), ``tty/`` (the boards' pty
symlinks), ``logs/`` and ``hub.toml``. Nothing here is a test flag in the product: the parts are
configured only through their documented settings (GATEWAY_* variables, hub.toml, the sandbox's
command line and /_sim routes).
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import os
import secrets
import shutil
import sqlite3
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from bench.sitekit.procs import Proc, ProcError, free_port, until
from edge_hub.simboard import Behaviour, SimBoard

log = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
CATALOG = REPO / "cloud_gateway" / "examples" / "catalog.toml"
SITE_ENV = "UPI_VEND_SITE"
HTTP_ERRORS = (aiohttp.ClientError, OSError, asyncio.TimeoutError)


@dataclass(frozen=True)
class SiteConfig:
    """What the site looks like. Gateway knobs are gateway settings (docs/gateway.md), hub knobs
    hub.toml keys (docs/hub.md), sandbox knobs its settings (cloud_gateway/sandbox/README.md)."""

    root: Path
    boards: int = 3
    hub_id: str = "hub1"  # short: the hub builds its idempotency keys from it
    site: str = "demo-site"
    catalog: Path = CATALOG
    master_key: bytes = field(default_factory=lambda: secrets.token_bytes(32), repr=False)
    # sandbox
    auto_pay_after_s: float | None = None
    qr_min_lead_s: int = 0  # the real Razorpay wants >= 120 s; short QR lives for short runs
    sandbox_faults: Mapping[str, Any] = field(default_factory=dict)
    # gateway settings (name -> value, as GATEWAY_<NAME>)
    gateway: Mapping[str, Any] = field(default_factory=dict)
    # hub.toml: section -> {key: value}, merged over the defaults below
    hub: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    status_port: int | None = None  # None: no status page
    status_user: str = "tech"
    status_password: str = field(default_factory=lambda: secrets.token_urlsafe(9), repr=False)
    log_level: str = "WARNING"
    board_behaviour: Behaviour = field(default_factory=Behaviour)


HUB_DEFAULTS: dict[str, dict[str, Any]] = {
    "gateway": {"backoff_initial_s": 0.1, "backoff_max_s": 1.0, "request_timeout_s": 3.0},
    "limits": {"port_retry_initial_s": 0.1, "port_retry_max_s": 1.0},
}


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int | float):
        return repr(v)
    return json.dumps(str(v))  # a JSON string is a valid TOML basic string


def _toml_table(name: str, values: Mapping[str, Any]) -> str:
    body = "".join(f"{k} = {_toml_value(v)}\n" for k, v in values.items())
    return f"[{name}]\n{body}"


class LocalSite:
    def __init__(self, config: SiteConfig) -> None:
        self.config = config
        self.root = config.root.resolve()
        self.gw_port = free_port()
        self.sb_port = free_port()
        self.boards: list[SimBoard] = []
        self.procs: dict[str, Proc] = {}
        self.hub_secret = ""
        self.token_key = secrets.token_urlsafe(48)
        self._http: aiohttp.ClientSession | None = None

    # --- addresses -------------------------------------------------------------------------
    @property
    def gateway_url(self) -> str:
        return f"http://127.0.0.1:{self.gw_port}"

    @property
    def sandbox_url(self) -> str:
        return f"http://127.0.0.1:{self.sb_port}"

    @property
    def status_url(self) -> str | None:
        port = self.config.status_port
        return None if port is None else f"http://127.0.0.1:{port}/"

    @property
    def gateway_db_path(self) -> Path:
        return self.root / "gateway" / "gateway.sqlite3"

    @property
    def hub_db_path(self) -> Path:
        return self.root / "hub" / "hub.db"

    @property
    def http(self) -> aiohttp.ClientSession:
        if self._http is None:
            raise ProcError("the site is not started")
        return self._http

    def secret_values(self) -> dict[str, str]:
        """Every secret this site hands out, by name (to check that no log shows one)."""
        from cloud_gateway.sandbox import SandboxConfig

        sb = SandboxConfig()
        return {"hub_secret": self.hub_secret, "master_key": self.config.master_key.hex(),
                "token_key": self.token_key, "razorpay_key_secret": sb.key_secret,
                "webhook_secret": sb.webhook_secret,
                "status_password": self.config.status_password}

    # --- lifecycle -------------------------------------------------------------------------
    async def start(self) -> None:
        if self.root.exists():
            shutil.rmtree(self.root)
        for sub in ("gateway", "hub", "tty", "logs"):
            (self.root / sub).mkdir(parents=True)
        self._http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10))
        try:
            await self._start_sandbox()
            await self._provision_gateway()
            await self.start_gateway()
            await self._start_boards()
            self._write_hub_toml()
            self.procs["hub"] = Proc("hub", [str(BIN / "edge-hub"), "run", "--config",
                                             str(self.root / "hub.toml")],
                                     self._hub_env(), self.root / "logs" / "hub.log")
            await self.start_hub()
        except BaseException:
            await self.stop()
            raise

    async def stop(self) -> None:
        """Boards off, then hub, gateway and sandbox: each SIGTERM, wait, SIGKILL on timeout."""
        for board in self.boards:
            await board.stop()
        for name in ("hub", "gateway", "sandbox"):
            proc = self.procs.get(name)
            if proc is not None:
                await proc.stop()
        if self._http is not None:
            await self._http.close()
            self._http = None

    def _env(self) -> dict[str, str]:
        """The environment of every child: ours, plus SITE_ENV naming this site's root (so a
        test or an operator can find every process of a site: /proc/<pid>/environ)."""
        return {**os.environ, SITE_ENV: str(self.root)}

    # --- the sandbox -----------------------------------------------------------------------
    async def _start_sandbox(self) -> None:
        c = self.config
        argv = [str(BIN / "cloud-gateway"), "sandbox", "--port", str(self.sb_port),
                "--webhook-url", f"{self.gateway_url}/webhooks/razorpay",
                "--qr-min-lead", str(c.qr_min_lead_s), "--log-level", c.log_level]
        if c.auto_pay_after_s is not None:
            argv += ["--auto-pay-after", str(c.auto_pay_after_s)]
        if c.sandbox_faults:
            argv += ["--faults", json.dumps(dict(c.sandbox_faults))]
        proc = Proc("sandbox", argv, self._env(), self.root / "logs" / "sandbox.log")
        self.procs["sandbox"] = proc
        await proc.start()
        await until("the sandbox listening", lambda: self._ok(f"{self.sandbox_url}/_sim/config"),
                    30, errors=HTTP_ERRORS, alive=proc)

    async def sandbox(self, method: str, path: str, body: Any = None) -> Any:
        """Call a /_sim route; raises ``ProcError`` with the answer on a non-2xx."""
        async with self.http.request(method, f"{self.sandbox_url}{path}", json=body) as r:
            data = await r.json(content_type=None)
            if r.status >= 300:
                raise ProcError(f"sandbox {method} {path}: {r.status} {data}")
            return data

    async def sim_pay(self, qr_id: str, **body: Any) -> dict[str, Any]:
        """The customer pays the QR (``amount``, ``times``, ``webhooks`` as /_sim/qr/pay takes)."""
        return dict(await self.sandbox("POST", f"/_sim/qr/{qr_id}/pay", body))

    async def ledger(self) -> dict[str, Any]:
        """The sandbox's payments and refunds (what Razorpay actually holds)."""
        return dict(await self.sandbox("GET", "/_sim/ledger"))

    # --- the gateway -----------------------------------------------------------------------
    def _gateway_env(self) -> dict[str, str]:
        from cloud_gateway.sandbox import SandboxConfig

        sb = SandboxConfig()
        env = {**self._env(), "GATEWAY_PORT": str(self.gw_port),
               "GATEWAY_DATA_DIR": str(self.root / "gateway"),
               "GATEWAY_LOG_LEVEL": self.config.log_level,
               "GATEWAY_RAZORPAY_BASE_URL": self.sandbox_url,
               "GATEWAY_RAZORPAY_KEY_ID": sb.key_id,
               "GATEWAY_RAZORPAY_KEY_SECRET": sb.key_secret,
               "GATEWAY_WEBHOOK_SECRET": sb.webhook_secret,
               "GATEWAY_TOKEN_KEY": self.token_key}
        for name, value in self.config.gateway.items():
            env[f"GATEWAY_{name.upper()}"] = str(value)
        return env

    async def _admin(self, *args: str) -> str:
        p = await asyncio.create_subprocess_exec(
            str(BIN / "cloud-gateway"), *args, env=self._gateway_env(),
            stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE)
        out, err = await p.communicate()
        if p.returncode != 0:
            raise ProcError(f"cloud-gateway {args[0]} {args[1]}: {err.decode().strip()}")
        return out.decode()

    async def _provision_gateway(self) -> None:
        out = await self._admin("hubs", "add", self.config.hub_id, "--site", self.config.site)
        # "hub <id> added; its secret (shown once): <secret>"
        self.hub_secret = out.strip().rsplit(":", 1)[1].strip()
        await self._admin("catalog", "load", str(self.config.catalog))
        self.procs["gateway"] = Proc("gateway", [str(BIN / "cloud-gateway"), "serve"],
                                     self._gateway_env(), self.root / "logs" / "gateway.log")

    async def start_gateway(self) -> None:
        proc = self.procs["gateway"]
        await proc.start()
        await until("the gateway ready", lambda: self._ok(f"{self.gateway_url}/readyz"), 30,
                    errors=HTTP_ERRORS, alive=proc)

    async def stop_gateway(self) -> None:
        await self.procs["gateway"].stop()

    async def kill_gateway(self) -> None:
        await self.procs["gateway"].kill()

    def gateway_query(self, sql: str, args: tuple[Any, ...] = ()) -> list[sqlite3.Row]:
        """Read the gateway's database (read-only; WAL lets it run beside the gateway)."""
        return _query(self.gateway_db_path, sql, args)

    # --- the hub ---------------------------------------------------------------------------
    def _hub_env(self) -> dict[str, str]:
        return {**self._env(), "EDGE_HUB_SECRET": self.hub_secret,
                "EDGE_HUB_MASTER_KEY": self.config.master_key.hex()}

    def _write_hub_toml(self) -> None:
        c = self.config
        sections: dict[str, dict[str, Any]] = {
            "hub": {"id": c.hub_id, "data_dir": str(self.root / "hub")},
            "gateway": {"url": self.gateway_url},
            "limits": {},
            "status": {"enabled": c.status_port is not None},
            "log": {"level": c.log_level},
        }
        for name, values in HUB_DEFAULTS.items():
            sections.setdefault(name, {}).update(values)
        for name, values in c.hub.items():
            sections.setdefault(name, {}).update(values)
        if c.status_port is not None:
            sections["status"].update(host="127.0.0.1", port=c.status_port)
        text = "\n".join(_toml_table(n, v) for n, v in sections.items())
        text += "\n" + _toml_table("[boards]", {"port": str(self.root / "tty" / "board-*")})
        if c.status_port is not None:
            from edge_hub.status.auth import hash_password

            text += "\n" + _toml_table("[status.users]", {
                "name": c.status_user, "password_hash": hash_password(c.status_password)})
        (self.root / "hub.toml").write_text(text)

    async def start_hub(self) -> None:
        """Start the hub and wait until every running board has said HELLO to it again."""
        await self.procs["hub"].start()
        await self.wait_boards_connected(30)

    async def stop_hub(self) -> None:
        await self.procs["hub"].stop()

    async def kill_hub(self) -> None:
        await self.procs["hub"].kill()

    async def wait_boards_connected(self, timeout_s: float) -> None:
        proc = self.procs["hub"]

        async def connected() -> bool:
            return all(b.connected for b in self.boards)

        await until("every board connected to the hub", connected, timeout_s, alive=proc)

    def outbox_depth(self, lane: str | None = None) -> int:
        """Events in the hub's outbox (of one lane: 'money' or 'telemetry'), not yet
        acknowledged by the gateway."""
        if not self.hub_db_path.exists():
            return 0
        sql, args = "SELECT COUNT(*) AS n FROM outbox", ()
        if lane is not None:
            sql, args = sql + " WHERE lane = ?", (lane,)
        return int(_query(self.hub_db_path, sql, args)[0]["n"])

    # --- the boards ------------------------------------------------------------------------
    async def _start_boards(self) -> None:
        base = self.config.board_behaviour
        for i in range(1, self.config.boards + 1):
            behaviour = dataclasses.replace(base, seed=(base.seed or 0) * 1000 + i)
            board = SimBoard(b"SIMB" + i.to_bytes(8, "big"), self.config.master_key,
                             name=f"board-{i:02d}",
                             link_path=self.root / "tty" / f"board-{i:02d}",
                             behaviour=behaviour)
            await board.start()
            self.boards.append(board)

    async def _ok(self, url: str) -> bool:
        async with self.http.get(url) as r:
            return r.status == 200


def _query(path: Path, sql: str, args: tuple[Any, ...] = ()) -> list[sqlite3.Row]:
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)
    try:
        db.row_factory = sqlite3.Row
        return list(db.execute(sql, args))
    finally:
        db.close()
