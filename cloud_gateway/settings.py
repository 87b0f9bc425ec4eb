"""Gateway settings: one declarative table, loaded from TOML plus the environment.

Other modules call `load_settings(path, environ, credentials_dir)` (the CLI does) or build
`Settings(...)` directly (tests), and read the frozen `Settings` fields. `SETTINGS` is the table
that the docs and `cloud-gateway` help are generated from; a test checks every entry has help.

Rules:
* every setting has a default and help text, and is overridable by ``GATEWAY_<NAME>``;
* secrets (`secret=True`) are read only from the environment or from a file named like the
  setting in ``$CREDENTIALS_DIRECTORY`` (systemd ``LoadCredential=``), never from the TOML file;
  they are held in `Secret`, whose ``repr``/``str`` never shows the value;
* a broken TOML file, an unknown key or a value of the wrong type is a `SettingsError` naming the
  file, the line (for TOML syntax) and the key.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

ENV_PREFIX: Final = "GATEWAY_"


class SettingsError(ValueError):
    """A setting is missing, unknown, malformed or of the wrong type."""


class Secret:
    """A secret string that never shows itself in repr, str, logs or tracebacks."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __bool__(self) -> bool:
        return bool(self._value)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)

    def __repr__(self) -> str:
        return "Secret('***')" if self._value else "Secret('')"

    __str__ = __repr__


def setting(default: Any, help: str, *, secret: bool = False) -> Any:
    """One row of the declarative table: a dataclass field carrying its help text."""
    if secret:
        return dataclasses.field(default=Secret(default), metadata={"help": help, "secret": True})
    return dataclasses.field(default=default, metadata={"help": help, "secret": False})


@dataclass(frozen=True)
class Settings:
    """The declarative table: every field is a setting, with its default and help."""

    host: str = setting("127.0.0.1", "Address the HTTP server binds to.")
    port: int = setting(8080, "TCP port of the HTTP server.")
    data_dir: str = setting("./gateway-data",
                            "Directory holding the SQLite database (systemd: $STATE_DIRECTORY).")
    currency: str = setting("INR", "ISO currency of every price and payment.")
    log_level: str = setting("INFO", "Python logging level (DEBUG, INFO, WARNING, ERROR).")
    log_json: bool = setting(True, "Write one JSON object per log line (false: plain text).")
    razorpay_key_id: str = setting("", "Razorpay API key id (rzp_live_... or rzp_test_...).")
    razorpay_key_secret: Secret = setting(  # noqa: RUF009 (Secret is immutable)
        "", "Razorpay API key secret.", secret=True)
    razorpay_base_url: str = setting(
        "", "Razorpay API base URL, scheme://host:port without /v1; empty = real Razorpay. "
        "Point it at `cloud-gateway sandbox` for offline use.")
    razorpay_timeout_s: float = setting(5.0, "Timeout of every Razorpay API call, in seconds.")
    razorpay_threads: int = setting(
        4, "SDK threads for the synchronous Razorpay SDK, per worker process (or in the "
        "gateway process when razorpay_processes is 0).")
    razorpay_processes: int = setting(
        2, "Worker processes running the Razorpay SDK (calls in flight: processes x threads); "
        "keeps the SDK's CPU off the event loop's GIL. 0: threads in the gateway process.")
    webhook_secret: Secret = setting(  # noqa: RUF009
        "", "Razorpay webhook secret (Dashboard, per webhook).", secret=True)
    webhook_previous_secret: Secret = setting(  # noqa: RUF009
        "", "Previous webhook secret, still accepted after a rotation (24 h retry window).",
        secret=True)
    token_key: Secret = setting(  # noqa: RUF009
        "", "HMAC key signing hub JWTs (at least 32 characters).", secret=True)
    token_audience: str = setting("upi-vend-hub", "JWT audience (aud) of hub tokens.")
    token_ttl_s: int = setting(900, "Lifetime of a hub token, in seconds.")
    token_leeway_s: int = setting(
        300, "Clock skew tolerated when checking a token's exp/iat (hubs without an RTC).")
    qr_ttl_s: int = setting(
        900, "Seconds from pay to the UPI QR's close_by (Razorpay: 2 min .. 2 h, single use).")
    vend_deadline_s: int = setting(
        120, "Seconds after payment within which the hub may still approve the vend (rule 7).")
    unknown_outcome_deadline_s: int = setting(
        86400, "Seconds a paid order may keep an unknown vend outcome before it is flagged.")
    max_quantity: int = setting(5, "Largest quantity one order may ask for.")
    max_request_bytes: int = setting(256 * 1024, "Largest request body accepted, in bytes.")
    rate_limit_per_s: float = setting(50.0, "Sustained requests per second allowed per hub.")
    rate_limit_burst: int = setting(100, "Requests a hub may burst above its sustained rate.")
    auth_rate_limit_per_s: float = setting(
        2.0, "Token requests per second allowed per hub id (burst: 10).")
    long_poll_max_s: float = setting(30.0, "Longest wait of GET /hub/commands, in seconds.")
    ws_heartbeat_s: float = setting(20.0, "Idle seconds between WebSocket pings to a hub.")
    commit_max_batch: int = setting(256, "Most write units grouped into one SQLite commit.")
    checkpoint_interval_s: float = setting(
        5.0, "Seconds between background WAL checkpoints (kept out of the commit path).")
    reconcile_interval_s: float = setting(15.0, "Seconds between reconciler passes.")
    retention_days: int = setting(
        30, "Days hub event ids and acknowledged commands are kept (idempotency window); "
        "orders, payments, refunds and webhooks are never deleted.")

    @property
    def db_path(self) -> Path:
        return Path(self.data_dir) / "gateway.sqlite3"

    def check_serving(self) -> None:
        """What `serve` needs beyond the defaults; raises `SettingsError` naming what is missing."""
        missing = [s.env for s in SETTINGS
                   if s.name in _REQUIRED_TO_SERVE and not getattr(self, s.name)]
        if missing:
            raise SettingsError("missing settings: " + ", ".join(missing)
                                + " (secrets come from the environment or $CREDENTIALS_DIRECTORY)")
        if len(self.token_key.reveal()) < 32:
            raise SettingsError(f"{ENV_PREFIX}TOKEN_KEY must be at least 32 characters")


