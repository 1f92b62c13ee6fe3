"""Values and words (issue 27, item 14): a measured number within what a charger can
measure, a charger's text without control characters and within HA's 255 characters."""

from __future__ import annotations

import json
from typing import Any

import pytest

from goe2mqtt.catalogue import ENTITIES_BY_KEY, STATE_ENTITIES, Unreadable, read_states
from goe2mqtt.catalogue.facts import DeviceFacts
from goe2mqtt.catalogue.model import PLAUSIBLE
from goe2mqtt.catalogue.readers import transaction_choices
from goe2mqtt.util.text import MAX_STATE_LENGTH, clean_text


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        ("go-e Garage", "go-e Garage"),
        ("café Ünïcode 充电 🚗", "café Ünïcode 充电 🚗"),
        ("a\x00b\x1bc\x7fd", "abcd"),  # NUL, ESC, DEL
        ("\u202eevil\u202c", "evil"),  # right-to-left override, pop
        ("\u2066x\u2069\u200b\ufeff", "x"),  # isolates, zero-width space, BOM
        ("two\nlines\tand\u2028more", "two lines and more"),  # breaks still part words
        ("lone \ud800 surrogate", "lone  surrogate"),
        ("x" * 1000, "x" * MAX_STATE_LENGTH),
    ],
)
def test_clean_text(raw: str, clean: str) -> None:
    assert clean_text(raw) == clean


def test_every_measured_entity_has_a_plausible_range() -> None:
    measured = [e for e in STATE_ENTITIES if e.unit is not None]
    assert measured
    for entity in measured:
        assert entity.plausible or entity.unit in PLAUSIBLE, entity.key


def _status(**values: Any) -> dict[str, Any]:
    nrg = [230.0, 231.0, 229.0, 0.0, 16.0, 16.0, 16.0, 3680.0, 3696.0, 3664.0, 0.0,
           11040.0, 100, 100, 100, 0]  # fmt: skip
    return {"nrg": nrg, "tma": [24.5, 26.0], "fna": "Garage", "fwv": "60.1", **values}


@pytest.mark.parametrize(
    ("key", "index", "value"),
    [
        ("charging_power", 11, 1e308),
        ("charging_power", 11, -2e6),
        ("current_l1", 4, 1e4),
        ("voltage_l2", 1, 5000.0),
        ("power_factor_l1", 12, 1e9),
    ],
)
def test_a_number_beyond_what_a_charger_measures_is_unknown(
    key: str, index: int, value: float
) -> None:
    status = _status()
    status["nrg"][index] = value
    states, problems = read_states(status)
    assert states[key] is None
    assert "beyond what a charger measures" in problems[key]
    assert len(problems[key]) < 200  # never the 309 digits themselves
    assert states["voltage_l1"] == 230.0  # the rest of the array still reads
    with pytest.raises(Unreadable):
        ENTITIES_BY_KEY[key].state(status)


def test_temperatures_within_their_range_read_and_beyond_do_not() -> None:
    states, _ = read_states(_status(tma=[-40.0, 150.0]))
    assert (states["temperature"], states["temperature_2"]) == (-40.0, 150.0)
    states, problems = read_states(_status(tma=[-300.0, 1e6]))
    assert (states["temperature"], states["temperature_2"]) == (None, None)
    assert set(problems) >= {"temperature", "temperature_2"}


def test_sane_values_are_untouched() -> None:
    states, problems = read_states(_status())
    assert problems == {}
    assert states["charging_power"] == 11040.0
    assert states["name"] == "Garage"


def test_texts_are_cleaned_for_states_facts_and_card_options() -> None:
    status = _status(fna="Ga\x00ra\u202ege" + "x" * 10_000, fwv="60\x1b.1", typ="go-e\x00")
    states, _ = read_states(status)
    assert states["name"] == ("Garage" + "x" * 10_000)[:MAX_STATE_LENGTH]
    assert states["firmware"] == "60.1"
    facts = DeviceFacts.from_status(status)
    assert (facts.sw_version, facts.model) == ("60.1", "go-e")
    assert DeviceFacts.from_status(_status(fwv="\x00\u202e")).sw_version is None
    remembered = DeviceFacts.from_json({**facts.to_json(), "sw_version": "6\x000"})
    assert remembered is not None
    assert remembered.sw_version == "60"
    choices = transaction_choices({"c0n": "Al\x00ice\u202e", "c1n": "\x00"})
    assert (choices[1], choices[2]) == ("Alice", "card_1")


def test_a_negative_zero_is_zero_in_every_rendering() -> None:
    """JSON keeps the sign of zero: pgrid -0.0 (a meter at rest) reached the JSON state
    as -0.0 beside the leaf topic's 0, and the status page showed "-0 W"."""
    nrg = [*_status()["nrg"]]
    nrg[11] = -0.0
    states, problems = read_states(_status(nrg=nrg, pgrid=-0.0, eto=-0.0, ate=-0.0))
    assert not problems
    for key in ("charging_power", "grid_power", "energy_total", "next_trip_energy"):
        assert states[key] == 0
        assert json.dumps(states[key]) in ("0", "0.0"), key
