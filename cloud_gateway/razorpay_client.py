"""The gateway's only door to Razorpay: the official SDK, off the event loop, errors in three kinds.

The `razorpay` SDK is synchronous, has no default timeout, can retry POSTs when asked to, and has
argument traps (`payment.refund` defined twice, `payment.capture` writing into a shared default
dict). This adapter runs every call in a small dedicated thread pool, gives each worker thread its
own `razorpay.Client` whose `requests.Session` ignores proxy environment variables and always has a
timeout, never enables the SDK's retries, builds fresh request and header dicts per call, and maps
every failure to `RazorpayError` with one of three kinds:

* ``refused``  - Razorpay answered with a business or validation error (`BadRequestError`,
  authentication failures included). Retrying the same call gives the same answer.
* ``not_sent`` - the request never reached Razorpay (connect timeout, connection refused, DNS).
  Safe to retry.
* ``unknown``  - the request may have been applied (5xx, `GatewayError`, `ServerError`, read
  timeout, reset connection, non-JSON body, an idempotency key still in flight). Reconcile
  (fetch / list) before deciding; refunds may be retried with the same idempotency key.
"""

from __future__ import annotations

import asyncio
import logging
import re
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Literal

import razorpay  # type: ignore[import-untyped]
import requests
from razorpay.errors import (  # type: ignore[import-untyped]
    BadRequestError,
    GatewayError,
    ServerError,
)
from urllib3.exceptions import NewConnectionError

__all__ = ["ErrorKind", "RazorpayClient", "RazorpayError", "RazorpaySettings"]

log = logging.getLogger(__name__)

ErrorKind = Literal["refused", "not_sent", "unknown"]

IDEMPOTENCY_HEADER = "X-Refund-Idempotency"
_IDEMPOTENCY_KEY_RE = re.compile(r"[A-Za-z0-9_-]{10,}")
# Razorpay reports a refund whose idempotency key is still being processed as HTTP 409, but the SDK
# drops the status; the description is all that is left. Its outcome is not known yet.
_IN_FLIGHT_MARKER = "already being processed"


class RazorpayError(Exception):
    """One SDK failure, classified. `message` never contains credentials."""

    def __init__(self, kind: ErrorKind, message: str, *, operation: str = "") -> None:
        prefix = f"{operation}: " if operation else ""
        super().__init__(f"{prefix}{kind}: {message}")
        self.kind: ErrorKind = kind
        self.message = message
        self.operation = operation


@dataclass(frozen=True)
class RazorpaySettings:
    key_id: str
    key_secret: str
    base_url: str | None = None  # None = real Razorpay; else scheme://host:port, no /v1
    timeout_s: float = 5.0
    threads: int = 4

    def __post_init__(self) -> None:
        if not self.key_id or not self.key_secret:
            raise ValueError("Razorpay key_id and key_secret must both be set")
        if self.base_url is not None and (
            self.base_url.endswith("/") or self.base_url.endswith("/v1")
        ):
            raise ValueError(
                f"base_url must be scheme://host:port without a trailing slash or /v1, "
                f"got {self.base_url!r}"
            )
        if self.timeout_s <= 0:
            raise ValueError(f"timeout_s must be positive, got {self.timeout_s}")
        if self.threads < 1:
            raise ValueError(f"threads must be at least 1, got {self.threads}")

    def __repr__(self) -> str:  # keep the secret out of logs and tracebacks
        return (
            f"RazorpaySettings(key_id={self.key_id!r}, key_secret='***', "
            f"base_url={self.base_url!r}, timeout_s={self.timeout_s}, threads={self.threads})"
        )


class _TimeoutSession(requests.Session):
    """A Session that never reads proxy settings from the environment and always times out."""

    def __init__(self, timeout_s: float) -> None:
        super().__init__()
        self.trust_env = False
        self._default_timeout = timeout_s

    def request(self, method: Any, url: Any, *args: Any, **kwargs: Any) -> Any:
        if kwargs.get("timeout") is None:
            kwargs["timeout"] = self._default_timeout
        return super().request(method, url, *args, **kwargs)


