"""Config: defaults, validation errors that name file/key/problem, secrets kept out of reprs."""

from __future__ import annotations

from pathlib import Path

import pytest

from edge_hub.config import ConfigError, all_setting_keys, load_config, parse_config

KEY_HEX = bytes(range(32)).hex()
ENV = {"EDGE_HUB_SECRET": "s3cret-value", "EDGE_HUB_MASTER_KEY": KEY_HEX}
MINIMAL = """
[hub]
id = "hub-1"
data_dir = "/tmp/x"
[gateway]
url = "http://127.0.0.1:9"
[[boards]]
port = "/dev/serial/by-path/*"
"""


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "hub.toml"
    p.write_text(text)
    return p


def test_minimal_config_gets_documented_defaults(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, MINIMAL), env=ENV)
    assert cfg.limits.order_timeout_s == 2.0
    assert cfg.boards[0].baud == 115200 and cfg.boards[0].addr == 0
    assert cfg.secrets.master_key == bytes(range(32))
    assert cfg.db_path == Path("/tmp/x/hub.db")


def test_secrets_never_in_repr_or_redacted(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, MINIMAL), env=ENV)
    text = repr(cfg) + str(cfg.redacted())
    assert "s3cret-value" not in text and KEY_HEX not in text
    assert cfg.redacted()["gateway"]["url"] == "http://127.0.0.1:9"


def test_secrets_from_credentials_directory(tmp_path: Path) -> None:
    creds = tmp_path / "creds"
    creds.mkdir()
    (creds / "hub-secret").write_text("from-file\n")
    (creds / "board-master-key").write_text(KEY_HEX + "\n")
    cfg = load_config(write(tmp_path, MINIMAL), env={"CREDENTIALS_DIRECTORY": str(creds)})
    assert cfg.secrets.hub_secret == "from-file"


@pytest.mark.parametrize(
    ("patch", "key", "problem"),
    [
        (("[gateway]\nurl = \"http://127.0.0.1:9\"", "[gateway]\nurl = \"ftp://x\""),
         "gateway.url", "http"),
        (("[hub]\n", "[hub]\nbogus = 1\n"), "hub.bogus", "unknown setting"),
        (("[[boards]]\n", "[limits]\norder_timeout_s = \"fast\"\n[[boards]]\n"),
         "limits.order_timeout_s", "number"),
        (("[[boards]]\n", "[limits]\norder_timeout_s = 0\n[[boards]]\n"),
         "limits.order_timeout_s", ">="),
        (("[[boards]]\n", "[gateway.x]\n[[boards]]\n"), "gateway.x", "unknown"),
        (("id = \"hub-1\"\n", ""), "hub.id", "required"),
        (("port = \"/dev/serial/by-path/*\"", "port = \"/dev/x\"\naddr = 300"),
         "boards[0].addr", "0..247"),
    ],
)
def test_bad_config_names_file_key_and_problem(tmp_path: Path, patch: tuple[str, str],
                                               key: str, problem: str) -> None:
    text = MINIMAL.replace(*patch)
    assert text != MINIMAL
    with pytest.raises(ConfigError) as ei:
        load_config(write(tmp_path, text), env=ENV)
    assert ei.value.key == key
    assert problem in ei.value.problem
    assert str(tmp_path / "hub.toml") in str(ei.value)


def test_broken_toml_and_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(write(tmp_path, "[hub\n"), env=ENV)
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "nope.toml", env=ENV)


def test_missing_or_bad_secret_is_named_without_value(tmp_path: Path) -> None:
    p = write(tmp_path, MINIMAL)
    with pytest.raises(ConfigError, match="EDGE_HUB_SECRET"):
        load_config(p, env={"EDGE_HUB_MASTER_KEY": KEY_HEX})
    with pytest.raises(ConfigError, match="32 bytes") as ei:
        load_config(p, env={**ENV, "EDGE_HUB_MASTER_KEY": "abcd"})
    assert "abcd" not in str(ei.value)


def test_env_overrides_file_and_is_validated() -> None:
    import tomllib
    data = tomllib.loads(MINIMAL)
    cfg = parse_config(data, env={**ENV, "EDGE_HUB_LIMITS_ORDER_TIMEOUT_S": "0.5"})
    assert cfg.limits.order_timeout_s == 0.5
    with pytest.raises(ConfigError) as ei:
        parse_config(data, env={**ENV, "EDGE_HUB_STATUS_ENABLED": "maybe"})
    assert ei.value.source == "$EDGE_HUB_STATUS_ENABLED"


def test_status_users_need_scrypt_hash() -> None:
    import tomllib
    data = tomllib.loads(MINIMAL + '[[status.users]]\nname = "t"\npassword_hash = "plain"\n')
    with pytest.raises(ConfigError, match="scrypt"):
        parse_config(data, env=ENV)


def test_every_setting_is_documented() -> None:
    doc = (Path(__file__).parents[2] / "docs" / "hub.md").read_text()
    missing = [k for k in all_setting_keys() if f"`{k}`" not in doc]
    assert not missing, f"settings not documented in docs/hub.md: {missing}"
