"""`goe2mqtt sessions` reads the ledger, never a charger or the broker: a shell that
lacks the secrets' ${VAR}s (the bridge's environment holds them) still gets the books."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from goe2mqtt.cli import main
from goe2mqtt.config.loading import load_report_settings, load_settings
from goe2mqtt.config.problems import ConfigError


def _config(tmp_path: Path, **top: object) -> Path:
    raw = {
        "mqtt": {"host": "localhost", "client_id": "books", "password": "${NC_MQTT_PASSWORD}"},
        "state_dir": str(tmp_path),
        "chargers": [
            {"name": "garage", "serial": "012345", "token": "${NC_GOE_TOKEN}"},
            {"name": "carport", "host": "127.0.0.1", "password": "pw-${NC_GOE_PASSWORD}"},
        ],
        **top,
    }
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(raw))
    return config


@pytest.fixture(autouse=True)
def _unset(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("NC_MQTT_PASSWORD", "NC_GOE_TOKEN", "NC_GOE_PASSWORD", "NC_STATE"):
        monkeypatch.delenv(name, raising=False)


def test_the_sessions_command_needs_none_of_the_secrets_variables(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = _config(tmp_path)
    # No ledger here yet: the command got past the config and says so (exit 1), rather
    # than stopping at "environment variable NC_GOE_TOKEN is not set" (exit 2).
    assert main(["sessions", "--config", str(config)]) == 1
    err = capsys.readouterr().err
    assert "no ledger yet" in err
    assert "is not set" not in err


def test_a_report_still_resolves_every_variable_that_is_not_a_secret(tmp_path: Path) -> None:
    config = _config(tmp_path, state_dir="${NC_STATE}")
    with pytest.raises(ConfigError) as caught:
        load_report_settings(config)
    assert caught.value.problems == ("state_dir: environment variable NC_STATE is not set",)


def test_a_report_uses_the_secrets_the_shell_has(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NC_GOE_TOKEN", "the-token")
    settings = load_report_settings(_config(tmp_path))
    token = settings.chargers[0].token
    assert token is not None
    assert token.get_secret_value() == "the-token"


def test_the_bridge_still_stops_naming_each_unset_secret(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(_config(tmp_path))
    assert set(caught.value.problems) == {
        "mqtt.password: environment variable NC_MQTT_PASSWORD is not set",
        "chargers[0].token: environment variable NC_GOE_TOKEN is not set",
        "chargers[1].password: environment variable NC_GOE_PASSWORD is not set",
    }
