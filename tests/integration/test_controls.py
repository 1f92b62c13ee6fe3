"""The whole charger through MQTT: entity commands, the generic set and the PV feed.

A real broker, the bridge and the simulator over HTTP: every write is validated,
sent, read back and answered on the result topic.
"""

from __future__ import annotations

import asyncio
import json

import pytest
import structlog.testing

from ..conftest import MqttProbe, RunningBridge, Setup, until


async def test_entity_commands_are_sent_and_confirmed_in_go_e_units(
    setup: Setup, probe: MqttProbe, bridge: RunningBridge
) -> None:
    garage = setup.charger("garage")
    garage.plug_in()
    result = await probe.command(setup.cmd("garage", "energy_limit"), '{"value": 12.5, "id": 1}')
    assert result == {"service": "energy_limit", "ok": True, "id": 1, "applied": [{"dwo": 12500}]}
    assert garage.settings["dwo"] == 12500
    await probe.wait_for(setup.state("garage", "energy_limit"), lambda m: m.text == "12.5")
    await probe.wait_for(setup.state("garage", "energy_limit_active"), lambda m: m.text == "true")

    result = await probe.command(setup.cmd("garage", "energy_limit_active"), "false")
    assert result["ok"] is True
    assert result["applied"] == [{"dwo": None}]
    await probe.wait_for(setup.state("garage", "energy_limit"), lambda m: m.text == "null")

    for service, payload, call in [
        ("force_state", "neutral", {"frc": 0}),
        ("logic_mode", "eco", {"lmo": 4}),
        ("use_pv_surplus", "true", {"fup": True}),
        ("next_trip_time", "06:45", {"att": 24300}),
        ("grid_target", "-123.4", {"pgt": -123.4}),
        ("cable_unlock", "auto_unlock", {"ust": 1}),
        ("transaction", "Bob", {"trx": 2}),
    ]:
        result = await probe.command(setup.cmd("garage", service), payload)
        assert result["ok"] is True, result
        assert result["applied"] == [call]
    assert (garage.frc, garage.trx) == (0, 2)
    assert garage.settings["pgt"] == -123.4
    await probe.wait_for(setup.state("garage", "transaction"), lambda m: m.text == "Bob")
    await probe.wait_for(setup.state("garage", "next_trip_time"), lambda m: m.text == "06:45")


async def test_generic_set_writes_several_keys_in_one_call_and_refuses_others(
    setup: Setup, probe: MqttProbe, bridge: RunningBridge
) -> None:
    garage = setup.charger("garage")
    result = await probe.command(setup.cmd("garage", "set"), '{"frc": 1, "lmo": 5, "ama": 20}')
    assert result["ok"] is True
    assert result["applied"] == [{"frc": 1, "lmo": 5, "ama": 20}]
    assert garage.set_calls[-1] == {"frc": 1, "lmo": 5, "ama": 20}  # one API call
    before = len(garage.set_calls)
    for payload, reason in [
        ('{"nrg": [1]}', "unknown parameter 'nrg'"),
        ('{"fna": "x"}', "unknown parameter 'fna'"),
        ('{"amp": 25}', "between 6 and 20 A (max current setting 20 A), got 25"),
        ('{"lmo": 9}', "lmo must be one of default, eco, next_trip"),
    ]:
        result = await probe.command(setup.cmd("garage", "set"), payload)
        assert result["ok"] is False
        assert reason in result["error"]
    assert len(garage.set_calls) == before  # nothing refused reached the charger


async def test_a_restart_is_sent_but_said_to_be_unconfirmable(
    setup: Setup, probe: MqttProbe, bridge: RunningBridge
) -> None:
    garage = setup.charger("garage")
    reboots = garage.reboots
    result = await probe.command(setup.cmd("garage", "restart"), "PRESS")
    assert result == {"service": "restart", "ok": True, "applied": [{"rst": 1}],
                      "unconfirmable": ["rst"]}  # fmt: skip
    assert garage.reboots == reboots + 1
    await probe.wait_for(setup.state("garage", "reboots"), lambda m: m.text == str(reboots + 1))


async def test_pv_readings_over_mqtt_feed_the_charger_and_bad_ones_get_a_reason_once_logged(
    setup: Setup, probe: MqttProbe, bridge: RunningBridge
) -> None:
    garage = setup.charger("garage")
    mark = probe.mark()
    await probe.publish(setup.cmd("garage", "pv_feed"), '{"pGrid": -900, "pPv": 2800}')
    await until(lambda: garage.ids == {"pGrid": -900.0, "pPv": 2800.0}, "the charger fed")
    await probe.wait_for(setup.state("garage", "pv_feed"), lambda m: m.text == "confirmed")
    await probe.wait_for(setup.state("garage", "grid_power"), lambda m: m.text == "-900")
    await probe.publish(setup.cmd("garage", "pv_grid"), "-950")
    await until(lambda: (garage.ids or {}).get("pGrid") == -950.0, "a plain grid reading")
    # Good readings get no result: a feed every second would flood the result topic.
    assert probe.since(mark, setup.topics.result("garage")) == []

    with structlog.testing.capture_logs() as logs:
        for _ in range(3):
            result = await probe.command(setup.cmd("garage", "pv_solar"), "-5")
            assert result["ok"] is False
            assert "pPv must be between 0 and 1000000 W" in result["error"]
    warnings = [e for e in logs if e["event"] == "command_rejected" and e["log_level"] == "warning"]
    assert len(warnings) == 1  # the same refusal again and again: logged once a minute


@pytest.mark.parametrize(
    ("service", "payload", "reason"),
    [
        ("energy_limit", "0", "energy_limit must be between 0.1 and 1000 kWh, got 0"),
        ("force_state", "maybe", "force_state must be one of neutral, off, on"),
        ("next_trip_time", "7 o'clock", "next_trip_time must be a time of day as HH:MM"),
        ("pv_feed", '{"pPv": 1}', "pv_feed: pGrid is required"),
    ],
)
async def test_bad_values_get_their_reason_and_no_api_call(
    setup: Setup,
    probe: MqttProbe,
    bridge: RunningBridge,
    service: str,
    payload: str,
    reason: str,
) -> None:
    garage = setup.charger("garage")
    result = await probe.command(setup.cmd("garage", service), payload)
    assert result["ok"] is False
    assert reason in result["error"]
    await asyncio.sleep(0.5)
    assert garage.set_calls == []
    assert json.loads(json.dumps(result)) == result
