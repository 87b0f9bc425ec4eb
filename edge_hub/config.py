"""The hub's configuration: one declarative table (the dataclass fields below, each with its
default and help text), loaded from hub.toml plus the environment into frozen dataclasses.

Secrets (the hub's gateway secret and the board master key) never come from the TOML file: only
from the environment or from systemd credential files in ``$CREDENTIALS_DIRECTORY``. They are kept
out of every ``repr`` so a logged config never carries them.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

ENV_PREFIX: Final = "EDGE_HUB_"
SECRET_ENV: Final = "EDGE_HUB_SECRET"
MASTER_KEY_ENV: Final = "EDGE_HUB_MASTER_KEY"
SECRET_CREDENTIAL: Final = "hub-secret"
MASTER_KEY_CREDENTIAL: Final = "board-master-key"
MASTER_KEY_BYTES: Final = 32


class ConfigError(Exception):
    """A broken configuration: names the file, the key and the problem (never a secret value)."""

    def __init__(self, source: str, key: str, problem: str) -> None:
        super().__init__(f"{source}: {key}: {problem}")
        self.source = source
        self.key = key
        self.problem = problem


def setting(default: Any, help: str, *, choices: tuple[str, ...] = (), minimum: float | None = None,
            env: str | None = None) -> Any:
    """One row of the settings table."""
    meta = {"help": help, "choices": choices, "minimum": minimum, "env": env}
    return field(default=default, metadata=meta)


def required(help: str, *, env: str | None = None) -> Any:
    return field(metadata={"help": help, "choices": (), "minimum": None, "env": env,
                           "required": True})


@dataclass(frozen=True, kw_only=True)
class HubSettings:
    id: str = required("This hub's id, as registered with the gateway.")
    data_dir: Path = setting(  # noqa: RUF009 - setting() returns a dataclasses.field
        Path("/var/lib/edge-hub"),
        "Directory for the SQLite database. Under systemd, $STATE_DIRECTORY wins when the "
        "key is not set in the file.")


@dataclass(frozen=True, kw_only=True)
class GatewaySettings:
    url: str = required("Base URL of the cloud gateway, e.g. https://pay.example.com.")
    request_timeout_s: float = setting(10.0, "Timeout of one gateway call other than an order "
                                             "(events, token, registration, acks).", minimum=0.05)
    push: str = setting("auto", "Push channel: 'auto' (WebSocket, falling back to long-poll), "
                        "'websocket' or 'long-poll'.", choices=("auto", "websocket", "long-poll"))
    long_poll_wait_s: float = setting(25.0, "How long one long-poll request waits on the gateway.",
                                      minimum=0.0)
    token_refresh_margin_s: float = setting(60.0, "Refresh the access token this long before "
                                                  "it expires.", minimum=0.0)
    backoff_initial_s: float = setting(0.5, "First retry delay after a failed gateway call; "
                                            "doubles with jitter up to backoff_max_s.",
                                       minimum=0.001)
    backoff_max_s: float = setting(30.0, "Longest retry delay for gateway calls.", minimum=0.001)
    ws_heartbeat_s: float = setting(20.0, "WebSocket ping interval; a silent socket is dropped "
                                          "and reopened.", minimum=0.1)


@dataclass(frozen=True, kw_only=True)
class LimitsSettings:
    order_timeout_s: float = setting(2.0, "Longest a board waits for its QR: past it the board "
                                          "gets ORDER_REJECTED(OFFLINE).", minimum=0.05)
    vend_start_grace_s: float = setting(5.0, "After the vend deadline plus this, a vend approval "
                                             "that never started is checked with a STATUS request.",
                                        minimum=0.0)
    vend_result_timeout_s: float = setting(120.0, "Longest a started vend may run before the "
                                                  "board is asked for its status.", minimum=0.1)
    vend_unknown_wait_s: float = setting(60.0, "How long the hub waits for a board's MAC'd STATUS "
                                               "about an interrupted vend before reporting the "
                                               "outcome as unknown.", minimum=0.1)
    status_retry_s: float = setting(5.0, "Interval between STATUS requests while an outcome is "
                                         "being asked for.", minimum=0.05)
    heartbeat_s: int = setting(30, "Heartbeat interval told to boards in HELLO_ACK.", minimum=1)
    outbox_max_rows: int = setting(500_000, "Outbox row limit; over it telemetry is dropped "
                                            "oldest-first and money records stop new orders.",
                                   minimum=10)
    outbox_max_bytes: int = setting(256 * 1024 * 1024, "Outbox size limit in bytes (same "
                                                       "policy as outbox_max_rows).", minimum=1024)
    outbox_max_age_s: float = setting(7 * 24 * 3600.0, "Telemetry older than this is dropped "
                                                       "(counted); money records never.",
                                      minimum=1.0)
    outbox_batch: int = setting(500, "Events per POST /hub/events (at most 500).", minimum=1)
    outbox_pipeline: int = setting(4, "Event batches in flight at once while draining.",
                                   minimum=1)
    telemetry_flush_s: float = setting(1.0, "Telemetry is committed in batches at most this "
                                            "often (fewer SD-card writes).", minimum=0.01)
    min_free_bytes: int = setting(16 * 1024 * 1024, "Below this much free disk in data_dir the "
                                                    "hub stops taking orders.", minimum=0)
    port_retry_initial_s: float = setting(0.5, "First retry delay for a missing or unplugged "
                                               "serial port.", minimum=0.001)
    port_retry_max_s: float = setting(10.0, "Longest retry delay for a serial port.",
                                      minimum=0.001)
    session_retention_s: float = setting(30 * 24 * 3600.0, "Finished vend sessions (and their "
                                         "audit) older than this are deleted, once reported; "
                                         "ones needing attention are kept.", minimum=60.0)
    watchdog_stall_s: float = setting(10.0, "A supervised task that has not reported progress "
                                            "for this long stops the systemd watchdog pings.",
                                      minimum=0.1)


@dataclass(frozen=True, kw_only=True)
class StatusSettingsConfig:
    enabled: bool = setting(True, "Serve the technicians' status page.")
    host: str = setting("127.0.0.1", "Address the status page listens on.")
    port: int = setting(8080, "TCP port of the status page (>= 1024; 0 picks a free port).",
                        minimum=0)
    cookie_secure: bool = setting(False, "Mark the session cookie Secure (set when behind TLS).")
    session_ttl_s: int = setting(8 * 3600, "Technician session lifetime.", minimum=60)


@dataclass(frozen=True, kw_only=True)
class LogSettings:
    level: str = setting("INFO", "Log level of the daemon.",
                         choices=("DEBUG", "INFO", "WARNING", "ERROR"))


@dataclass(frozen=True, kw_only=True)
class PortSettings:
    """One [[boards]] entry: a serial port (a path or a glob) and how to talk on it."""

    port: str = required("Serial device path or glob, e.g. /dev/serial/by-path/*-port0.")
    baud: int = setting(115200, "Baud rate.", minimum=1200)
    addr: int = setting(0, "Board address on a shared bus (1..247), 0 on a point-to-point link.",
                        minimum=0)


@dataclass(frozen=True, kw_only=True)
class UserSettings:
    """One [[status.users]] entry: a technician account for the status page."""

    name: str = required("Login name.")
    password_hash: str = required("scrypt$... hash from `edge-hub hash-password`.")


@dataclass(frozen=True)
class Secrets:
    hub_secret: str = field(repr=False)
    master_key: bytes = field(repr=False)

    def __repr__(self) -> str:
        return "Secrets(<redacted>)"


@dataclass(frozen=True, kw_only=True)
class HubConfig:
    hub: HubSettings
    gateway: GatewaySettings
    limits: LimitsSettings
    status: StatusSettingsConfig
    log: LogSettings
    boards: tuple[PortSettings, ...]
    users: tuple[UserSettings, ...]
    secrets: Secrets
    source: str = "<defaults>"

    @property
    def db_path(self) -> Path:
        return self.hub.data_dir / "hub.db"

    def redacted(self) -> dict[str, Any]:
        """The config as JSON-ready data, secrets removed (support bundles, logs)."""
        out: dict[str, Any] = {}
        for name, _cls in SECTIONS.items():
            out[name] = _to_json(dataclasses.asdict(getattr(self, name)))
        out["boards"] = [_to_json(dataclasses.asdict(b)) for b in self.boards]
        out["status"]["users"] = [{"name": u.name, "password_hash": "<redacted>"}
                                  for u in self.users]
        out["secrets"] = {"hub_secret": "<redacted>", "master_key": "<redacted>"}
        return out


SECTIONS: Final[dict[str, type]] = {
    "hub": HubSettings,
    "gateway": GatewaySettings,
    "limits": LimitsSettings,
    "status": StatusSettingsConfig,
    "log": LogSettings,
}
TABLE_ARRAYS: Final[dict[str, type]] = {"boards": PortSettings, "status.users": UserSettings}


def _to_json(d: dict[str, Any]) -> dict[str, Any]:
    return {k: str(v) if isinstance(v, Path) else v for k, v in d.items()}


def env_name(section: str, name: str) -> str:
    return f"{ENV_PREFIX}{section.upper()}_{name.upper()}"


def all_setting_keys() -> list[str]:
    """Every documented key: 'section.name' and 'boards.port'-style keys of table arrays."""
    keys = [f"{s}.{f.name}" for s, cls in SECTIONS.items() for f in dataclasses.fields(cls)]
    keys += [f"{s}.{f.name}" for s, cls in TABLE_ARRAYS.items() for f in dataclasses.fields(cls)]
    return keys


def _coerce(source: str, key: str, typ: Any, value: Any, meta: Mapping[str, Any],
            from_env: bool) -> Any:
    if isinstance(value, str) and not from_env and typ in (int, float, bool):
        raise ConfigError(source, key, f"expected a {_TYPE_NAMES[typ]}, got a string")
    try:
        if typ is bool:
            if isinstance(value, bool):
                out: Any = value
            elif from_env and value.lower() in ("1", "true", "yes", "on"):
                out = True
            elif from_env and value.lower() in ("0", "false", "no", "off"):
                out = False
            else:
                raise ValueError("expected true or false")
        elif typ is int:
            if isinstance(value, bool) or not isinstance(value, int | str):
                raise ValueError(f"expected an integer, got {type(value).__name__}")
            out = int(value)  # ValueError names the bad text
        elif typ is float:
            if isinstance(value, bool) or not isinstance(value, int | float | str):
                raise ValueError(f"expected a number, got {type(value).__name__}")
            out = float(value)
        elif typ is Path:
            if not isinstance(value, str) or not value:
                raise ValueError("expected a non-empty path string")
            out = Path(value)
        elif typ is str:
            if not isinstance(value, str):
                raise ValueError(f"expected a string, got {type(value).__name__}")
            out = value
        else:  # pragma: no cover - the table only uses the types above
            raise ValueError(f"unsupported setting type {typ}")
    except ValueError as e:
        raise ConfigError(source, key, str(e)) from None
    if meta["choices"] and out not in meta["choices"]:
        raise ConfigError(source, key, f"must be one of {', '.join(meta['choices'])}, got {out!r}")
    if meta["minimum"] is not None and out < meta["minimum"]:
        raise ConfigError(source, key, f"must be >= {meta['minimum']}, got {out!r}")
    return out


_TYPE_NAMES: Final = {int: "integer", float: "number", bool: "boolean (true/false)"}


def _build(cls: type, section: str, raw: Mapping[str, Any], source: str,
           env: Mapping[str, str] | None) -> Any:
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(raw) - names)
    if unknown:
        raise ConfigError(source, f"{section}.{unknown[0]}", "unknown setting")
    kwargs: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        key = f"{section}.{f.name}"
        value: Any = raw.get(f.name, dataclasses.MISSING)
        where, from_env = source, False
        if env is not None and env_name(section, f.name) in env:
            value = env[env_name(section, f.name)]
            where, from_env = f"${env_name(section, f.name)}", True
        if value is dataclasses.MISSING:
            if f.metadata.get("required"):
                raise ConfigError(source, key, "is required")
            continue
        kwargs[f.name] = _coerce(where, key, hints[f.name], value, f.metadata, from_env)
    return cls(**kwargs)


def _read_secret(env: Mapping[str, str], env_key: str, credential: str, source: str) -> str:
    if env.get(env_key):
        return env[env_key].strip()
    creds = env.get("CREDENTIALS_DIRECTORY")
    if creds:
        path = Path(creds) / credential
        try:
            return path.read_text(encoding="utf-8").strip()
        except FileNotFoundError:
            pass
        except OSError as e:
            raise ConfigError(str(path), credential,
                              f"cannot read credential: {e.strerror}") from None
    raise ConfigError(source, credential,
                      f"secret missing: set ${env_key} or the systemd credential '{credential}'")


def load_secrets(env: Mapping[str, str], source: str) -> Secrets:
    secret = _read_secret(env, SECRET_ENV, SECRET_CREDENTIAL, source)
    key_hex = _read_secret(env, MASTER_KEY_ENV, MASTER_KEY_CREDENTIAL, source)
    try:
        key = bytes.fromhex(key_hex)
    except ValueError:
        raise ConfigError(source, MASTER_KEY_CREDENTIAL, "board master key is not hex") from None
    if len(key) != MASTER_KEY_BYTES:
        raise ConfigError(source, MASTER_KEY_CREDENTIAL,
                          f"board master key must be {MASTER_KEY_BYTES} bytes "
                          f"({2 * MASTER_KEY_BYTES} hex digits), got {len(key)}")
    return Secrets(hub_secret=secret, master_key=key)


def parse_config(data: Mapping[str, Any], *, source: str = "<config>",
                 env: Mapping[str, str] | None = None) -> HubConfig:
    """Validate raw TOML data (+ environment overrides) into a HubConfig, or raise ConfigError."""
    env = dict(os.environ) if env is None else env
    data = dict(data)
    unknown = sorted(set(data) - set(SECTIONS) - {"boards"})
    if unknown:
        raise ConfigError(source, unknown[0], "unknown section")
    sections: dict[str, Any] = {}
    users_raw: Any = []
    for name, cls in SECTIONS.items():
        raw = data.get(name, {})
        if not isinstance(raw, dict):
            raise ConfigError(source, name, "must be a table")
        raw = dict(raw)
        if name == "status":
            users_raw = raw.pop("users", [])
        if name == "hub" and "data_dir" not in raw and env.get("STATE_DIRECTORY"):
            raw["data_dir"] = env["STATE_DIRECTORY"].split(":")[0]
        sections[name] = _build(cls, name, raw, source, env)
    boards_raw = data.get("boards", [])
    if not isinstance(boards_raw, list) or not boards_raw:
        raise ConfigError(source, "boards", "at least one [[boards]] entry with a port is required")
    boards: list[PortSettings] = []
    for i, raw in enumerate(boards_raw):
        if not isinstance(raw, dict):
            raise ConfigError(source, f"boards[{i}]", "must be a table")
        b = _build(PortSettings, f"boards[{i}]", raw, source, None)
        if b.addr > 247:
            raise ConfigError(source, f"boards[{i}].addr", f"must be 0..247, got {b.addr}")
        boards.append(b)
    if not isinstance(users_raw, list):
        raise ConfigError(source, "status.users", "must be an array of tables")
    users: list[UserSettings] = []
    for i, raw in enumerate(users_raw):
        if not isinstance(raw, dict):
            raise ConfigError(source, f"status.users[{i}]", "must be a table")
        u = _build(UserSettings, f"status.users[{i}]", raw, source, None)
        if not u.password_hash.startswith("scrypt$"):
            raise ConfigError(source, f"status.users[{i}].password_hash",
                              "must be a scrypt$... hash from `edge-hub hash-password`")
        users.append(u)
    url = sections["gateway"].url
    if not url.startswith(("http://", "https://")):
        raise ConfigError(source, "gateway.url",
                          f"must start with http:// or https://, got {url!r}")
    if sections["limits"].outbox_batch > 500:
        raise ConfigError(source, "limits.outbox_batch", "must be <= 500 (the gateway's limit)")
    return HubConfig(**sections, boards=tuple(boards), users=tuple(users),
                     secrets=load_secrets(env, source), source=source)


def load_config(path: str | Path, env: Mapping[str, str] | None = None) -> HubConfig:
    """Read hub.toml; every problem is a ConfigError naming the file, key and problem."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as e:
        raise ConfigError(str(p), "-", f"cannot read config file: {e.strerror}") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(str(p), "-", f"not valid TOML: {e}") from None
    return parse_config(data, source=str(p), env=env)
