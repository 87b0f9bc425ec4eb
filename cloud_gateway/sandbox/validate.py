"""Request validation the way Razorpay does it: a typed value or a clear BAD_REQUEST_ERROR."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from .errors import SandboxError

MAX_NOTES = 15
MAX_NOTE_VALUE = 256
MAX_NOTE_KEY = 256


def parse_object(raw: bytes) -> dict[str, Any]:
    """The body of a POST: empty means {}, anything else must be a JSON object."""
    if not raw.strip():
        return {}
    try:
        value = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise SandboxError("The request body must be valid JSON.") from exc
    if not isinstance(value, dict):
        raise SandboxError("The request body must be a JSON object.")
    return value


def reject_unknown(body: Mapping[str, Any], allowed: Iterable[str]) -> None:
    extra = sorted(set(body) - set(allowed))
    if extra:
        raise SandboxError(
            f"{', '.join(extra)} is/are not required and should not be sent", field=extra[0]
        )


def integer(body: Mapping[str, Any], name: str, *, required: bool = False) -> int | None:
    value = body.get(name)
    if value is None:
        if required:
            raise SandboxError(f"The {name} field is required.", field=name)
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise SandboxError(f"The {name} must be an integer.", field=name)
    return value


def boolean(body: Mapping[str, Any], name: str, default: bool) -> bool:
    value = body.get(name, default)
    if not isinstance(value, bool):
        raise SandboxError(f"The {name} field must be a boolean.", field=name)
    return value


def string(
    body: Mapping[str, Any], name: str, *, max_len: int, required: bool = False
) -> str | None:
    value = body.get(name)
    if value is None:
        if required:
            raise SandboxError(f"The {name} field is required.", field=name)
        return None
    if not isinstance(value, str):
        raise SandboxError(f"The {name} must be a string.", field=name)
    if len(value) > max_len:
        raise SandboxError(
            f"The {name} may not be greater than {max_len} characters.", field=name
        )
    return value


def choice(body: Mapping[str, Any], name: str, options: Iterable[str]) -> str:
    value = string(body, name, max_len=64, required=True)
    allowed = tuple(options)
    if value not in allowed:
        raise SandboxError(f"The selected {name} is invalid.", field=name)
    assert value is not None
    return value


def notes(body: Mapping[str, Any]) -> dict[str, str]:
    value = body.get("notes")
    if value is None or value == []:
        return {}
    if not isinstance(value, dict):
        raise SandboxError("The notes field must be an object.", field="notes")
    if len(value) > MAX_NOTES:
        raise SandboxError(f"Number of notes should not exceed {MAX_NOTES}.", field="notes")
    out: dict[str, str] = {}
    for key, item in value.items():
        if len(key) > MAX_NOTE_KEY:
            raise SandboxError("A notes key is too long.", field="notes")
        if isinstance(item, bool) or not isinstance(item, str | int):
            raise SandboxError(f"The notes.{key} value must be a string.", field="notes")
        text = str(item)
        if len(text) > MAX_NOTE_VALUE:
            raise SandboxError(
                f"The notes.{key} may not be greater than {MAX_NOTE_VALUE} characters.",
                field="notes",
            )
        out[key] = text
    return out


def page(query: Mapping[str, str]) -> tuple[int, int, int | None, int | None]:
    """count (1..100, default 10), skip, from, to from a collection query string."""

    def number(name: str, default: int | None) -> int | None:
        raw = query.get(name)
        if raw is None:
            return default
        try:
            return int(raw)
        except ValueError:
            raise SandboxError(f"The {name} must be an integer.", field=name) from None

    count = number("count", 10)
    skip = number("skip", 0)
    assert count is not None and skip is not None
    if not 1 <= count <= 100:
        raise SandboxError("The count must be between 1 and 100.", field="count")
    if skip < 0:
        raise SandboxError("The skip must be at least 0.", field="skip")
    return count, skip, number("from", None), number("to", None)
