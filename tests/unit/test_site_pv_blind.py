"""pv without its meter: the fallback current for pv_blind_limit, then a pause.

A pv user's meter that dies in the afternoon left a running car at fallback_current all
night, charging from the grid. Now a pv site pauses its charging chargers once no valid
reading has come for pv_blind_limit (900 s unless set), and resumes them as any pause
once the meter is back; fuse and off are as they were.
"""

from __future__ import annotations

from typing import Any

import pytest

from goe2mqtt.config.problems import ConfigError
from goe2mqtt.config.settings import parse_settings
from goe2mqtt.site.controller import SiteController, Write
from goe2mqtt.site.seen import ChargerSeen
from tests.unit.test_site_config import config
from tests.unit.test_site_config import site as site_config
from tests.unit.test_site_controller import calls, charging, site, step

SUN = (-25.0, -25.0, -25.0)  # A per phase the house exports: room for both minimums
PAUSED = ChargerSeen(online=True, car=4, frc=1, limit=6)  # a car the site has paused
PAUSE_WHY = "pv paused, the surplus cannot be seen (pv_blind_limit 900 s)"


def charging_blind(mode: str, **over: Any) -> SiteController:
    """A site whose two chargers charge in the sun at 0 s; its meter then falls silent."""
    controller = site(mode=mode, meter_exports=True, meter_timeout=30, **over)
    step(controller, 0, SUN, garage=charging(10, limit=10), carport=charging(6, limit=6))
    return controller


def decide(controller: SiteController, now: float, **chargers: ChargerSeen) -> list[Write]:
    """One decision without a meter reading."""
    for name, seen in chargers.items():
        controller.see(name, seen)
    return list(controller.decide(now).writes)


def pauses(writes: list[Write]) -> list[str]:
    return [w.charger for w in writes if w.call.get("frc") == 1]


def test_pv_keeps_the_fallback_through_a_shorter_silence_then_pauses_saying_why() -> None:
    controller = charging_blind("pv")
    writes = decide(controller, 31, garage=charging(10, limit=10), carport=charging(6, limit=6))
    assert calls(writes) == {"garage": [{"tcl": 6}]}  # the fallback, as before
    for now in range(36, 900, 5):  # shorter than pv_blind_limit: the fallback holds
        writes = decide(controller, now, garage=charging(6, limit=6),
                        carport=charging(6, limit=6))  # fmt: skip
        assert pauses(writes) == [], now
    assert controller.state(896)["fallback_reason"] == "meter silent for 896 s"
    writes = decide(controller, 900, garage=charging(6, limit=6), carport=charging(6, limit=6))
    assert calls(writes) == {"garage": [{"frc": 1}], "carport": [{"frc": 1}]}
    state = controller.state(900)
    assert state["fallback_reason"] == f"meter silent for 900 s: {PAUSE_WHY}"
    for name in ("garage", "carport"):
        assert state["chargers"][name]["paused"] is True
        assert state["chargers"][name]["why"] == f"fallback: meter silent for 900 s: {PAUSE_WHY}"
    # Paused, they stay so while the meter is silent: nothing more is written.
    assert decide(controller, 905, garage=PAUSED, carport=PAUSED) == []
    assert controller.paused() == {"garage": 0, "carport": 0}


def test_pv_meter_readings_that_stay_invalid_pause_too() -> None:
    controller = charging_blind("pv")
    controller.see("garage", charging(10, limit=10))
    controller.meter_invalid("l1: nan is not a finite number", 5)
    assert calls(list(controller.decide(5).writes)) == {"garage": [{"tcl": 6}]}
    for now in range(10, 900, 5):
        controller.meter_invalid("l1: nan is not a finite number", now)
        writes = decide(controller, now, garage=charging(6, limit=6),
                        carport=charging(6, limit=6))  # fmt: skip
        assert pauses(writes) == [], now
    controller.meter_invalid("l1: nan is not a finite number", 900)
    writes = decide(controller, 900, garage=charging(6, limit=6), carport=charging(6, limit=6))
    assert pauses(writes) == ["garage", "carport"]
    assert controller.state(900)["fallback_reason"] == (
        f"meter reading invalid for 900 s (l1: nan is not a finite number): {PAUSE_WHY}"
    )


def test_pv_resumes_once_the_meter_is_back_after_resume_after() -> None:
    controller = charging_blind("pv", resume_after=60)
    decide(controller, 31, garage=charging(10, limit=10), carport=charging(6, limit=6))
    assert pauses(decide(controller, 900, garage=charging(6, limit=6),
                         carport=charging(6, limit=6))) == ["garage", "carport"]  # fmt: skip
    # The meter is back at night: no sun, they stay paused, for want of it now.
    writes = step(controller, 1000, (1.0, 1.0, 1.0), garage=PAUSED, carport=PAUSED)
    assert writes == []
    assert controller.fallback is None
    assert controller.state(1000)["chargers"]["garage"]["why"] == "paused: no sun for its minimum"
    # The sun is there from 1100 s: room for their minimums must stay resume_after.
    for now in range(1100, 1160, 5):
        assert step(controller, now, SUN, garage=PAUSED, carport=PAUSED) == [], now
    writes = step(controller, 1160, SUN, garage=PAUSED, carport=PAUSED)
    assert {name: found[-1] for name, found in calls(writes).items()} == {
        "garage": {"frc": 0}, "carport": {"frc": 0}
    }  # fmt: skip
    assert controller.paused() == {}


