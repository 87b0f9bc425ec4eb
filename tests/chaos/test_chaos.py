"""The seeded small chaos run (issue 6): a few hundred purchases while processes, lines,
Razorpay and customers misbehave, then every money rule checked (bench/sitekit/checker.py).

If this fails, the findings name the rule, the order and what was seen; the full site (databases,
logs, findings.txt) is kept under the test's tmp_path. Reproduce with the same seed:
``.venv/bin/python bench/chaos.py --purchases 250 --boards 16 --seed 11 --data-dir /tmp/c``.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

REPO = Path(__file__).resolve().parents[2]


def _chaos_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_chaos", REPO / "bench" / "chaos.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("bench_chaos", module)
    spec.loader.exec_module(module)
    return module


@pytest.mark.timeout(170)
async def test_seeded_chaos_run_keeps_every_money_rule(tmp_path: Path) -> None:
    chaos = _chaos_module()
    args = chaos.parse_args(["--purchases", "250", "--boards", "16", "--seed", "11",
                             "--fault-every", "1.0", "--time-limit", "90", "--settle-s", "45",
                             "--data-dir", str(tmp_path / "site")])
    report, faults = await chaos.chaos(args)
    findings = "\n".join(str(f) for f in report.findings[:20])
    assert report.purchases == 250
    assert faults >= 100, f"too few faults injected: {faults}"
    assert report.paid > 0 and report.fulfilled > 0 and report.refunded > 0
    assert report.violations == 0, findings
    assert report.lost_events == 0, findings
    assert report.unterminated == 0, findings
