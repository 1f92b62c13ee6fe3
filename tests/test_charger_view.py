"""The charger view: incremental, and the same as reading everything anew (pure)."""

from __future__ import annotations

from typing import Any

import pytest

import goe2mqtt.catalogue as catalogue
from goe2mqtt.catalogue import format_state, read_states
from goe2mqtt.charger_view import ChargerView
from goe2mqtt.simulator import SimulatedCharger

FEED = {"@pv_feed": "off", "@pv_grid": None, "@pv_solar": None, "@pv_battery": None}


def status() -> dict[str, Any]:
    charger = SimulatedCharger("012345")
    charger.plug_in()
    return charger.status()


def test_an_unchanged_status_reads_nothing_again(monkeypatch: pytest.MonkeyPatch) -> None:
    view = ChargerView()
    first = view.update(status(), FEED)
    assert first.facts is not None
    assert len(first.changed) == len(view.states)
    calls = []
    original = catalogue.STATE_ENTITIES[0].value
    assert original is not None
    monkeypatch.setattr(
        "goe2mqtt.charger_view.read_states",
        lambda *a, **kw: calls.append(1) or read_states(*a, **kw),
    )
    again = view.update(dict(view._status or {}), FEED)
    assert (again.facts, again.changed, calls) == (None, [], [])


def test_a_change_rereads_only_its_entities_and_matches_a_full_read() -> None:
    view = ChargerView()
    base = status()
    view.update(base, FEED)
    changed = {**base, "amp": 10, "frc": True}  # frc: a bool where a code was
    update = view.update(changed, FEED)
    assert set(update.changed) == {"charging_current", "force_state", "charger_max_current"}
    assert "force_state" in update.new_problems  # True is not a force-state code
    assert update.facts is None  # 10 A fits the number's range: discovery stays
    full, problems = read_states({**changed, **FEED}, view.keys)
    assert view.states == full
    assert view.problems == problems
    assert {key: view.text(key) for key in view.states} == {
        key: format_state(value) for key, value in full.items()
    }
    # A value beyond the range widens the number (HA drops states outside min..max).
    wider = view.update({**changed, "amp": 40}, FEED).facts
    assert wider is not None
    assert ("charging_current", 6, 40) in wider.ranges


def test_a_firmware_change_starts_over_and_drops_what_went() -> None:
    view = ChargerView()
    base = status()
    view.update(base, FEED)
    assert "unlock_on_power_outage" in view.states
    newer = {k: v for k, v in base.items() if k != "upo"} | {"fwv": "60.5"}
    update = view.update(newer, FEED)
    assert update.facts is not None
    assert "upo" not in update.facts.keys
    assert "unlock_on_power_outage" not in view.states
