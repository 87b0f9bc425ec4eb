"""The operator CLI: hubs add/list/revoke, catalog load (hubs told), settings, clear errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cloud_gateway.auth import check_secret
from cloud_gateway.cli import run

from .conftest import EXAMPLES


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "gateway.toml"
    path.write_text(f'data_dir = "{tmp_path / "data"}"\n')
    return path


def _db_rows(tmp_path: Path, sql: str) -> list[tuple[object, ...]]:
    import sqlite3

    conn = sqlite3.connect(tmp_path / "data" / "gateway.sqlite3")
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


def test_hubs_add_list_revoke(config: Path, tmp_path: Path,
                              capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["--config", str(config), "hubs", "add", "hub-1", "--site", "mall-1"]) == 0
    out = capsys.readouterr().out
    secret = out.split("secret (shown once; give it to the hub): ")[1].strip()
    [(stored,)] = _db_rows(tmp_path, "SELECT secret_hash FROM hubs")
    assert secret not in str(stored) and check_secret(secret, str(stored))
    assert run(["--config", str(config), "hubs", "add", "hub-1", "--site", "x"]) == 1
    assert "already exists" in capsys.readouterr().err
    assert run(["hubs", "list", "--config", str(config)]) == 0
    [line] = capsys.readouterr().out.splitlines()
    assert json.loads(line)["hub_id"] == "hub-1" and json.loads(line)["revoked_at"] is None
    assert run(["--config", str(config), "hubs", "revoke", "hub-1"]) == 0
    assert run(["--config", str(config), "hubs", "revoke", "nobody"]) == 1
    capsys.readouterr()
    run(["--config", str(config), "hubs", "list"])
    assert json.loads(capsys.readouterr().out)["revoked_at"] is not None


def test_catalog_load_tells_every_active_hub(config: Path, tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    for hub in ("h1", "h2"):
        assert run(["--config", str(config), "hubs", "add", hub, "--site", "s"]) == 0
    assert run(["--config", str(config), "catalog", "load",
                str(EXAMPLES / "catalog.toml")]) == 0
    rows = _db_rows(tmp_path, "SELECT product, option, price FROM catalog ORDER BY position")
    assert ("cappuccino", "", 30000) in rows and ("cappuccino", "extra_shot", 5000) in rows
    commands = _db_rows(tmp_path, "SELECT hub_id, seq, type FROM commands ORDER BY hub_id")
    assert commands == [("h1", 1, "catalog_changed"), ("h2", 1, "catalog_changed")]
    bad = tmp_path / "bad.toml"
    bad.write_text('[[products]]\ncode = "tea"\nname = "Tea"\nprice = 120.5\n')
    assert run(["--config", str(config), "catalog", "load", str(bad)]) == 1
    err = capsys.readouterr().err
    assert str(bad) in err and "integer number of paise" in err
    # the failed load changed nothing
    assert ("cappuccino", "", 30000) in _db_rows(tmp_path, "SELECT product, option, price "
                                                 "FROM catalog")


def test_bad_config_exits_2_naming_the_file(tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "g.toml"
    bad.write_text("port = \n")
    assert run(["--config", str(bad), "hubs", "list"]) == 2
    assert str(bad) in capsys.readouterr().err


def test_settings_lists_every_setting(capsys: pytest.CaptureFixture[str]) -> None:
    from cloud_gateway.settings import SETTINGS

    assert run(["settings"]) == 0
    out = capsys.readouterr().out
    assert all(s.env in out for s in SETTINGS)


def test_serve_refuses_to_start_without_secrets(config: Path,
                                                capsys: pytest.CaptureFixture[str],
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("GATEWAY_RAZORPAY_KEY_SECRET", "GATEWAY_WEBHOOK_SECRET", "GATEWAY_TOKEN_KEY",
                 "CREDENTIALS_DIRECTORY"):
        monkeypatch.delenv(name, raising=False)
    import logging

    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    try:
        assert run(["serve", "--config", str(config)]) == 2
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)
    assert "GATEWAY_TOKEN_KEY" in capsys.readouterr().err
