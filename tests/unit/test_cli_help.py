"""The command line's help says what the commands do."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from goe2mqtt.bridge.health import check_health
from goe2mqtt.cli import main
from goe2mqtt.cli.parser import command_line


def _help(command: str) -> str:
    parser = command_line()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return str(sub.choices[command].format_help())


def test_the_summary_choices_read_as_the_two_they_are() -> None:
    """argparse joins choices with commas: month,card and month,charger read as four."""
    text = _help("sessions")
    assert "{month,card,month,charger}" not in text
    assert "month,card" in text
    assert "month,charger" in text
    args = command_line().parse_args(["sessions", "--summary", "month,charger"])
    assert args.summary == "month,charger"


def test_simulate_help_says_which_broker_the_meter_and_chargers_use_by_default() -> None:
    """`simulate --house home/meter` without --broker published the meter to the broker on
    1883 - one the user may not have meant (the README always gives --broker) - while the
    help named --broker for --mode mqtt only, and no default."""
    text = " ".join(_help("simulate").split())
    broker = text[text.rindex("--broker BROKER") :]
    assert "--house" in broker.split("--charger")[0]
    assert "default 127.0.0.1:1883" in broker.split("--charger")[0]


@pytest.mark.parametrize("options", [["--mqtt-host", "broker.lan"], ["--mqtt-port", "1883"]])
def test_demo_house_refuses_a_broker_it_would_not_use(
    options: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    """`demo --house --mqtt-host broker.lan` ran on its private broker all the same: the
    user's broker saw nothing, and nothing said why."""
    assert main(["demo", "--house", *options]) == 2
    assert capsys.readouterr().err == (
        "goe2mqtt demo: --house runs on a private broker, without --mqtt-host and"
        " --mqtt-port; for a site against your broker: goe2mqtt simulate --house TOPIC"
        " --broker HOST:PORT\n"
    )


def test_healthcheck_help_says_what_an_offline_charger_does(tmp_path: Path) -> None:
    """An offline charger is the charger's problem: the check still passes."""
    health = tmp_path / "health.json"
    health.write_text('{"mqtt_connected": true, "chargers": {"garage": {"online": false}}}')
    healthy, why = check_health(health)
    assert healthy
    assert "offline: garage" in why
    text = " ".join(_help("healthcheck").split())
    assert "the chargers are online" not in text
    assert "an offline charger is reported" in text


def test_healthcheck_names_the_config_it_could_not_read_or_that_has_no_health_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`healthcheck -c /etc/goe2mqt/config.yaml` (a typo) answered "give ... a config
    (--config) with health_file": the config the user gave was silently skipped."""
    from goe2mqtt.cli import main

    monkeypatch.delenv("GOE2MQTT_HEALTH_FILE", raising=False)
    missing = tmp_path / "typo" / "config.yaml"
    assert main(["healthcheck", "--config", str(missing)]) == 2
    said = capsys.readouterr().err
    assert f"no config file {missing}" in said
    config = tmp_path / "config.yaml"
    config.write_text("mqtt: {host: 127.0.0.1}\n")
    assert main(["healthcheck", "--config", str(config)]) == 2
    assert f"{config} sets no health_file" in capsys.readouterr().err


def test_check_config_says_which_chargers_this_shard_serves(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Every shard is given the whole list: 'OK (3 charger(s): a, b, c)' in each of two
    instances said nothing of which of them each one polls."""
    from goe2mqtt.cli import main

    monkeypatch.setenv("HOSTNAME", "goe2mqtt-1")
    chargers = "".join(
        f"  - {{name: {name}, serial: '{serial}', token: t}}\n"
        for name, serial in (("a", "012345"), ("b", "067890"), ("c", "012347"))
    )
    config = tmp_path / "config.yaml"
    config.write_text(
        "mqtt: {host: 127.0.0.1, client_id: 'g-{shard}'}\nshard: {count: 2}\n"
        f"chargers:\n{chargers}"
    )
    assert main(["check-config", "--config", str(config)]) == 0
    said = capsys.readouterr().out
    assert said.strip().endswith(
        "OK (3 charger(s): a, b, c; shard 1 of 2 (index from the host name) serves 2: a, c)"
    ), said
