"""Refund idempotency keys: replay the first answer, refuse a changed body, 409 while in flight."""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from typing import Any, Literal

from .errors import SandboxError

KEY_RE = re.compile(r"[A-Za-z0-9_-]{10,}")


@dataclass
class _Entry:
    fingerprint: str
    answer: tuple[int, dict[str, Any]] | None = None  # None while the first request is in flight


def fingerprint(payment_id: str, body: dict[str, Any]) -> str:
    canonical = json.dumps({"payment_id": payment_id, "body": body}, sort_keys=True)
    return hashlib.sha256(canonical.encode()).hexdigest()


class IdempotencyKeys:
    def __init__(self) -> None:
        self._entries: dict[str, _Entry] = {}

    @staticmethod
    def check_key(key: str) -> None:
        if not KEY_RE.fullmatch(key):
            raise SandboxError(
                "X-Refund-Idempotency must be at least 10 characters of letters, digits, "
                "'-' and '_'",
                field="X-Refund-Idempotency",
            )

    def begin(self, key: str, print_: str) -> tuple[int, dict[str, Any]] | None:
        """The stored answer to replay, or None when this request should run (key reserved)."""
        entry = self._entries.get(key)
        if entry is None:
            self._entries[key] = _Entry(print_)
            return None
        if entry.fingerprint != print_:
            raise SandboxError(
                "Different request with the same idempotency key has already been processed.",
                field="X-Refund-Idempotency",
            )
        if entry.answer is None:
            raise SandboxError(
                "A request with the same idempotency key is already being processed.",
                status=409, field="X-Refund-Idempotency",
            )
        return entry.answer

    def state(self, key: str) -> Literal["unused", "in_flight", "done"]:
        entry = self._entries.get(key)
        if entry is None:
            return "unused"
        return "in_flight" if entry.answer is None else "done"

    def finish(self, key: str, status: int, body: dict[str, Any]) -> None:
        self._entries[key].answer = (status, body)

    def abandon(self, key: str) -> None:
        """The request was cancelled before an answer: the key is free again."""
        entry = self._entries.get(key)
        if entry is not None and entry.answer is None:
            del self._entries[key]