def test_fuse_and_off_are_unchanged_where_pv_pauses_and_null_never_pauses() -> None:
    sites = {mode: charging_blind(mode) for mode in ("pv", "fuse", "off")}

    def paused_in_four_hours(controller: SiteController) -> list[str]:
        paused: list[str] = []
        for now in range(31, 4 * 3600 + 31, 5):  # four hours without a meter
            seen = {name: PAUSED if name in paused else charging(6, limit=6)
                    for name in ("garage", "carport")}  # fmt: skip
            paused += pauses(decide(controller, now, **seen))
        return paused

    paused = {mode: paused_in_four_hours(controller) for mode, controller in sites.items()}
    assert paused == {"pv": ["garage", "carport"], "fuse": [], "off": []}
    sites["pv, pv_blind_limit null"] = charging_blind("pv", pv_blind_limit=None)
    assert paused_in_four_hours(sites["pv, pv_blind_limit null"]) == []
    for mode in ("fuse", "pv, pv_blind_limit null"):
        state = sites[mode].state(4 * 3600 + 26)
        assert state["fallback_reason"] == f"meter silent for {4 * 3600 + 26} s", mode
        assert state["chargers"]["garage"]["allocated"] == 6  # the fallback current
    assert sites["off"].fallback is None


def test_a_car_that_starts_while_pv_is_blind_past_the_limit_is_paused_at_once() -> None:
    controller = charging_blind("pv")
    idle = ChargerSeen(online=True, car=1)
    for now in range(31, 1000, 5):
        decide(controller, now, garage=PAUSED if now > 900 else charging(6, limit=6),
               carport=idle)  # fmt: skip
    # A car arrives at the carport and draws its own 16 A: paused, not held at 6 A.
    writes = decide(controller, 1000, garage=PAUSED, carport=charging(16, limit=16))
    assert calls(writes) == {"carport": [{"frc": 1}]}


def test_a_blind_pause_outlives_a_restart_and_resumes_with_the_meter() -> None:
    before = charging_blind("pv", resume_after=60)
    decide(before, 31, garage=charging(10, limit=10), carport=charging(6, limit=6))
    decide(before, 900, garage=charging(6, limit=6), carport=charging(6, limit=6))
    kept = before.paused()  # what the bridge keeps in {client_id}.sites.json
    assert kept == {"garage": 0, "carport": 0}
    after = site(mode="pv", meter_exports=True, meter_timeout=30, resume_after=60)
    for name, frc in kept.items():
        assert after.restore_paused(name, frc)
    # The meter is still dead: the new process never resumes them without it.
    for now in range(2000, 2000 + 3600, 5):
        assert decide(after, now, garage=PAUSED, carport=PAUSED) == [], now
    assert after.paused() == kept
    assert after.state(5600)["chargers"]["garage"]["why"] == "paused before the restart"
    # The meter is back with the sun: they resume after resume_after.
    for now in range(5600, 5660, 5):
        assert step(after, now, SUN, garage=PAUSED, carport=PAUSED) == [], now
    assert pauses(step(after, 5660, SUN, garage=PAUSED, carport=PAUSED)) == []
    assert after.paused() == {}


@pytest.mark.parametrize(
    ("over", "message"),
    [
        (
            {"pv_blind_limit": 10},
            "sites[0].pv_blind_limit: 10 s is below meter_timeout 30 s: the site falls back"
            " only after meter_timeout",
        ),
        (
            {"pv_blind_limit": 100, "meter_timeout": 120},
            "sites[0].pv_blind_limit: 100 s is below meter_timeout 120 s",
        ),
        ({"pv_blind_limit": 86_401}, "sites[0].pv_blind_limit: Input should be less than"),
        ({"pv_blind_limit": "900"}, "sites[0].pv_blind_limit: must be a number, not text"),
    ],
)
def test_a_pv_blind_limit_below_meter_timeout_is_refused_naming_the_key(
    over: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_settings(config(site_config(**over)))
    assert any(p.startswith(message) for p in caught.value.problems), caught.value.problems


def test_pv_blind_limit_is_900_s_unless_set_and_null_never_pauses() -> None:
    assert parse_settings(config(site_config())).sites[0].pv_blind_limit == 900
    never = parse_settings(config(site_config(pv_blind_limit=None)))
    assert never.sites[0].pv_blind_limit is None
    at_timeout = parse_settings(config(site_config(pv_blind_limit=30, meter_timeout=30)))
    assert at_timeout.sites[0].pv_blind_limit == 30
