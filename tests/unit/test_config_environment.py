"""A GOE2MQTT_* variable wins over the file, and says so when it changes a value there."""

from __future__ import annotations

from pathlib import Path

import pytest

from goe2mqtt.config.loading import load_settings
from goe2mqtt.config.problems import ConfigError

CONFIG = (
    "mqtt: {host: 127.0.0.1, port: 1883, password: file-secret-5150}\n"
    "chargers: [{name: garage, host: 192.168.1.20}]\n"
    "state_dir: /data\n"
    "http: {listen: 127.0.0.1:8099, enabled: true}\n"
)


def test_a_variable_that_overrides_the_files_value_is_a_warning(tmp_path: Path) -> None:
    """The image sets GOE2MQTT_HTTP__LISTEN=0.0.0.0:8099: a config.yaml that keeps the
    page on 127.0.0.1 was silently opened to the network."""
    config = tmp_path / "config.yaml"
    config.write_text(CONFIG)
    environ = {
        "GOE2MQTT_HTTP__LISTEN": "0.0.0.0:8099",  # changes the file's value: said
        "GOE2MQTT_STATE_DIR": "/data",  # the same value: nothing to say
        "GOE2MQTT_MQTT__PORT": "1883",  # the same, as text
        "GOE2MQTT_HTTP__ENABLED": "true",  # the same, as a YAML boolean
        "GOE2MQTT_HEALTH_FILE": "/tmp/health.json",  # not in the file: nothing to say
        "GOE2MQTT_MQTT__PASSWORD": "env-secret-6160",  # said, its values never
    }
    settings = load_settings(config, environ)
    assert settings.http.listen == "0.0.0.0:8099"
    assert settings.warnings == (
        "http.listen: GOE2MQTT_HTTP__LISTEN wins over the value in the config file",
        "mqtt.password: GOE2MQTT_MQTT__PASSWORD wins over the value in the config file",
    )
    assert "secret" not in " ".join(settings.warnings)


@pytest.mark.parametrize("index", ["\u00b2", "\u0660", "\u0661"])
def test_a_list_index_is_ascii_digits_only(tmp_path: Path, index: str) -> None:
    """str.isdigit() says yes to a superscript two (then int() raised: a traceback, exit
    1) and to Arabic-Indic digits (U+0660 silently named charger 0's token)."""
    config = tmp_path / "config.yaml"
    config.write_text(CONFIG)
    with pytest.raises(ConfigError, match=f"GOE2MQTT_CHARGERS__{index}__TOKEN: .*list entry"):
        load_settings(config, {f"GOE2MQTT_CHARGERS__{index}__TOKEN": "env-token-7170"})
