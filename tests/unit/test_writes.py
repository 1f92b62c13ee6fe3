"""Writable entities: one declaration each, validated before any call (pure)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from goe2mqtt.catalogue import ENTITIES, ENTITIES_BY_KEY, SETTABLE, UNCONFIRMABLE, current_bounds
from goe2mqtt.commands.outcomes import unconfirmed_values
from goe2mqtt.commands.payloads import CommandError
from goe2mqtt.commands.services import SERVICES_BY_NAME, parse_command
from goe2mqtt.sim.simulator import SimulatedCharger

HOME11 = SimulatedCharger("012345", model_name="home11")
HOME11.plug_in()
STATUS = HOME11.status()


def plan(service: str, payload: str, status: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    command = parse_command(service, payload.encode())
    return command.service.plan(command.arguments, STATUS if status is None else status)


def refused(service: str, payload: str, status: dict[str, Any] | None = None) -> str:
    with pytest.raises(CommandError) as caught:
        plan(service, payload, status)
    return str(caught.value)


@pytest.mark.parametrize(
    ("service", "payload", "call"),
    [
        ("force_state", "neutral", {"frc": 0}),
        ("force_state", "ON", {"frc": 2}),
        ("force_state", "1", {"frc": 1}),
        ("force_state", '{"value": "off", "id": "x"}', {"frc": 1}),
        ("logic_mode", "next trip", {"lmo": 5}),
        ("logic_mode", "eco", {"lmo": 4}),
        ("energy_limit", "12.5", {"dwo": 12500}),
        ("energy_limit", "null", {"dwo": None}),
        ("energy_limit", "off", {"dwo": None}),
        ("energy_limit_active", "false", {"dwo": None}),
        ("next_trip_energy", "20", {"ate": 20000}),
        ("next_trip_time", "07:30", {"att": 27000}),
        ("next_trip_time", "23:59:59", {"att": 86399}),
        ("use_pv_surplus", "true", {"fup": True}),
        ("use_pv_surplus", "OFF", {"fup": False}),
        ("authentication_required", "true", {"acs": 1}),
        ("authentication_required", "false", {"acs": 0}),
        ("grid_target", "-150.5", {"pgt": -150.5}),
        ("cable_unlock", "always locked", {"ust": 2}),
        ("transaction", "Alice", {"trx": 1}),
        ("transaction", "bob", {"trx": 2}),
        ("transaction", "card_5", {"trx": 6}),
        ("transaction", "no_card", {"trx": 0}),
        ("transaction", "none", {"trx": None}),
        ("transaction", "no_transaction", {"trx": None}),
        ("max_current", "16", {"ama": 16}),
        ("temporary_current_limit", "10", {"tcl": 10}),
        ("temporary_current_limit", "null", {"tcl": None}),
        ("restart", "PRESS", {"rst": 1}),
        ("unlock_on_power_outage", "true", {"upo": True}),
    ],
)
def test_entity_commands_take_values_as_their_state_shows_them(
    service: str, payload: str, call: dict[str, Any]
) -> None:
    assert plan(service, payload) == [call]


@pytest.mark.parametrize(
    ("service", "payload", "reason"),
    [
        ("force_state", "maybe", "force_state must be one of neutral, off, on; got 'maybe'"),
        ("force_state", "7", "must be one of neutral, off, on"),
        ("energy_limit", "0", "between 0.1 and 1000 kWh, got 0"),
        ("energy_limit", '"lots"', "energy_limit must be a number, or null (no limit)"),
        ("energy_limit_active", "true", "set energy_limit to a value to turn the limit on"),
        ("next_trip_time", "25:00", "HH:MM"),
        ("use_pv_surplus", "2", "on or off"),
        ("max_current", "20", "between 6 and 16 A (11 kW variant), got 20"),
        ("max_current", "10.5", "max_current must be a whole number, got 10.5"),
        # A current is an integer, as change_charging_power's: these were sent as 6 and 8 A.
        ("max_current", "6.0000000001", "max_current must be a whole number"),
        ("temporary_current_limit", "7.999999999", "must be a whole number"),
        ("min_current", '"6.0000000001 "', "must be a whole number"),
        # Text is a number as people write it, not as Python's float() reads it: 1_5 was
        # 15 kWh, and digits of other scripts were read too.
        ("energy_limit", '"1_5"', "energy_limit must be a number"),
        ("max_current", '"\u0661\u0666"', "max_current must be a number"),
        ("grid_target", "1e9", "between -100000 and 100000 W"),
        ("grid_target", "NaN", "must be a number"),
        ("transaction", "Carol", "must be one of no_transaction, no_card, Alice, Bob, card_2"),
        ("next_trip_time", "", "value is required"),
    ],
)
def test_entity_commands_refuse_bad_values_with_a_reason(
    service: str, payload: str, reason: str
) -> None:
    assert reason in refused(service, payload)


def test_the_current_ceiling_follows_cable_adapter_and_temperature() -> None:
    status = {**STATUS, "ama": 32, "cbl": 20, "adi": False, "amt": 32}
    assert current_bounds(status) == (6, 20, "cable limit 20 A")
    assert "between 6 and 20 A (cable limit 20 A), got 25" in refused(
        "change_charging_power", "25", status
    )
    assert current_bounds({**status, "adi": True}) == (6, 16, "16 A adapter 16 A")
    assert current_bounds({**status, "amt": 10}) == (6, 10, "temperature limit 10 A")
    assert plan("change_charging_power", "20", status) == [{"amp": 20}]
    # A limit below the minimum leaves no room: the range collapses, nothing above passes.
    assert current_bounds({**status, "amt": 0})[:2] == (6, 6)
    assert current_bounds({})[:2] == (6, 32)  # nothing known: go-e's hardware range


def test_a_limit_said_as_a_whole_float_is_the_limit_the_catalogue_shows() -> None:
    """The catalogue reads cbl 20.0 as 20 (Home Assistant's Cable current limit shows
    20); the command's ceiling took only an int, so the cable's limit was not one and a
    set of 25 A went to a 20 A cable."""
    status = {**STATUS, "ama": 32.0, "cbl": 20.0, "adi": False, "amt": 32.0}
    assert current_bounds(status) == (6, 20, "cable limit 20 A")
    assert "between 6 and 20 A (cable limit 20 A), got 25" in refused(
        "change_charging_power", "25", status
    )
    assert current_bounds({**status, "cbl": 20.5})[:2] == (6, 32)  # no current limit is 20.5
    assert current_bounds({**status, "cbl": True})[:2] == (6, 32)


def test_generic_set_takes_go_e_keys_in_go_e_units_validated_like_their_entity() -> None:
    assert plan("set", '{"frc": 0, "dwo": 10000, "att": 3600}') == [
        {"frc": 0, "dwo": 10000, "att": 3600}
    ]
    assert plan("set", '{"lmo": "eco", "trx": null}') == [{"lmo": 4, "trx": None}]
    assert "dwo must be between 100 and 1000000 Wh, got 5" in refused("set", '{"dwo": 5}')
    assert "unknown parameter 'nrg'" in refused("set", '{"nrg": [1]}')
    assert "unknown parameter 'ids'" in refused("set", '{"ids": {"pGrid": 1}}')  # the feed's
    assert "at least one key" in refused("set", "{}")
    assert "needs a JSON object" in refused("set", "5")


def test_every_writable_entity_has_a_command_and_every_number_a_finite_range() -> None:
    for entity in ENTITIES:
        if entity.write is None:
            continue
        assert entity.command_service in SERVICES_BY_NAME or entity.command_service in (
            "pv_grid",
            "pv_solar",
            "pv_battery",
        ), entity.key
        if entity.write.kind == "number":
            config = json.dumps(
                entity.write.bounds(STATUS)
                if entity.write.bounds
                else (entity.write.minimum, entity.write.maximum),
                allow_nan=False,
            )
            assert "null" not in config, entity.key
        assert entity.entity_category is not None or entity.key in (
            "force_state", "charging_current"
        ), f"{entity.key}: a control without a category crowds the device page"  # fmt: skip
    assert set(SETTABLE) >= {"frc", "lmo", "dwo", "ust", "acs", "trx", "ama", "tcl", "fup"}


def test_read_back_tolerates_float32_and_skips_keys_the_charger_does_not_report() -> None:
    assert unconfirmed_values({"pgt": 123.4}, {"pgt": 123.40000152587891}) == {}
    assert unconfirmed_values({"dwo": 10000}, {"dwo": 10000.0}) == {}
    assert unconfirmed_values({"dwo": None}, {"dwo": None}) == {}
    assert unconfirmed_values({"fup": True}, {"fup": 1}) != {}  # a bool is not a number
    assert unconfirmed_values({"rst": 1}, {}) == {}
    assert {"rst"} <= UNCONFIRMABLE
    assert ENTITIES_BY_KEY["restart"].write is not None
