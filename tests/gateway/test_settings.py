"""Settings: one documented table; TOML < env < credential files; secrets never from TOML or
in repr; clear errors naming the file, line and key."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from cloud_gateway.settings import SETTINGS, Secret, Settings, SettingsError, load_settings

DOCS = Path(__file__).parents[2] / "docs" / "gateway.md"


def test_every_setting_has_help_a_default_and_is_documented() -> None:
    fields = {f.name for f in dataclasses.fields(Settings)}
    assert {s.name for s in SETTINGS} == fields
    page = DOCS.read_text(encoding="utf-8")
    for spec in SETTINGS:
        assert len(spec.help) > 10, spec.name
        assert spec.env == "GATEWAY_" + spec.name.upper()
        assert f"`{spec.name}`" in page, f"docs/gateway.md does not document {spec.name}"


def test_toml_env_and_credentials_layer(tmp_path: Path) -> None:
    toml = tmp_path / "gateway.toml"
    toml.write_text('port = 9000\nqr_ttl_s = 600\nrazorpay_timeout_s = 3\nlog_json = false\n')
    creds = tmp_path / "creds"
    creds.mkdir()
    (creds / "token_key").write_text("from-credential-file\n")
    s = load_settings(toml, {"GATEWAY_QR_TTL_S": "300", "GATEWAY_WEBHOOK_SECRET": "env-wh",
                             "GATEWAY_TOKEN_KEY": "env-token", "CREDENTIALS_DIRECTORY":
                             str(creds)})
    assert s.port == 9000 and s.qr_ttl_s == 300 and s.razorpay_timeout_s == 3.0
    assert s.log_json is False
    assert s.webhook_secret.reveal() == "env-wh"
    assert s.token_key.reveal() == "from-credential-file"  # credentials win over env
    assert "from-credential-file" not in repr(s) and "env-wh" not in repr(s)
    assert "env-wh" not in str(s.webhook_secret)


def test_a_secret_in_the_toml_is_refused(tmp_path: Path) -> None:
    toml = tmp_path / "g.toml"
    toml.write_text('razorpay_key_secret = "oops"\n')
    with pytest.raises(SettingsError, match=r"secret.*GATEWAY_RAZORPAY_KEY_SECRET") as err:
        load_settings(toml, {})
    assert "oops" not in str(err.value)


def test_broken_toml_names_file_and_line(tmp_path: Path) -> None:
    toml = tmp_path / "broken.toml"
    toml.write_text('port = 8080\nhost = "127.0.0.1\n')
    with pytest.raises(SettingsError) as err:
        load_settings(toml, {})
    assert str(toml) in str(err.value) and "line 2" in str(err.value)


@pytest.mark.parametrize(("content", "env", "match"), [
    ("prot = 1\n", {}, "unknown setting 'prot'"),
    ('port = "80"\n', {}, "port must be int"),
    ("log_json = 1\n", {}, "log_json must be bool"),
    ("", {"GATEWAY_PORT": "eighty"}, "GATEWAY_PORT: port must be int"),
    ("", {"GATEWAY_LOG_JSON": "maybe"}, "log_json must be bool"),
])
def test_bad_values_are_clear_errors(tmp_path: Path, content: str, env: dict[str, str],
                                     match: str) -> None:
    toml = tmp_path / "g.toml"
    toml.write_text(content)
    with pytest.raises(SettingsError, match=match):
        load_settings(toml, env)


def test_serving_needs_the_secrets() -> None:
    with pytest.raises(SettingsError, match=r"GATEWAY_RAZORPAY_KEY_SECRET.*GATEWAY_TOKEN_KEY"):
        Settings(razorpay_key_id="k").check_serving()
    with pytest.raises(SettingsError, match="at least 32"):
        Settings(razorpay_key_id="k", razorpay_key_secret=Secret("s"),
                 webhook_secret=Secret("w"), token_key=Secret("short")).check_serving()
