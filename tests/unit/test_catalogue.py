"""The catalogue's value mapping: raw go-e status -> states (pure)."""

from __future__ import annotations

from typing import Any

import pytest

from goe2mqtt.catalogue import (
    ENTITIES,
    ENTITIES_BY_KEY,
    STATUS_KEYS,
    format_state,
    read_states,
)
from goe2mqtt.sim.simulator import SimulatedCharger

CHARGING: dict[str, Any] = {
    "car": 2,
    "alw": True,
    "amp": 16,
    "mca": 6,
    "ama": 32,
    "wh": 12345.678,
    "eto": 7654321,
    "psm": 2,
    "pnp": 3,
    "acs": 1,
    "fna": "Garage",
    "frc": 2,
    "trx": 0,
    "err": 0,
    "modelStatus": 3,
    "nrg": [230, 231, 229, 0, 16.1, 16.2, 16.3, 3703, 3742, 3733, 0, 11178, 100, 100, 100, 0],
    "tma": [31.25, 28.0],
    "rssi": -58,
    "fwv": "60.4",
}

INTEGRATION_SENSORS = (
    "car_status",
    "charging_allowed",
    "charger_max_current",
    "energy_since_car_connected",
    "energy_total",
    "phase_switch_mode",
    "phases_number_connected",
    "charger_access",
    "name",
)


def test_the_nine_sensors_users_know_are_there() -> None:
    for key in INTEGRATION_SENSORS:
        assert ENTITIES_BY_KEY[key].value is not None, key


def test_states_from_a_charging_status() -> None:
    states, problems = read_states(CHARGING)
    assert problems == {}
    assert states["car_status"] == "charging"
    assert states["charging_allowed"] is True
    assert states["charger_max_current"] == 16
    assert states["energy_since_car_connected"] == 12.35  # Wh / 1000, 2 decimals
    assert states["energy_total"] == 7654.32
    assert states["phase_switch_mode"] == "3_phases"
    assert states["phases_number_connected"] == 3
    assert states["charger_access"] == "auth_required"
    assert states["name"] == "Garage"
    # API v2 nrg is in V, A, W as it is: no v1 scaling by 10 / 100.
    assert states["charging_power"] == 11178
    assert states["current_l2"] == 16.2
    assert states["voltage_l3"] == 229
    assert states["power_l1"] == 3703
    assert states["temperature"] == 31.2
    assert states["wifi_signal"] == -58
    assert states["transaction"] == "no_card"
    assert states["charging_reason"] == "force_state_on"
    assert states["car_connected"] is True
    assert states["charging_current"] == 16
    assert states["phase_mode"] == "3_phases"


def test_charger_max_current_is_zero_while_charging_is_not_allowed() -> None:
    states, _ = read_states({**CHARGING, "alw": False})
    assert states["charger_max_current"] == 0
    assert states["charging_current"] == 16  # the setting itself is unchanged


@pytest.mark.parametrize(
    ("car", "state"),
    [
        (0, "unknown"),
        (1, "idle"),
        (3, "waiting_for_car"),
        (4, "complete"),
        (5, "error"),
        (6, "initializing"),
        (None, None),
    ],
)
def test_every_car_state_has_its_own_name(car: int | None, state: str | None) -> None:
    states, problems = read_states({**CHARGING, "car": car})
    assert states["car_status"] == state
    assert problems == {}


def test_unknown_enum_code_is_unknown_and_reported() -> None:
    states, problems = read_states({**CHARGING, "car": 9})
    assert states["car_status"] is None
    assert "unknown code 9" in problems["car_status"]


def test_growing_code_lists_show_new_codes_instead_of_failing() -> None:
    states, problems = read_states({**CHARGING, "err": 42, "modelStatus": 99})
    assert states["error"] == "code_42"
    assert states["charging_reason"] == "code_99"
    assert problems == {}