class _SdkClient(razorpay.Client):  # type: ignore[misc]
    """The SDK's Client, minus one cost: it re-reads its package metadata (importlib.metadata)
    for the User-Agent on every request, about a quarter of a call's CPU time. Read it once."""

    _cached_version: str | None = None

    def _get_version(self) -> str:
        if _SdkClient._cached_version is None:
            _SdkClient._cached_version = str(super()._get_version())
        return _SdkClient._cached_version


def _check_amount(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int of paise, got {type(value).__name__}")
    if value < 1:
        raise ValueError(f"{name} must be at least 1 paise, got {value}")
    return value


def _check_id(name: str, value: object) -> str:
    if not isinstance(value, str) or not re.fullmatch(r"[A-Za-z0-9_]+", value):
        raise ValueError(f"{name} must be a Razorpay id, got {value!r}")
    return value


def _classify(exc: BaseException) -> tuple[ErrorKind, str] | None:
    """Map an SDK/requests exception to (kind, message); None for exceptions we do not own."""
    if isinstance(exc, BadRequestError):
        message = str(exc) or "bad request"
        if _IN_FLIGHT_MARKER in message:
            return "unknown", message
        return "refused", message
    if isinstance(exc, GatewayError | ServerError):
        return "unknown", f"Razorpay server error: {exc or 'no description'}"
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return "not_sent", "connect timeout"
    if isinstance(exc, requests.exceptions.ReadTimeout):
        return "unknown", "read timeout (the request may have been applied)"
    if isinstance(exc, requests.exceptions.JSONDecodeError):
        return "unknown", "response body was not JSON"
    if isinstance(exc, requests.exceptions.ConnectionError):
        reason = getattr(exc.args[0], "reason", None) if exc.args else None
        if isinstance(reason, NewConnectionError):
            return "not_sent", "could not connect"
        return "unknown", "connection broken after the request was sent"
    if isinstance(exc, requests.exceptions.RequestException):
        return "unknown", f"request failed: {type(exc).__name__}"
    return None


class RazorpayClient:
    """Async facade over the official SDK. Create once, `await aclose()` at shutdown."""

    def __init__(self, settings: RazorpaySettings) -> None:
        self._settings = settings
        self._executor = ThreadPoolExecutor(
            max_workers=settings.threads, thread_name_prefix="razorpay"
        )
        self._local = threading.local()
        self._sessions: list[requests.Session] = []
        self._sessions_lock = threading.Lock()
        self._closed = False

    # --- plumbing ------------------------------------------------------------------------------
    def _client(self) -> razorpay.Client:
        client: razorpay.Client | None = getattr(self._local, "client", None)
        if client is None:
            session = _TimeoutSession(self._settings.timeout_s)
            with self._sessions_lock:
                self._sessions.append(session)
            options: dict[str, Any] = {}
            if self._settings.base_url is not None:
                options["base_url"] = self._settings.base_url
            client = _SdkClient(
                session=session,
                auth=(self._settings.key_id, self._settings.key_secret),
                **options,
            )
            client.enable_retry(False)
            self._local.client = client
        return client

    async def _call(self, operation: str, fn: Callable[[razorpay.Client], Any]) -> Any:
        if self._closed:
            raise RuntimeError("RazorpayClient is closed")
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._executor, lambda: fn(self._client()))
        except Exception as exc:
            classified = _classify(exc)
            if classified is None:
                raise
            kind, message = classified
            log.warning("razorpay %s failed (%s): %s", operation, kind, message)
            raise RazorpayError(kind, message, operation=operation) from exc

    @staticmethod
    def _entity(operation: str, result: Any) -> dict[str, Any]:
        if not isinstance(result, dict):
            raise RazorpayError(
                "unknown", f"expected a JSON object, got {type(result).__name__}",
                operation=operation,
            )
        return result

    @classmethod
    def _items(cls, operation: str, result: Any) -> list[dict[str, Any]]:
        body = cls._entity(operation, result)
        items = body.get("items")
        if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
            raise RazorpayError("unknown", "collection without an items list", operation=operation)
        return items

    # --- QR codes ------------------------------------------------------------------------------
    async def create_upi_qr(
        self, *, amount: int, close_by: int, notes: dict[str, str], description: str
    ) -> dict[str, Any]:
        """Create a single-use, fixed-amount UPI QR; returns Razorpay's QR entity."""
        _check_amount("amount", amount)
        if isinstance(close_by, bool) or not isinstance(close_by, int):
            raise TypeError("close_by must be an int of Unix seconds")
        data = {
            "type": "upi_qr",
            "usage": "single_use",
            "fixed_amount": True,
            "payment_amount": amount,
            "description": description,
            "close_by": close_by,
            "notes": dict(notes),
        }
        result = await self._call("qrcode.create", lambda c: c.qrcode.create(data))
        return self._entity("qrcode.create", result)

    async def fetch_qr(self, qr_id: str) -> dict[str, Any]:
        _check_id("qr_id", qr_id)
        result = await self._call("qrcode.fetch", lambda c: c.qrcode.fetch(qr_id, {}))
        return self._entity("qrcode.fetch", result)

    async def qr_payments(self, qr_id: str) -> list[dict[str, Any]]:
        _check_id("qr_id", qr_id)
        result = await self._call(
            "qrcode.fetch_all_payments",
            lambda c: c.qrcode.fetch_all_payments(qr_id, {"count": 100}),
        )
        return self._items("qrcode.fetch_all_payments", result)

    async def close_qr(self, qr_id: str) -> dict[str, Any]:
        _check_id("qr_id", qr_id)
        result = await self._call("qrcode.close", lambda c: c.qrcode.close(qr_id))
        return self._entity("qrcode.close", result)

    # --- payments and refunds ------------------------------------------------------------------
    async def fetch_payment(self, payment_id: str) -> dict[str, Any]:
        _check_id("payment_id", payment_id)
        result = await self._call("payment.fetch", lambda c: c.payment.fetch(payment_id, {}))
        return self._entity("payment.fetch", result)

    async def refund(
        self,
        payment_id: str,
        *,
        amount: int,
        idempotency_key: str,
        notes: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        """Refund `amount` paise of a captured payment, idempotent on `idempotency_key`.

        The key must come from our own payment/refund record so that a retry repeats it.
        """
        _check_id("payment_id", payment_id)
        _check_amount("amount", amount)
        if not isinstance(idempotency_key, str) or not _IDEMPOTENCY_KEY_RE.fullmatch(
            idempotency_key
        ):
            raise ValueError(
                "idempotency_key must be at least 10 letters, digits, '-' or '_'"
            )

        def call(c: razorpay.Client) -> Any:
            body: dict[str, Any] = {"amount": amount}
            if notes:
                body["notes"] = dict(notes)
            return c.payment.refund(
                payment_id, body, headers={IDEMPOTENCY_HEADER: idempotency_key}
            )

        result = await self._call("payment.refund", call)
        return self._entity("payment.refund", result)

    async def payment_refunds(self, payment_id: str) -> list[dict[str, Any]]:
        _check_id("payment_id", payment_id)
        result = await self._call(
            "payment.fetch_multiple_refund",
            lambda c: c.payment.fetch_multiple_refund(payment_id, {"count": 100}),
        )
        return self._items("payment.fetch_multiple_refund", result)

    # --- lifecycle -----------------------------------------------------------------------------
    async def aclose(self) -> None:
        """Wait for calls in flight, then close every worker's HTTP session."""
        if self._closed:
            return
        self._closed = True
        await asyncio.to_thread(self._executor.shutdown, wait=True)
        with self._sessions_lock:
            sessions, self._sessions = self._sessions, []
        for session in sessions:
            session.close()