_REQUIRED_TO_SERVE: Final = frozenset(
    {"razorpay_key_id", "razorpay_key_secret", "webhook_secret", "token_key"})


@dataclass(frozen=True)
class Spec:
    """A read-only view of one row of the table (for docs, help and loading)."""

    name: str
    type: type
    default: Any
    help: str
    secret: bool

    @property
    def env(self) -> str:
        return ENV_PREFIX + self.name.upper()


_TYPES: Final = {"str": str, "int": int, "float": float, "bool": bool, "Secret": str}

SETTINGS: Final[tuple[Spec, ...]] = tuple(
    Spec(
        name=f.name,
        type=_TYPES[f.type if isinstance(f.type, str) else f.type.__name__],
        default=f.default.reveal() if isinstance(f.default, Secret) else f.default,
        help=str(f.metadata.get("help", "")),
        secret=bool(f.metadata.get("secret")),
    )
    for f in dataclasses.fields(Settings)
)
_BY_NAME: Final = {s.name: s for s in SETTINGS}


def _convert(spec: Spec, value: object, where: str, from_env: bool = False) -> object:
    """Parse one environment string, or check the type of one TOML value."""
    if from_env and isinstance(value, str) and spec.type is not str:
        text = value.strip()
        try:
            if spec.type is bool:
                if text.lower() not in {"1", "0", "true", "false", "yes", "no", "on", "off"}:
                    raise ValueError(text)
                return text.lower() in {"1", "true", "yes", "on"}
            return spec.type(text)
        except ValueError:
            raise SettingsError(f"{where}: {spec.name} must be {spec.type.__name__}, "
                                f"got {value!r}") from None
    ok = isinstance(value, spec.type) and not (spec.type is not bool and isinstance(value, bool))
    if spec.type is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if not ok:
        raise SettingsError(f"{where}: {spec.name} must be {spec.type.__name__}, "
                            f"got {type(value).__name__}")
    return value


def read_toml(path: Path) -> dict[str, object]:
    try:
        with path.open("rb") as fh:
            data = tomllib.load(fh)
    except FileNotFoundError:
        raise SettingsError(f"{path}: config file not found") from None
    except tomllib.TOMLDecodeError as exc:  # message carries "(at line N, column M)"
        raise SettingsError(f"{path}: invalid TOML: {exc}") from None
    table = data.get("gateway", data)
    if not isinstance(table, dict):
        raise SettingsError(f"{path}: [gateway] must be a table")
    return table


def load_settings(path: Path | None = None, environ: Mapping[str, str] | None = None,
                  credentials_dir: Path | None = None) -> Settings:
    """TOML (optional) < environment < credential files for secrets."""
    env = os.environ if environ is None else environ
    if credentials_dir is None and env.get("CREDENTIALS_DIRECTORY"):
        credentials_dir = Path(env["CREDENTIALS_DIRECTORY"])
    values: dict[str, object] = {}
    if path is not None:
        for key, raw in read_toml(path).items():
            spec = _BY_NAME.get(key)
            if spec is None:
                raise SettingsError(f"{path}: unknown setting {key!r}")
            if spec.secret:
                raise SettingsError(f"{path}: {key} is a secret and is not read from the TOML "
                                    f"file; set {spec.env} or a credential file named {key}")
            values[key] = _convert(spec, raw, str(path))
    for spec in SETTINGS:
        if spec.env in env:
            values[spec.name] = _convert(spec, env[spec.env], spec.env, from_env=True)
        if spec.secret and credentials_dir is not None:
            cred = credentials_dir / spec.name
            if cred.is_file():
                values[spec.name] = cred.read_text(encoding="utf-8").strip()
    for spec in SETTINGS:
        if spec.secret and spec.name in values:
            values[spec.name] = Secret(str(values[spec.name]))
    return Settings(**values)  # type: ignore[arg-type]


__all__ = ["SETTINGS", "Secret", "Settings", "SettingsError", "Spec", "load_settings"]
