"""Request validation and JSON Schema, both derived from the TypedDicts in `protocol.hub_api`.

Route handlers call `validate(SomeTypedDict, body)`, which returns the body typed or raises
`ValidationError` listing every missing and invalid field (dotted paths, `events.3.at.wall`).
Unknown keys are invalid; a `price` or `amount` key gets a message saying prices are the
gateway's (INVARIANTS rule 5). `json_schema` gives the OpenAPI 3.1 schema of a TypedDict.

Supported annotations: str, int (bool is not an int), float, bool, object, list[X],
dict[str, X], X | None, Literal[...], nested TypedDicts, NotRequired[X].
"""

from __future__ import annotations

import functools
import types
import typing
from typing import Any, Literal, NotRequired, TypeVar, Union, get_args, get_origin

from .errors import ValidationError

T = TypeVar("T")

PRICE_KEYS = frozenset({"price", "amount", "amount_paise", "total"})
PRICE_MESSAGE = "prices are computed by the gateway from its catalog; do not send one"


@functools.cache
def _fields(td: type) -> dict[str, tuple[Any, bool]]:
    """name -> (annotation, required), with NotRequired unwrapped."""
    hints = typing.get_type_hints(td, include_extras=True)
    out: dict[str, tuple[Any, bool]] = {}
    for name, hint in hints.items():
        if get_origin(hint) is NotRequired:
            out[name] = (get_args(hint)[0], False)
        else:
            out[name] = (hint, True)
    return out


def _is_typeddict(tp: object) -> bool:
    return isinstance(tp, type) and typing.is_typeddict(tp)


def _describe(tp: Any) -> str:
    if _is_typeddict(tp):
        return "object"
    origin = get_origin(tp)
    if origin in (Union, types.UnionType):
        return " or ".join(_describe(a) for a in get_args(tp))
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in get_args(tp))
    if origin is list:
        return "array"
    if origin is dict:
        return "object"
    if tp is type(None):
        return "null"
    if tp is float:
        return "number"
    return {str: "string", int: "integer", bool: "boolean"}.get(tp, "value")


def _check(tp: Any, value: object, path: str, missing: list[str],
           invalid: dict[str, str]) -> None:
    if tp is object or tp is Any:
        return
    if _is_typeddict(tp):
        if not isinstance(value, dict):
            invalid[path or "body"] = "must be a JSON object"
            return
        _check_object(tp, value, path, missing, invalid)
        return
    origin = get_origin(tp)
    if origin in (Union, types.UnionType):
        options = get_args(tp)
        if value is None and type(None) in options:
            return
        for option in options:
            if option is type(None):
                continue
            trial_missing: list[str] = []
            trial_invalid: dict[str, str] = {}
            _check(option, value, path, trial_missing, trial_invalid)
            if not trial_missing and not trial_invalid:
                return
        invalid[path] = f"must be {_describe(tp)}"
        return
    if origin is Literal:
        if value not in get_args(tp):
            invalid[path] = f"must be {_describe(tp)}"
        return
    if origin is list:
        if not isinstance(value, list):
            invalid[path] = "must be an array"
            return
        (item_tp,) = get_args(tp)
        for i, item in enumerate(value):
            _check(item_tp, item, f"{path}.{i}", missing, invalid)
        return
    if origin is dict:
        if not isinstance(value, dict):
            invalid[path] = "must be an object"
            return
        _, item_tp = get_args(tp)
        for key, item in value.items():
            _check(item_tp, item, f"{path}.{key}", missing, invalid)
        return
    if tp is bool:
        ok = isinstance(value, bool)
    elif tp is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif tp is float:
        ok = isinstance(value, int | float) and not isinstance(value, bool)
    elif tp is str:
        ok = isinstance(value, str)
    elif tp is type(None):
        ok = value is None
    else:  # pragma: no cover - a schema using an unsupported annotation is a programming error
        raise TypeError(f"unsupported annotation {tp!r}")
    if not ok:
        invalid[path] = f"must be {_describe(tp)}"


def _check_object(td: type, value: dict[str, object], prefix: str, missing: list[str],
                  invalid: dict[str, str]) -> None:
    fields = _fields(td)
    for name, (tp, required) in fields.items():
        path = f"{prefix}.{name}" if prefix else name
        if name not in value:
            if required:
                missing.append(path)
            continue
        _check(tp, value[name], path, missing, invalid)
    for name in value:
        if name not in fields:
            path = f"{prefix}.{name}" if prefix else name
            invalid[path] = PRICE_MESSAGE if name in PRICE_KEYS else "unknown field"


def validate(td: type[T], value: object) -> T:
    missing: list[str] = []
    invalid: dict[str, str] = {}
    if not isinstance(value, dict):
        raise ValidationError(invalid={"body": "must be a JSON object"})
    _check_object(td, value, "", missing, invalid)
    if missing or invalid:
        raise ValidationError(missing, invalid)
    return typing.cast(T, value)


def json_schema(tp: Any, defs: dict[str, Any]) -> dict[str, Any]:
    """JSON Schema (2020-12, as OpenAPI 3.1 uses) of an annotation; named TypedDicts go in defs."""
    if _is_typeddict(tp):
        name = tp.__name__
        if name not in defs:
            defs[name] = {}  # placeholder first: recursion-safe
            props = {k: json_schema(t, defs) for k, (t, _) in _fields(tp).items()}
            required = [k for k, (_, req) in _fields(tp).items() if req]
            defs[name] = {"type": "object", "properties": props, "required": required,
                          "additionalProperties": False}
        return {"$ref": f"#/components/schemas/{name}"}
    origin = get_origin(tp)
    if origin in (Union, types.UnionType):
        return {"anyOf": [json_schema(a, defs) for a in get_args(tp)]}
    if origin is Literal:
        return {"enum": list(get_args(tp))}
    if origin is list:
        return {"type": "array", "items": json_schema(get_args(tp)[0], defs)}
    if origin is dict:
        return {"type": "object", "additionalProperties": json_schema(get_args(tp)[1], defs)}
    simple = {str: "string", int: "integer", bool: "boolean", float: "number",
              type(None): "null"}
    if tp in simple:
        return {"type": simple[tp]}
    return {}


__all__ = ["PRICE_KEYS", "json_schema", "validate"]
