"""config/schema, the validation that replaced pydantic: what the sections rely on."""

from __future__ import annotations

from typing import Any

import pytest

from goe2mqtt.config.problems import ConfigError
from goe2mqtt.config.schema import dump, given, replace, validate
from goe2mqtt.config.settings import Settings, parse_settings
from goe2mqtt.config.site import SiteChargerSettings
from goe2mqtt.config.tariff import TariffSettings
from goe2mqtt.config.values import Invalid, SecretStr

SECRET = "tok-DO-NOT-LEAK-8842"
PASSWORD = "pw-DO-NOT-LEAK-5521"


def config(**extra: Any) -> dict[str, Any]:
    return {
        "mqtt": {"host": "127.0.0.1", "password": PASSWORD},
        "chargers": [{"name": "garage", "serial": "012345", "token": SECRET}],
        **extra,
    }


def test_a_validated_section_is_frozen() -> None:
    settings = parse_settings(config())
    with pytest.raises(AttributeError, match="frozen"):
        settings.mqtt.port = 1884  # type: ignore[misc]
    with pytest.raises(AttributeError, match="frozen"):
        del settings.chargers[0].name
    assert settings.mqtt.port == 1883


def test_secrets_are_never_shown_but_can_be_read() -> None:
    settings = parse_settings(config())
    shown = f"{settings!r} {settings} {dump(settings)}"
    assert SECRET not in shown
    assert PASSWORD not in shown
    assert settings.chargers[0].token == SecretStr(SECRET)
    assert settings.chargers[0].token is not None
    assert settings.chargers[0].token.get_secret_value() == SECRET
    assert sorted(settings.secrets()) == sorted([SECRET, PASSWORD])


def test_a_section_dumped_validates_back_to_an_equal_one() -> None:
    """What test_websocket_hostile builds a fleet from: its keys as the file spells
    them (a time-of-use row's from and to), lists for tuples, no None."""
    tou = [
        {"days": "daily", "from": "07:00", "to": "22:00", "price": 0.3},
        {"days": "daily", "from": "22:00", "to": "07:00", "price": 0.2},
    ]
    charger = {"name": "garage", "host": "192.168.1.20", "tariff": {"time_of_use": tou}}
    settings = parse_settings({"mqtt": {"host": "h"}, "chargers": [charger]})
    dumped = dump(settings.chargers[0], exclude_none=True)
    assert dumped["tariff"]["time_of_use"][1] == {
        "days": "daily",
        "from": "22:00",
        "to": "07:00",
        "price": 0.2,
    }
    again = parse_settings({"mqtt": {"host": "h"}, "chargers": [dumped]})
    assert again.chargers[0] == settings.chargers[0]
    assert hash(again.chargers[0]) == hash(settings.chargers[0])


def test_replace_changes_keys_without_losing_what_the_checks_set() -> None:
    settings = parse_settings(config(allow_insecure_secrets=False), warnings=["loader's"])
    assert "http" not in given(settings)
    assert {"mqtt", "chargers", "allow_insecure_secrets"} <= given(settings)
    changed = replace(settings, health_file="/run/health")
    assert changed.health_file == "/run/health"
    assert "health_file" in given(changed)
    assert changed.warnings == settings.warnings == ("loader's",)
    assert settings.health_file is None


def test_types_are_strict_but_an_int_is_a_float() -> None:
    assert TariffSettings(price_per_kwh=1).price_per_kwh == 1.0
    assert isinstance(TariffSettings(price_per_kwh=1).price_per_kwh, float)
    with pytest.raises(Invalid) as caught:
        SiteChargerSettings(name="garage", priority=True)
    assert [(p.loc, p.kind) for p in caught.value.problems] == [(("priority",), "int_type")]


def test_every_problem_of_every_section_is_said_at_once() -> None:
    raw = {
        "mqtt": {"host": "h", "port": "1883", "keepalive": 1},
        "chargers": [
            {"name": "garage", "serial": "012345", "token": "t"},
            {"name": "Car Port", "serial": 12345, "scan_intervall": 5},
        ],
        "sessions": {"keep_days": 0},
    }
    with pytest.raises(ConfigError) as caught:
        parse_settings(raw)
    assert caught.value.problems == (
        "mqtt.port: must be a whole number, not text (no quotes, units or commas: 2000)",
        "mqtt.keepalive: Input should be greater than or equal to 5",
        "chargers[1].name: use only a-z, 0-9, _ and - (it becomes an MQTT topic level)",
        'chargers[1].serial: must be the 6-digit serial as a quoted string, e.g. "012345"',
        "chargers[1].scan_intervall: unknown key; did you mean scan_interval?",
        "sessions.keep_days: Input should be greater than or equal to 1",
    )


def test_an_unknown_key_is_matched_against_the_keys_as_the_file_spells_them() -> None:
    """A time-of-use row's keys are from and to (its fields start and end)."""
    row = {"form": "07:00", "to": "07:00", "price": 0.3}
    with pytest.raises(ConfigError) as caught:
        parse_settings(config(tariff={"time_of_use": [row]}))
    assert "tariff.time_of_use[0].form: unknown key; did you mean from?" in caught.value.problems


def test_validate_hands_its_context_to_the_checks() -> None:
    context: dict[str, Any] = {"warnings": []}
    raw = {"name": "garage", "serial": "012345", "token": "tok-3f9c2a7e",
           "api_url": "http://charger.lan"}  # fmt: skip
    raw["allow_insecure"] = True
    charger = validate(Settings, {"mqtt": {"host": "h"}, "chargers": [raw]}, context)
    assert charger.chargers[0].allow_insecure
    assert context["warnings"] == [
        "charger garage: api_url: http://charger.lan is plain http: the token would travel in"
        " clear text (use https; allowed by allow_insecure: true)"
    ]
