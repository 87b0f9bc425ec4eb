"""Logging: JSON lines carrying the request, hub and order ids of the context.

`setup_logging(level, json_lines)` is called once by the CLI. The request middleware sets the
context variables (`REQUEST_ID`, `HUB_ID`); any record may also pass ids with ``extra=``. Records
never carry secrets: settings hold them in `settings.Secret`, which prints as ``***``.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from contextvars import ContextVar
from typing import Final

REQUEST_ID: ContextVar[str | None] = ContextVar("request_id", default=None)
HUB_ID: ContextVar[str | None] = ContextVar("hub_id", default=None)
ORDER_ID: ContextVar[str | None] = ContextVar("order_id", default=None)

_STANDARD: Final = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message", "asctime", "taskName"}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, object] = {
            "ts": round(record.created, 3),
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for name, var in (("request_id", REQUEST_ID), ("hub_id", HUB_ID),
                          ("order_id", ORDER_ID)):
            value = var.get()
            if value is not None:
                out[name] = value
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                out[key] = value if isinstance(value, str | int | float | bool | None) \
                    else repr(value)
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out, ensure_ascii=False)


def setup_logging(level: str = "INFO", json_lines: bool = True) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if json_lines else logging.Formatter(
        "%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)  # our middleware logs


__all__ = ["HUB_ID", "ORDER_ID", "REQUEST_ID", "JsonFormatter", "setup_logging"]