@pytest.mark.parametrize(
    "broken",
    [
        {"eto": "lots"},
        {"nrg": "x"},
        {"nrg": [1, 2]},
        {"alw": 1},
        {"amp": 16.5},
        {"tma": [None]},
        {"wh": float("nan")},
        {"fna": 7},
        {"trx": "card"},
    ],
)
def test_garbage_values_make_that_entity_unknown_not_the_mapping_fail(
    broken: dict[str, Any],
) -> None:
    states, problems = read_states({**CHARGING, **broken})
    broken_key = next(iter(broken))
    # Unknown because of the broken value (the ledger's added keys are unknown anyway).
    known_before = {k for k, v in read_states(CHARGING)[0].items() if v is not None}
    affected = {k for k, v in states.items() if v is None and k in known_before}
    assert affected, "some entity must turn unknown"
    for key in affected:
        entity = ENTITIES_BY_KEY[key]
        assert broken_key in entity.reads or key in problems
    if broken != {"tma": [None]}:  # a null element is a legitimate unknown
        assert all(broken_key in reason.split(":")[0] for reason in problems.values())


def test_missing_keys_are_unknown() -> None:
    # Keys the charger reports (even as null) but whose values are missing: unknown,
    # and each says why. Keys it does not report at all: no entity (see below).
    keys = frozenset(STATUS_KEYS)
    states, problems = read_states({}, keys)
    charger_entities = {
        e.key for e in ENTITIES
        if e.value is not None and e.present(keys) and not e.reads[0].startswith("@")
    }  # fmt: skip
    assert all(states[key] is None for key in charger_entities)
    assert states["pv_feed"] == "off"  # the bridge's own: nothing fed
    # Card slots are optional in either generation's keys: absent means no card.
    cards = {key for key in charger_entities if key.startswith("card_")}
    assert set(problems) == charger_entities - cards


def test_entities_of_keys_a_charger_does_not_report_are_left_out() -> None:
    states, problems = read_states({"car": 2, "amp": 16})
    assert {"car_status", "car_connected", "charging_current"} <= set(states)
    assert "unlock_on_power_outage" not in states
    assert not problems


def test_status_filter_covers_every_key_the_catalogue_reads() -> None:
    for entity in ENTITIES:
        assert {key for key in entity.reads if not key.startswith("@")} <= STATUS_KEYS
    assert {"mca", "ama", "car", "cbl", "adi", "amt", "var"} <= STATUS_KEYS
    assert not any(key.startswith("@") for key in STATUS_KEYS)  # the bridge's own


def test_simulator_status_maps_without_problems() -> None:
    charger = SimulatedCharger("012345")
    charger.plug_in()
    _, problems = read_states(charger.status(STATUS_KEYS))
    assert problems == {}


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (None, "null"),
        (True, "true"),
        (False, "false"),
        (16, "16"),
        (12.5, "12.5"),
        (1234.0, "1234"),
        (0.1 + 0.2, "0.30000000000000004"),
        ("auto", "auto"),
    ],
)
def test_format_state(value: Any, text: str) -> None:
    assert format_state(value) == text


def test_entity_keys_are_unique_and_topic_safe() -> None:
    keys = [e.key for e in ENTITIES]
    assert len(keys) == len(set(keys))
    assert all(k.replace("_", "").isalnum() and k.islower() for k in keys)


def test_only_the_integrations_primary_entities_go_without_a_category() -> None:
    # A device page of 100+ entities stays readable: everything added since the
    # integration's floor is config or diagnostic. force_state (a diagnostic sensor
    # before) is now the main "charge now / stop / let the charger decide" control.
    # phase_switch_mode, the seed's sensor, is a disabled diagnostic: the Phase mode
    # select shows the same, and a new user should see one.
    primary = {
        "car_status", "charging_allowed", "charger_max_current", "car_connected",
        "force_state", "wallbox_control", "charging_current",
        "phases_number_connected", "energy_since_car_connected", "energy_total",
        "charging_power", "charger_access", "error",
        *(f"{kind}_l{n}" for kind in ("power", "current", "voltage") for n in (1, 2, 3)),
    }  # fmt: skip
    assert {e.key for e in ENTITIES if e.entity_category is None} == primary


def test_the_phase_mode_is_one_entity_for_a_new_user() -> None:
    readers = [e for e in ENTITIES if "psm" in e.reads and e.enabled_by_default]
    assert [e.key for e in readers] == ["phase_mode"]
