"""The unit passes systemd-analyze verify and rates <= 2.5 on security (where systemd exists);
the CLI exits 2 with one clear line on a broken config."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]
UNIT = ROOT / "systemd" / "edge-hub.service"
ANALYZE = shutil.which("systemd-analyze")


def local_unit(tmp_path: Path) -> Path:
    """The unit with ExecStart pointing at this checkout's entry point (verify checks it)."""
    exe = Path(sys.executable).with_name("edge-hub")
    text = UNIT.read_text().replace("/opt/upi-vend/.venv/bin/edge-hub", str(exe))
    out = tmp_path / "edge-hub.service"
    out.write_text(text)
    return out


def test_unit_has_the_required_settings() -> None:
    text = UNIT.read_text()
    for line in ("Type=notify", "Restart=on-failure", "RestartSec=5", "StartLimitIntervalSec=0",
                 "DynamicUser=yes", "SupplementaryGroups=dialout", "StateDirectory=edge-hub",
                 "DevicePolicy=closed", "DeviceAllow=char-ttyUSB rw", "DeviceAllow=char-ttyACM rw",
                 "DeviceAllow=char-ttyAMA rw", "After=time-set.target"):
        assert re.search(rf"^{re.escape(line)}$", text, re.M), line
    assert re.search(r"^WatchdogSec=\d+", text, re.M)
    assert "LoadCredential=hub-secret:" in text and "LoadCredential=board-master-key:" in text
    assert "PrivateDevices=yes" not in text  # it would hide the serial ports
    assert "network-online.target" not in text  # an offline-first hub starts without network


@pytest.mark.skipif(ANALYZE is None, reason="systemd-analyze not available")
def test_systemd_analyze_verify_and_security(tmp_path: Path) -> None:
    assert ANALYZE is not None
    unit = local_unit(tmp_path)
    verify = subprocess.run([ANALYZE, "verify", str(unit)], capture_output=True, text=True,
                            timeout=60, check=False)
    problems = [ln for ln in (verify.stdout + verify.stderr).splitlines()
                if "edge-hub.service" in ln]
    assert verify.returncode == 0 and not problems, verify.stdout + verify.stderr
    sec = subprocess.run([ANALYZE, "security", "--offline=yes", str(unit)], capture_output=True,
                         text=True, timeout=60, check=False)
    m = re.search(r"Overall exposure level for \S+: ([0-9.]+)", sec.stdout)
    assert m is not None, sec.stdout + sec.stderr
    assert float(m.group(1)) <= 2.5


def test_udev_rule_names_stable_links() -> None:
    rules = (ROOT / "systemd" / "99-upi-vend-serial.rules").read_text()
    active = [ln for ln in rules.splitlines() if ln and not ln.startswith("#")]
    assert active and all('SUBSYSTEM=="tty"' in ln and "SYMLINK+=" in ln and
                          'GROUP="dialout"' in ln for ln in active)


def test_cli_broken_config_exits_2_naming_file_and_key(tmp_path: Path) -> None:
    cfg = tmp_path / "hub.toml"
    cfg.write_text('[hub]\nid = "h"\n[gateway]\nurl = "http://127.0.0.1:1"\n'
                   '[limits]\norder_timeout_s = -1\n[[boards]]\nport = "/dev/null"\n')
    env = {"EDGE_HUB_SECRET": "x", "EDGE_HUB_MASTER_KEY": "00" * 32, "PATH": "/usr/bin:/bin"}
    r = subprocess.run([sys.executable, "-m", "edge_hub.cli", "run", "--config", str(cfg)],
                       capture_output=True, text=True, timeout=60, check=False, env=env,
                       cwd=ROOT)
    assert r.returncode == 2, r.stderr
    assert str(cfg) in r.stderr and "limits.order_timeout_s" in r.stderr
    assert "Traceback" not in r.stderr
    assert "00" * 32 not in r.stderr
