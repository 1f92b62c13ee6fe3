"""The charger view: incremental, and the same as reading everything anew (pure)."""

from __future__ import annotations

import json
from typing import Any

import pytest

import goe2mqtt.catalogue as catalogue
from goe2mqtt.catalogue import format_state, read_states
from goe2mqtt.charger.view import ChargerView
from goe2mqtt.sim.simulator import SimulatedCharger

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
        "goe2mqtt.charger.view.read_states",
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


def test_chargers_alike_share_their_key_set_and_facts() -> None:
    """A fleet holds one copy of a firmware's key set and facts, not one per charger."""
    views = [ChargerView() for _ in range(3)]
    for view in views:
        view.update(catalogue.keep_known(status()), FEED)
    assert views[0].keys is views[1].keys is views[2].keys
    assert views[0].facts is views[1].facts is views[2].facts


def test_the_kept_status_holds_our_keys_with_shared_names() -> None:
    raw = json.loads(json.dumps({**status(), "rbt": 123, "zz_unknown": [1, 2]}))
    kept = catalogue.keep_known(raw)
    assert set(kept) == set(raw) & catalogue.STATUS_KEYS
    shared = {key: key for key in catalogue.STATUS_KEYS}
    assert all(key is shared[key] for key in kept)  # the catalogue's strings, not new ones
    assert kept == {k: v for k, v in raw.items() if k in catalogue.STATUS_KEYS}


def test_a_firmware_change_with_the_same_keys_still_renews_facts_and_states() -> None:
    view = ChargerView()
    before = status()
    view.update(before, FEED)
    after = {**before, "fwv": "60.1"}
    update = view.update(after, FEED)
    assert update.facts is not None
    assert update.facts.sw_version == "60.1"
    full = ChargerView()
    full.update(after, FEED)
    assert view.states == full.states
    assert view.facts == full.facts
