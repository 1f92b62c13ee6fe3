"""The simulated charger keeps state the way a go-e charger does."""

from __future__ import annotations

from goe2mqtt.sim.simulator import SimulatedCharger


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_plugged_car_charges_and_counts_energy() -> None:
    clock = Clock()
    charger = SimulatedCharger("012345", clock=clock)
    assert charger.status({"car", "alw"}) == {"car": 1, "alw": False}
    charger.plug_in()
    start = charger.status()
    assert (start["car"], start["alw"], start["wh"]) == (2, True, 0)
    clock.now += 3600
    hour = charger.status()
    expected_wh = 16 * (230.2 + 229.8 + 231.1)  # 16 A on three phases for an hour
    assert abs(hour["wh"] - expected_wh) < 1
    assert abs(hour["eto"] - start["eto"] - expected_wh) < 2
    assert hour["nrg"][11] == round(expected_wh, 1)


def test_force_states_and_authentication() -> None:
    charger = SimulatedCharger("012345")
    charger.plug_in(auth_required=True)
    assert charger.car == 3
    assert charger.apply_set({"frc": "2"})[0] == 202
    assert charger.car == 3  # forcing does not skip authentication
    charger.apply_set({"trx": "0"})
    assert charger.car == 2
    charger.apply_set({"frc": "1"})
    assert charger.car == 4
    charger.apply_set({"frc": "2"})
    assert charger.car == 2
    charger.unplug()
    assert charger.status({"car", "trx", "frc"}) == {"car": 1, "trx": None, "frc": 0}


def test_phase_switch_changes_the_currents() -> None:
    charger = SimulatedCharger("012345")
    charger.plug_in()
    charger.apply_set({"psm": "1"})
    assert charger.status()["nrg"][4:7] == [16.0, 0.0, 0.0]


def test_invalid_sets_are_rejected_per_key() -> None:
    charger = SimulatedCharger("012345")
    assert charger.apply_set({"amp": "99"}) == (422, {"amp": "out of range 6..32"})
    assert charger.apply_set({"amp": "nope"})[0] == 422
    assert charger.apply_set({"car": "2"})[1] == {"car": "unknown or read-only key"}
    status, answers = charger.apply_set({"amp": "10", "psm": "7"})
    assert status == 202
    assert answers == {"amp": True, "psm": "out of range 0..2"}
    assert charger.amp == 10
