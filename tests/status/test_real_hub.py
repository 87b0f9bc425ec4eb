"""The page against a real site: sandbox, gateway and hub processes with simulated boards,
in headless Chromium (edge_hub.statuspage_check, as `python -m edge_hub.statuspage_check`)."""

from __future__ import annotations

import os
import struct
from pathlib import Path

import pytest

from edge_hub.statuspage_check import CHROMIUM, MIN_LIVE_UPDATES, run_check

pytestmark = pytest.mark.skipif(
    not os.path.exists(CHROMIUM),
    reason=f"browser test skipped: Debian chromium is not installed at {CHROMIUM} (make browser)",
)


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


async def test_purchase_on_a_real_hub_shows_live(tmp_path: Path) -> None:
    out = tmp_path / "status.png"
    result = await run_check(out, boards_n=3, work=tmp_path / "site")
    assert result.boards == 3
    assert result.live_updates >= MIN_LIVE_UPDATES
    assert result.screenshot == out
    width, height = png_size(out)
    assert width == 1280 and height >= 1000  # the full page, boards and QR included
    assert png_size(tmp_path / "status-done.png")[0] == 1280
    assert result.line() == (
        f"statuspage screenshot={out} boards=3 live_updates={result.live_updates}"
    )
