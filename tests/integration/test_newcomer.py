"""A newcomer's first hour: honest config checks, a health check that reads the config,
help for every option, and a debug log that shows what the bridge does."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path
from typing import Any

import pytest
import structlog
import yaml

from goe2mqtt.cli import main
from goe2mqtt.cli.parser import command_line
from goe2mqtt.config.settings import parse_settings
from goe2mqtt.sim.broker import MosquittoBroker, free_port
from goe2mqtt.sim.charger_mqtt import MqttCharger
from goe2mqtt.sim.simulator import Simulator

from ..conftest import (
    TOKEN,
    MqttProbe,
    RunningBridge,
    Setup,
    cancel,
    make_settings,
    until_health_file_connected,
)


async def _check_config(config: Path, *extra: str) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "goe2mqtt", "check-config", "--config", str(config), *extra,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    stdout, stderr = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode is not None
    return process.returncode, stdout.decode(), stderr.decode()


async def test_check_config_connect_says_plainly_what_works_and_what_does_not(
    broker: MosquittoBroker, simulator: Simulator, tmp_path: Path
) -> None:
    raw: dict[str, Any] = make_settings(broker, simulator, chargers=("garage", "carport"))
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(raw))
    code, out, err = await _check_config(config, "--connect")
    assert code == 0, out + err
    lines = out.splitlines()
    assert lines[1] == f"OK   MQTT broker {broker.host}:{broker.port}: connected (MQTT 5)"
    assert "OK   charger garage (cloud, serial 012345): answers: go-eCharger_V4" in out

    raw["chargers"][0]["token"] = "wrong-token-1"
    raw["chargers"][1]["serial"] = "099999"  # a typo: the cloud knows no such charger
    raw["chargers"][1]["api_url"] = simulator.url_for("099999")
    raw["mqtt"]["port"] = free_port()  # nothing listens there
    config.write_text(yaml.safe_dump(raw))
    code, out, err = await _check_config(config, "--connect")
    assert code == 1
    port = raw["mqtt"]["port"]
    assert (
        f"FAIL MQTT broker {broker.host}:{port}: refused: nothing listens on that host and port"
        in out
    )
    assert "FAIL charger garage (cloud, serial 012345): token rejected (401)" in out
    assert "FAIL charger carport (cloud, serial 099999): charger offline" in out
    assert "wrong-token-1" not in out + err


async def test_check_config_tries_the_websocket_and_the_chargers_own_mqtt(
    broker: MosquittoBroker, simulator: Simulator, tmp_path: Path
) -> None:
    garage = simulator.charger("012345")
    garage.password, garage.hash_kind = "garage-pw", "bcrypt"
    raw: dict[str, Any] = make_settings(broker, simulator, chargers=("garage",), transport="local")
    raw["chargers"][0]["password"] = "garage-pw"
    raw["chargers"].append({"name": "carport", "serial": "067890", "transport": "mqtt"})
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(raw))
    wallbox = MqttCharger(simulator.charger("067890"), broker.host, broker.port, interval=0.2)
    publishing = asyncio.create_task(wallbox.run())
    try:
        code, out, err = await _check_config(config, "--connect")
        assert code == 0, out + err
        host = simulator.local_hosts["012345"]
        assert (
            f"OK   charger garage ({host}): websocket: go-eCharger_V4,"
            " firmware 60.4, serial 012345" in out
        )
        assert "OK   charger carport (its own MQTT, serial 067890): mqtt: " in out
        # Its own lines only: no log events of the transports it tried in between.
        assert "websocket_live" not in out + err, out + err

        raw["chargers"][0]["password"] = "not-the-password"
        config.write_text(yaml.safe_dump(raw))
        await cancel(publishing)  # aiomqtt may swallow one cancel
        code, out, err = await _check_config(config, "--connect")
        assert code == 1
        assert f"FAIL charger garage ({host}): polling (websocket: wrong password" in out
        assert (
            "FAIL charger carport (its own MQTT, serial 067890): none (mqtt: nothing heard on"
            " go-eCharger/067890/+ yet: is the charger's MQTT (mce) on" in out
        )
        assert "not-the-password" not in out + err
        assert "websocket_down" not in out + err, out + err
        assert all(line.startswith(("OK ", "FAIL ")) for line in out.splitlines()[1:]), out
    finally:
        await cancel(publishing)  # aiomqtt may swallow one cancel


async def test_check_config_fails_a_charger_heard_only_in_the_other_topic_form(
    broker: MosquittoBroker, simulator: Simulator, tmp_path: Path
) -> None:
    """Old firmware publishes /go-eCharger/...: the daemon does not serve that form
    unless mqtt_prefix says so, and check-config, which asks through the daemon's own
    transport, says so and names the setting (it used to pass: it heard either form)."""
    raw: dict[str, Any] = make_settings(broker, simulator, chargers=())
    raw["chargers"] = [{"name": "carport", "serial": "067890", "transport": "mqtt"}]
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(raw))
    wallbox = MqttCharger(
        simulator.charger("067890"), broker.host, broker.port, interval=0.2, leading_slash=True
    )
    publishing = asyncio.create_task(wallbox.run())
    try:
        code, out, err = await _check_config(config, "--connect")
    finally:
        await cancel(publishing)  # aiomqtt may swallow one cancel
    assert code == 1, out + err
    assert (
        "FAIL charger carport (its own MQTT, serial 067890): none (mqtt: nothing heard on"
        " go-eCharger/067890/+, only on /go-eCharger/067890/+: for firmware before 055.7"
        " give mqtt_prefix with that leading slash)" in out
    ), out


async def test_healthcheck_reads_the_health_file_from_the_config(
    broker: MosquittoBroker, simulator: Simulator, tmp_path: Path
) -> None:
    raw = make_settings(broker, simulator)
    raw["health_file"] = str(tmp_path / "health.json")
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(raw))
    running = RunningBridge(parse_settings(raw))
    await running.start()
    try:
        health = tmp_path / "health.json"
        await until_health_file_connected(health)
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "goe2mqtt", "healthcheck", "--config", str(config),
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
            env={"PATH": "/usr/bin:/bin"},  # no GOE2MQTT_HEALTH_FILE: the config says it
        )  # fmt: skip
        stdout, stderr = await process.communicate()
    finally:
        await running.stop()
    assert process.returncode == 0, stderr.decode()
    assert stdout.decode().startswith("healthy: ")


def _options(parser: argparse.ArgumentParser) -> dict[str, list[argparse.Action]]:
    found = {"goe2mqtt": [a for a in parser._actions if a.option_strings]}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                found[name] = [a for a in sub._actions if a.option_strings]
    return found


def _subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def test_every_option_is_described_and_offered_only_where_it_counts() -> None:
    options = _options(command_line())
    for command, actions in options.items():
        for action in actions:
            assert action.help, f"{command} {action.option_strings[0]} has no description"
    names = {command: {a.dest for a in actions} for command, actions in options.items()}
    assert "config" not in names["demo"] | names["simulate"]
    # Where something logs, its level can be chosen; healthcheck only prints a line.
    assert "log_level" in names["demo"] & names["check-config"] & names["simulate"]
    assert "log_level" not in names["healthcheck"] | names["entities"]
    for name, sub in _subcommands(command_line()).items():
        assert sub.description, f"{name} has no description"
    assert "connect" in names["check-config"]
    assert "config" in names["healthcheck"]


def test_the_example_serial_from_the_environment_needs_no_quotes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GOE2MQTT_MQTT__HOST", "127.0.0.1")
    monkeypatch.setenv("GOE2MQTT_MQTT__PORT", "1884")
    monkeypatch.setenv("GOE2MQTT_CHARGERS__0__NAME", "garage")
    monkeypatch.setenv("GOE2MQTT_CHARGERS__0__SERIAL", "012345")
    monkeypatch.setenv("GOE2MQTT_CHARGERS__0__TOKEN", TOKEN)
    assert main(["check-config", "--config", str(tmp_path / "none.yaml")]) == 0
    assert "OK (1 charger(s): garage)" in capsys.readouterr().out


@pytest.mark.parametrize("setup", [{"scan_interval": 60}], indirect=True)
async def test_debug_shows_each_poll_publish_batch_and_command_step(
    setup: Setup, probe: MqttProbe
) -> None:
    # Another test may have configured logging at info: debug, as --log-level debug does.
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(10))
    running = RunningBridge(setup.settings)
    try:
        with structlog.testing.capture_logs() as logs:
            await running.start()
            try:
                await probe.wait_text(setup.topics.availability("garage"), "online")
                result = await probe.command(setup.cmd("garage", "set_phase"), "1")
                assert result["ok"]
                await asyncio.sleep(0.3)
            finally:
                await running.stop()
    finally:
        structlog.reset_defaults()
    events = [e["event"] for e in logs]
    poll = next(e for e in logs if e["event"] == "poll" and e["charger"] == "garage")
    assert poll["ms"] >= 0
    assert "car_status" in poll["changed"]  # the first poll changes everything
    for step in ("command_queued", "command_started", "command_set", "command_read_back"):
        assert step in events, step
    assert "mqtt_batch_sent" in events
    assert json.dumps(next(e for e in logs if e["event"] == "command_set")["call"]) == (
        '{"psm": 1}'
    )


async def test_every_transport_says_refused_in_the_same_words(
    broker: MosquittoBroker, simulator: Simulator, tmp_path: Path
) -> None:
    """Nothing listens where a charger should be: the websocket, local HTTP and the broker
    all say "refused: nothing listens on ...", not a library's class name."""
    ws_port, http_port = free_port(), free_port()
    raw: dict[str, Any] = make_settings(broker, simulator, chargers=("garage",), transport="local")
    raw["chargers"][0].update(host=f"127.0.0.1:{ws_port}", password="garage-pw")
    raw["chargers"].append(
        {"name": "carport", "host": f"127.0.0.1:{http_port}", "transport": "poll"}
    )
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(raw))
    code, out, _err = await _check_config(config, "--connect")
    assert code == 1
    assert (
        f"FAIL charger garage (127.0.0.1:{ws_port}): polling (websocket: refused: nothing"
        f" listens on 127.0.0.1:{ws_port})" in out
    ), out
    assert (
        f"FAIL charger carport (127.0.0.1:{http_port}): refused: nothing listens on"
        f" 127.0.0.1:{http_port}" in out
    ), out
    assert "ClientConnector" not in out
    assert "Connect call failed" not in out
