"""A path beginning with ~ in the config is the home, as a shell reads it.

`state_dir: ~/goe2mqtt` used as written made a directory named "~" where the bridge
started (and `goe2mqtt sessions` from elsewhere found no ledger); `token_file:
~/goe-token` was "cannot read ~/goe-token" beside the file. Every key that names a file
or directory is expanded when the config is read, and an error shows the path looked at.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from goe2mqtt.cli import main
from goe2mqtt.config.loading import load_probe_settings, load_settings
from goe2mqtt.config.problems import ConfigError
from goe2mqtt.config.settings import parse_settings


def config(**top: Any) -> dict[str, Any]:
    charger = {"name": "garage", "serial": "012345", "token": "t0k3n-5e1d"}
    return {"mqtt": {"host": "127.0.0.1"}, "chargers": [charger], **top}


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)
    (tmp_path / "home").mkdir()
    return tmp_path / "home"


def secret(path: Path, text: str = "s3cret-from-a-file") -> None:
    path.write_text(text + "\n")
    path.chmod(0o600)


def test_a_state_dir_or_health_file_from_home_is_expanded_without_a_warning(home: Path) -> None:
    settings = parse_settings(config(state_dir="~/goe2mqtt", health_file="~/health.json"))
    assert settings.state_dir == f"{home}/goe2mqtt"
    assert settings.health_file == f"{home}/health.json"
    assert settings.warnings == ()


def test_secret_files_from_home_are_read(home: Path) -> None:
    for name in ("goe-token", "charger-password", "mqtt-password", "http-token"):
        secret(home / name)
    charger = {"name": "garage", "host": "192.168.1.20", "transport": "websocket",
               "password_file": "~/charger-password"}  # fmt: skip
    cloud = {"name": "shed", "serial": "012346", "token_file": "~/goe-token"}
    settings = parse_settings(
        {
            "mqtt": {"host": "h", "username": "bridge", "password_file": "~/mqtt-password"},
            "chargers": [charger, cloud],
            "http": {"token_file": "~/http-token"},
        }
    )
    assert settings.mqtt.password_file == f"{home}/mqtt-password"
    assert settings.chargers[0].password_file == f"{home}/charger-password"
    assert settings.chargers[1].token_file == f"{home}/goe-token"
    assert settings.http.token_file == f"{home}/http-token"
    for value in (settings.mqtt.password, settings.chargers[0].password,
                  settings.chargers[1].token, settings.http.token):  # fmt: skip
        assert value is not None
        assert value.get_secret_value() == "s3cret-from-a-file"


@pytest.mark.parametrize(
    ("top", "problem"),
    [
        ({"chargers": [{"name": "garage", "serial": "012345", "token_file": "~/goe-token"}]},
         "chargers[0].token_file: cannot read {home}/goe-token: No such file or directory"),
        ({"mqtt": {"host": "h", "password_file": "~/mqtt-password"}},
         "mqtt.password_file: cannot read {home}/mqtt-password: No such file or directory"),
        ({"mqtt": {"host": "h", "tls": {"ca_file": "~/ca.crt"}}},
         "mqtt.tls.ca_file: cannot read {home}/ca.crt"),
        ({"mqtt": {"host": "h", "tls": {"certfile": "~/c.crt", "keyfile": "~/c.key"}}},
         "mqtt.tls.certfile: cannot read {home}/c.crt"),
        ({"http": {"token_file": "~/http-token"}},
         "http.token_file: cannot read {home}/http-token: No such file or directory"),
    ],
)  # fmt: skip
def test_a_file_from_home_that_cannot_be_read_names_the_key_and_the_expanded_path(
    home: Path, top: dict[str, Any], problem: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_settings(config(**top))
    assert caught.value.problems == (problem.format(home=home),)


def test_a_path_from_the_environment_is_expanded_too(home: Path, tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config()))
    environ = {"GOE2MQTT_STATE_DIR": "~/state", "GOE2MQTT_HEALTH_FILE": "~/h.json"}
    assert load_settings(path, environ).state_dir == f"{home}/state"
    assert load_probe_settings(path, environ).health_file == f"{home}/h.json"


def test_sessions_looks_in_the_home(
    home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config(state_dir="~/books")))
    assert main(["sessions", "--config", str(path)]) == 1
    err = capsys.readouterr().err
    assert f"no ledger yet ({home}/books/goe2mqtt.sessions)" in err
    assert not (tmp_path / "~").exists()  # a report makes no directory


@pytest.mark.parametrize("given", ["variable", "option"])
def test_healthcheck_reads_a_health_file_from_home(
    home: Path, given: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """GOE2MQTT_HEALTH_FILE=~/health.json (a unit's Environment= does not expand ~): the
    bridge writes it in the home, and healthcheck looked for a file named "~/health.json"."""
    (home / "health.json").write_text('{"mqtt_connected": true, "chargers": {}}')
    if given == "variable":
        monkeypatch.setenv("GOE2MQTT_HEALTH_FILE", "~/health.json")
        argv = ["healthcheck"]
    else:
        argv = ["healthcheck", "--file", "~/health.json"]
    assert main(argv) == 0
    assert capsys.readouterr().out.startswith("healthy: ")
