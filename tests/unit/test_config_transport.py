"""The transport keys: transport, password(_file), mqtt_prefix, config_interval."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from goe2mqtt.config.problems import ConfigError
from goe2mqtt.config.settings import parse_settings

PASSWORD = "wallbox-DO-NOT-LEAK-51"


def charger(**keys: Any) -> dict[str, Any]:
    return {"mqtt": {"host": "127.0.0.1"}, "chargers": [{"name": "garage", **keys}]}


LOCAL = {"host": "192.168.1.20"}
CLOUD = {"serial": "012345", "token": "tok-1234"}


@pytest.mark.parametrize(
    ("keys", "resolved", "url"),
    [
        ({**LOCAL}, "poll", None),
        ({**LOCAL, "password": PASSWORD}, "websocket", "ws://192.168.1.20/ws"),
        ({**CLOUD, "password": PASSWORD}, "poll", None),  # auto: the cloud's is experimental
        ({**CLOUD, "password": PASSWORD, "transport": "websocket"}, "websocket",
         "wss://app.v3.go-e.io/012345"),
        ({"serial": "012345", "transport": "mqtt"}, "mqtt", None),
    ],
)  # fmt: skip
def test_auto_and_explicit_transports(keys: dict[str, Any], resolved: str, url: str | None) -> None:
    settings = parse_settings(charger(**keys)).chargers[0]
    assert settings.resolved_transport == resolved
    if url is not None:
        assert settings.websocket_url == url
    assert settings.mqtt_prefix == "go-eCharger"
    assert settings.config_interval == 300.0


@pytest.mark.parametrize(
    ("keys", "message"),
    [
        ({**LOCAL, "transport": "websocket"}, r"password: transport websocket needs"),
        ({**LOCAL, "transport": "poll", "password": PASSWORD}, r"password: transport poll"),
        ({"transport": "mqtt"}, r"serial: transport mqtt needs it"),
        ({**CLOUD, "transport": "mqtt"}, r"token: transport mqtt does not use it"),
        ({**LOCAL, "serial": "012345", "transport": "mqtt"}, r"host: transport mqtt"),
        ({**LOCAL, "transport": "telepathy"}, r"transport: "),
        ({**LOCAL, "password": "pw\nx"}, r"password: contains a control character"),
        ({"serial": "012345", "transport": "mqtt", "mqtt_prefix": "a/+/b"}, r"mqtt_prefix"),
        ({"serial": "012345", "transport": "mqtt", "mqtt_prefix": "//a"}, r"mqtt_prefix"),
        ({**LOCAL, "config_interval": 0}, r"config_interval"),
    ],
)
def test_bad_transport_settings_name_the_key(keys: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=r"chargers\[0\]\." + message) as caught:
        parse_settings(charger(**keys))
    assert PASSWORD not in str(caught.value)


def test_password_file_is_a_secret_file(tmp_path: Path) -> None:
    secret = tmp_path / "password"
    secret.write_text(PASSWORD + "\n")
    secret.chmod(0o600)
    settings = parse_settings(charger(**LOCAL, password_file=str(secret)))
    garage = settings.chargers[0]
    assert garage.password is not None
    assert garage.password.get_secret_value() == PASSWORD
    assert PASSWORD in settings.secrets()  # the log redactor masks it
    assert PASSWORD not in repr(settings)
    os.chmod(secret, 0o644)
    with pytest.raises(ConfigError, match=r"password_file: .* readable or writable by other users"):
        parse_settings(charger(**LOCAL, password_file=str(secret)))
    with pytest.raises(ConfigError, match=r"password_file: give either password or"):
        parse_settings(charger(**LOCAL, password=PASSWORD, password_file=str(secret)))


def test_a_leading_slash_in_mqtt_prefix_is_the_old_firmwares_form() -> None:
    settings = parse_settings(charger(serial="012345", transport="mqtt",
                                      mqtt_prefix="/go-eCharger")).chargers[0]  # fmt: skip
    assert settings.mqtt_prefix == "/go-eCharger"
