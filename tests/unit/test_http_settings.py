"""The http: section: where the operator's surface listens, and its token."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from goe2mqtt.config.loading import load_settings
from goe2mqtt.config.problems import ConfigError
from goe2mqtt.config.settings import parse_settings


def raw(**http: Any) -> dict[str, Any]:
    return {
        "mqtt": {"host": "127.0.0.1"},
        "chargers": [{"name": "garage", "serial": "012345", "token": "t0k3n-abc"}],
        **({"http": http} if http else {}),
    }


def test_defaults_listen_on_loopback_8099() -> None:
    http = parse_settings(raw()).http
    assert (http.enabled, http.listen, http.host, http.port) == (True, "127.0.0.1:8099",
                                                                 "127.0.0.1", 8099)  # fmt: skip
    assert http.token is None
    assert http.charger_metrics == "all"
    assert http.max_streams == 64


@pytest.mark.parametrize("value", [-1, 10_001, "64", 2.5, True])
def test_max_streams_is_a_whole_number_from_0_to_10000(value: Any) -> None:
    with pytest.raises(ConfigError, match=r"^http\.max_streams: "):
        parse_settings(raw(max_streams=value))
    assert parse_settings(raw(max_streams=0)).http.max_streams == 0


@pytest.mark.parametrize(
    ("listen", "host", "port"),
    [("0.0.0.0:9000", "0.0.0.0", 9000), ("[::]:8099", "::", 8099), ("[::1]:0", "::1", 0),
     ("localhost:8099", "localhost", 8099)],
)  # fmt: skip
def test_listen_is_host_port_with_ipv6_in_brackets(listen: str, host: str, port: int) -> None:
    http = parse_settings(raw(listen=listen)).http
    assert (http.host, http.port) == (host, port)


@pytest.mark.parametrize("listen", ["8099", "::1:8099", "host:99999", "http://x:80", "a b:1"])
def test_a_bad_listen_names_the_key(listen: str) -> None:
    with pytest.raises(ConfigError, match=r"^http\.listen: "):
        parse_settings(raw(listen=listen))


def test_environment_variables_set_the_section(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text("mqtt: {host: 127.0.0.1}\nchargers: [{name: g, serial: '012345', token: t}]")
    settings = load_settings(config, {"GOE2MQTT_HTTP__LISTEN": "[::1]:9100",
                                      "GOE2MQTT_HTTP__ENABLED": "false",
                                      "GOE2MQTT_HTTP__CHARGER_METRICS": "none"})  # fmt: skip
    assert (settings.http.listen, settings.http.enabled) == ("[::1]:9100", False)
    assert settings.http.charger_metrics == "none"


def test_the_token_comes_from_its_file_and_is_a_secret(tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text("web-secret-1\n")
    token.chmod(0o600)
    settings = parse_settings(raw(token_file=str(token)))
    assert settings.http.token is not None
    assert settings.http.token.get_secret_value() == "web-secret-1"
    assert "web-secret-1" in settings.secrets()  # masked in every log line
    assert "web-secret-1" not in repr(settings)
    token.chmod(0o644)
    with pytest.raises(ConfigError, match=r"^http\.token_file: .* readable or writable by oth"):
        parse_settings(raw(token_file=str(token)))
