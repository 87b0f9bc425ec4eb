"""In-process Prometheus metrics, rendered in the text exposition format (GET /metrics).

Modules call `Metrics.inc(name, labels, by)` for counters, `observe(name, labels, seconds)` for
latency histograms, and `add_gauge(name, help, fn)` for values computed at scrape time (commands
pending). Counter and histogram names must be declared in `HELP` (or via `declare`) first, so
every series has help text. Label values come from route templates, never raw paths.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Mapping

BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

HELP: dict[str, tuple[str, str]] = {
    "gateway_http_requests_total": ("counter", "HTTP requests by route, method and status."),
    "gateway_http_request_duration_seconds": ("histogram", "HTTP request latency by route."),
    "gateway_webhooks_total": ("counter", "Razorpay webhooks by outcome."),
    "gateway_refunds_total": ("counter", "Refund attempts by result."),
    "gateway_hub_events_total": ("counter", "Hub events by type and status."),
    "gateway_commands_sent_total": ("counter", "Commands sent to hubs by channel."),
}

Labels = tuple[tuple[str, str], ...]


def _labels(labels: Mapping[str, str]) -> Labels:
    return tuple(sorted(labels.items()))


def _fmt(labels: Labels, extra: tuple[tuple[str, str], ...] = ()) -> str:
    items = labels + extra
    if not items:
        return ""
    def esc(v: str) -> str:
        return v.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return "{" + ",".join(f'{k}="{esc(v)}"' for k, v in items) + "}"


class Metrics:
    def __init__(self) -> None:
        self._help = dict(HELP)
        self._counters: dict[str, dict[Labels, float]] = {}
        self._hists: dict[str, dict[Labels, list[float]]] = {}  # per bucket + overflow, sum, count
        self._gauges: dict[str, tuple[str, Callable[[], float]]] = {}

    def declare(self, name: str, kind: str, help: str) -> None:
        self._help[name] = (kind, help)

    def inc(self, name: str, labels: Mapping[str, str] | None = None, by: float = 1.0) -> None:
        if name not in self._help:
            raise KeyError(f"undeclared metric {name}")
        series = self._counters.setdefault(name, {})
        key = _labels(labels or {})
        series[key] = series.get(key, 0.0) + by

    def observe(self, name: str, labels: Mapping[str, str], seconds: float) -> None:
        if name not in self._help:
            raise KeyError(f"undeclared metric {name}")
        series = self._hists.setdefault(name, {})
        key = _labels(labels)
        row = series.get(key)
        if row is None:
            row = series[key] = [0.0] * (len(BUCKETS) + 3)
        row[bisect.bisect_left(BUCKETS, seconds)] += 1  # non-cumulative here, summed on render
        row[-2] += seconds
        row[-1] += 1

    def add_gauge(self, name: str, help: str, fn: Callable[[], float]) -> None:
        self._gauges[name] = (help, fn)

    def value(self, name: str, labels: Mapping[str, str] | None = None) -> float:
        return self._counters.get(name, {}).get(_labels(labels or {}), 0.0)

    def render(self) -> str:
        lines: list[str] = []
        for name, (kind, help) in sorted(self._help.items()):
            lines += [f"# HELP {name} {help}", f"# TYPE {name} {kind}"]
            if kind == "counter":
                for key, v in sorted(self._counters.get(name, {}).items()):
                    lines.append(f"{name}{_fmt(key)} {v:g}")
            elif kind == "histogram":
                for key, row in sorted(self._hists.get(name, {}).items()):
                    running = 0.0
                    for bound, n in zip((*BUCKETS, float("inf")), row[:-2], strict=True):
                        running += n
                        le = "+Inf" if bound == float("inf") else f"{bound:g}"
                        lines.append(f"{name}_bucket{_fmt(key, (('le', le),))} {running:g}")
                    lines.append(f"{name}_sum{_fmt(key)} {row[-2]:.6f}")
                    lines.append(f"{name}_count{_fmt(key)} {row[-1]:g}")
        for name, (help, fn) in sorted(self._gauges.items()):
            lines += [f"# HELP {name} {help}", f"# TYPE {name} gauge", f"{name} {fn():g}"]
        return "\n".join(lines) + "\n"


__all__ = ["HELP", "Metrics"]
