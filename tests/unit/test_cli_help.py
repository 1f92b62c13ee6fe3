"""The command line's help says what the commands do."""

from __future__ import annotations

import argparse
from pathlib import Path

from goe2mqtt.bridge.health import check_health
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
