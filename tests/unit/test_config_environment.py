"""A GOE2MQTT_* variable wins over the file, and says so when it changes a value there."""

from __future__ import annotations

from pathlib import Path

from goe2mqtt.config.loading import load_settings

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
