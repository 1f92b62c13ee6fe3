"""The site controller decides, on the time it is given: shares, pauses, ramps, fallback."""

from __future__ import annotations

from typing import Any

from goe2mqtt.config.site import SiteChargerSettings, SiteSettings
from goe2mqtt.site.controller import SiteController, Write
from goe2mqtt.site.meter import MeterReading
from goe2mqtt.site.seen import ChargerSeen, seen_from_status


def site(**over: Any) -> SiteController:
    settings: dict[str, Any] = {
        "name": "house", "fuse": 25.0, "meter_topic": "home/meter",
        "chargers": (SiteChargerSettings(name="garage", priority=1, max_current=16),
                     SiteChargerSettings(name="carport", priority=2)),
        **over,
    }  # fmt: skip
    return SiteController(SiteSettings(**settings))


def charging(amps: float, *, phases: int = 3, limit: int | None = None) -> ChargerSeen:
    drawn = tuple(amps if p < phases else 0.0 for p in range(3))
    return ChargerSeen(online=True, car=2, currents=drawn, limit=limit)  # type: ignore[arg-type]


def step(
    controller: SiteController, now: float, house: tuple[float, float, float],
    **chargers: ChargerSeen,
) -> list[Write]:  # fmt: skip
    """The meter reads the house plus what the chargers draw; then one decision."""
    for name, seen in chargers.items():
        controller.see(name, seen)
    grid = tuple(house[p] + sum(s.currents[p] for s in chargers.values()) for p in range(3))
    controller.meter(MeterReading(currents=grid), now)  # type: ignore[arg-type]
    return list(controller.decide(now).writes)


def calls(writes: list[Write]) -> dict[str, list[dict[str, int | None]]]:
    found: dict[str, list[dict[str, int | None]]] = {}
    for write in writes:
        found.setdefault(write.charger, []).append(write.call)
    return found


def test_a_16_a_load_brings_both_chargers_down_in_one_decision() -> None:
    controller = site()
    step(controller, 0, (2, 2, 2), garage=charging(10, limit=10), carport=charging(10, limit=10))
    writes = step(controller, 5, (18, 18, 18), garage=charging(10, limit=10),
                  carport=charging(10, limit=10))  # fmt: skip
    # 25 - 0.5 (the meter's margin) - 18 leaves 6.5 A: the garage (priority 1) keeps its
    # minimum, the carport cannot have its own and pauses.
    assert calls(writes) == {"garage": [{"tcl": 6}], "carport": [{"frc": 1}]}
    assert controller.managed["carport"].paused


def test_priority_first_then_equal_shares_and_max_current() -> None:
    controller = site()
    writes = step(controller, 0, (1, 1, 1), garage=charging(16), carport=charging(16))
    # 23.5 A of room: the garage its 16 A maximum, the carport the rest.
    assert calls(writes) == {"garage": [{"tcl": 16}], "carport": [{"tcl": 7}]}
    equal = site(chargers=(SiteChargerSettings(name="garage"),
                           SiteChargerSettings(name="carport")))  # fmt: skip
    writes = step(equal, 0, (1, 1, 1), garage=charging(16), carport=charging(16))
    assert calls(writes) == {"garage": [{"tcl": 11}], "carport": [{"tcl": 11}]}


def test_a_one_phase_car_counts_on_its_phase_only() -> None:
    controller = site()
    # Both cars on phase 1: 25 - 0.5 - 1 = 23.5 A for both there; phases 2 and 3 are free.
    writes = step(controller, 0, (1, 1, 1), garage=charging(16, phases=1),
                  carport=charging(16, phases=1))  # fmt: skip
    assert calls(writes) == {"garage": [{"tcl": 16}], "carport": [{"tcl": 7}]}
    assert controller.state(0)["chargers"]["carport"]["phases"] == [1]


def test_up_slowly_down_at_once_and_noise_writes_nothing() -> None:
    controller = site(ramp_up=2)
    idle = ChargerSeen(online=True, car=4)
    writes = step(controller, 0, (15, 15, 15), garage=charging(6, limit=6), carport=idle)
    assert calls(writes) == {"garage": [{"tcl": 6}]}  # taken over at what it has
    writes = step(controller, 5, (2, 2, 2), garage=charging(6, limit=6), carport=idle)
    assert calls(writes) == {"garage": [{"tcl": 8}]}  # 2 A a decision
    # Within the interval nothing goes up again, though readings come every second.
    assert step(controller, 6, (2, 2, 2), garage=charging(8, limit=8), carport=idle) == []
    writes = step(controller, 10, (2, 2, 2), garage=charging(8, limit=8), carport=idle)
    assert calls(writes) == {"garage": [{"tcl": 10}]}
    # Noise around a steady load: no write.
    controller = site()
    assert calls(step(controller, 0, (11.8, 11.8, 11.8), garage=charging(12, limit=12),
                      carport=idle)) == {"garage": [{"tcl": 12}]}  # taken over  # fmt: skip
    for second, wobble in enumerate((0.3, -0.3, 0.4, -0.2, 0.0, 0.3)):
        house = (11.8 + wobble, 11.8 - wobble, 11.8)  # a share of 12.3 to 13.1 A
        assert step(controller, 5 * (second + 1), house, garage=charging(12, limit=12),
                    carport=idle) == []  # fmt: skip
    # Down: at once, to what fits, however far.
    writes = step(controller, 40, (17, 10, 10), garage=charging(12, limit=12), carport=idle)
    assert calls(writes) == {"garage": [{"tcl": 7}]}  # 25 - 0.5 - 17 = 7.5 A


def test_a_paused_charger_resumes_after_resume_after_and_never_below_6_a() -> None:
    controller = site(resume_after=60)
    step(controller, 0, (1, 1, 1), garage=charging(16, limit=16), carport=charging(7, limit=7))
    writes = step(controller, 5, (14, 14, 14), garage=charging(16, limit=16),
                  carport=charging(7, limit=7))  # fmt: skip
    # 10.5 A of room: the garage 10, the carport's minimum does not fit.
    assert calls(writes) == {"garage": [{"tcl": 10}], "carport": [{"frc": 1}]}
    paused = ChargerSeen(online=True, car=4, frc=1, limit=7)
    garage = charging(12, limit=12)
    # Room comes back at 10 s: it must stay 60 s before the carport resumes.
    for now in range(10, 70, 5):
        writes = step(controller, now, (1, 1, 1), garage=garage, carport=paused)
        assert "carport" not in calls(writes), now
    writes = step(controller, 70, (1, 1, 1), garage=garage, carport=paused)
    assert calls(writes)["carport"] == [{"tcl": 6}, {"frc": 0}]


def test_a_silent_meter_falls_back_within_one_decision_and_returns_on_valid_readings() -> None:
    controller = site(meter_timeout=30, fallback_current=6)
    step(controller, 0, (1, 1, 1), garage=charging(16, limit=16), carport=charging(7, limit=7))
    controller.see("garage", charging(16, limit=16))
    assert controller.decide(30).writes == ()  # 30 s old: not yet silent
    writes = list(controller.decide(31).writes)
    assert calls(writes) == {"garage": [{"tcl": 6}], "carport": [{"tcl": 6}]}
    state = controller.state(31)
    assert state["fallback"] is True
    assert state["fallback_reason"] == "meter silent for 31 s"
    assert controller.decide(36).writes == ()  # nothing goes up without a meter
    writes = step(controller, 40, (1, 1, 1), garage=charging(6, limit=6),
                  carport=charging(6, limit=6))  # fmt: skip
    assert controller.fallback is None
    assert calls(writes) == {"garage": [{"tcl": 8}]}  # back to control, ramping up


def test_an_invalid_reading_falls_back_at_once_and_zero_pauses() -> None:
    controller = site(fallback_current=0)
    step(controller, 0, (1, 1, 1), garage=charging(16, limit=16), carport=charging(7, limit=7))
    controller.meter_invalid("l1: nan is not a finite number", 1)
    writes = list(controller.decide(1).writes)
    assert calls(writes) == {"garage": [{"frc": 1}], "carport": [{"frc": 1}]}
    assert controller.state(1)["fallback_reason"] == (
        "meter reading invalid: l1: nan is not a finite number"
    )


def test_an_offline_charger_keeps_its_last_share_as_drawn() -> None:
    controller = site()
    step(controller, 0, (1, 1, 1), garage=charging(16, limit=16), carport=charging(7, limit=7))
    gone = ChargerSeen(online=False)
    # The garage is gone, still drawing its 16 A (the meter says so): the carport may
    # not take them, nor what the garage may draw up to its limit.
    writes = step(controller, 5, (17, 17, 17), garage=gone, carport=charging(7, limit=7))
    assert writes == []
    assert controller.room is not None
    assert round(controller.room[0], 1) == 7.5


def test_pv_shares_the_sun_by_priority_with_a_start_threshold() -> None:
    controller = site(mode="pv", meter_exports=True, resume_after=0,
                      chargers=(SiteChargerSettings(name="garage", priority=1),
                                SiteChargerSettings(name="carport", priority=2)))  # fmt: skip
    paused = ChargerSeen(online=True, car=4, frc=1, psm=1)  # forced to one phase
    controller.managed["garage"].paused = controller.managed["carport"].paused = True
    # 5 kW of export, less the 115 W margin: 6 A on one phase is 1380 W each: both start.
    for name in ("garage", "carport"):
        controller.see(name, paused)
    controller.meter(MeterReading(power=-5000.0), 0)
    writes = calls(list(controller.decide(0).writes))
    assert writes == {"garage": [{"tcl": 6}, {"frc": 0}], "carport": [{"tcl": 6}, {"frc": 0}]}
    # On three phases 6 A is 4140 W: one fits, the garage (priority 1) starts.
    controller = site(mode="pv", meter_exports=True, resume_after=0)
    controller.managed["garage"].paused = controller.managed["carport"].paused = True
    for name in ("garage", "carport"):
        controller.see(name, ChargerSeen(online=True, car=4, frc=1, psm=None))
    controller.meter(MeterReading(power=-5000.0), 0)
    assert calls(list(controller.decide(0).writes)) == {"garage": [{"tcl": 6}, {"frc": 0}]}


def test_a_charger_status_is_read_as_the_site_needs_it() -> None:
    status = {"car": 2, "tcl": None, "amp": 16, "psm": 0, "frc": 0, "mca": 6, "ama": 32,
              "cbl": 20, "nrg": [231, 229, 230, 0, 15.9, 0.1, 0, 0, 0, 0, 0, 0]}  # fmt: skip
    seen = seen_from_status(status, online=True)
    assert (seen.low, seen.high, seen.limit, seen.has_tcl) == (6, 20, 16, True)
    assert seen.currents == (15.9, 0.1, 0.0)
    hostile = seen_from_status({"nrg": [float("nan")] * 16, "car": "2"}, online=True)
    assert hostile.currents == (0.0, 0.0, 0.0)
    assert hostile.car is None
    assert not seen_from_status({"amp": 10}, online=True).has_tcl


def test_tcl_is_refreshed_before_it_expires_and_rewritten_when_not_shown() -> None:
    controller = site()
    garage, idle = charging(10, limit=10), ChargerSeen(online=True, car=4)
    house = (13.0, 13.0, 13.0)  # 25 - 0.5 - 13 = 11.5 A: the garage stays at 10
    assert calls(step(controller, 0, house, garage=garage, carport=idle)) == {
        "garage": [{"tcl": 10}]
    }
    assert step(controller, 479, house, garage=garage, carport=idle) == []
    assert calls(step(controller, 480, house, garage=garage, carport=idle)) == {
        "garage": [{"tcl": 10}]  # 8 minutes: before the firmware drops it at 10
    }
    # The charger shows 16 A (the write was lost, or the app changed it): after 10 s
    # it is written again, as a decrease (nothing else goes up in that decision).
    lost = charging(10, limit=16)
    assert step(controller, 485, house, garage=lost, carport=idle) == []
    writes = step(controller, 490, house, garage=lost, carport=idle)
    assert calls(writes) == {"garage": [{"tcl": 10}]}
    assert "shows 16 A, not the 10 A written" in writes[0].why


def test_a_meter_of_power_only_counts_the_rest_on_every_phase() -> None:
    controller = site(chargers=(SiteChargerSettings(name="garage"),))
    controller.see("garage", charging(10, limit=10))
    # 2300 W besides the garage's 6900 W: 10 A that may all be on any one phase.
    controller.meter(MeterReading(power=9200.0), 0)
    writes = list(controller.decide(0).writes)
    assert calls(writes) == {"garage": [{"tcl": 10}]}
    assert controller.room is not None
    assert [round(r, 1) for r in controller.room] == [14.5, 14.5, 14.5]


def test_an_import_limit_caps_the_watts() -> None:
    controller = site(fuse=None, import_limit=7000,
                      chargers=(SiteChargerSettings(name="garage"),))  # fmt: skip
    # 1 A a phase besides the garage: 690 W; 7000 - 690 - 115 (margin) = 6195 W = 8.9 A.
    writes = step(controller, 0, (1, 1, 1), garage=charging(16, limit=16))
    assert calls(writes) == {"garage": [{"tcl": 8}]}


def test_a_pv_start_keeps_its_minimum_against_a_higher_priority_for_a_while() -> None:
    controller = site(mode="pv", meter_exports=True, resume_after=0, pv_min_charge_time=300)
    carport = controller.managed["carport"]
    carport.started_at, carport.written, carport.written_at = 0.0, 6, 0.0
    controller.see("carport", charging(6, limit=6))
    controller.see("garage", ChargerSeen(online=True, car=4, frc=1))
    controller.managed["garage"].paused = True
    # 4140 W of the carport's draw plus 1000 W exported: room for one minimum only.
    controller.meter(MeterReading(power=-1000.0), 10)
    writes = calls(list(controller.decide(10).writes))
    assert "carport" not in writes  # inside its minimum charge time: it keeps charging
    assert "garage" not in writes
    # After the minimum charge time the garage (priority 1) may take the sun.
    controller.meter(MeterReading(power=-1000.0), 400)
    writes = calls(list(controller.decide(400).writes))
    assert writes["carport"] == [{"frc": 1}]


def test_a_pv_start_keeps_its_minimum_through_a_cloud_then_pauses_for_want_of_sun() -> None:
    # Seeded pv days showed a site-started car stopped 28 s after its start by a cloud:
    # pv_min_charge_time now holds the minimum whatever the sun does, as go-e's own
    # minimum charging time (fmt) does; after it, the stop hysteresis rules again.
    controller = site(mode="pv", meter_exports=True, pv_min_charge_time=300,
                      chargers=(SiteChargerSettings(name="garage"),))  # fmt: skip
    garage = controller.managed["garage"]
    garage.started_at, garage.written, garage.written_at = 0.0, 6, 0.0
    controller.see("garage", charging(6, limit=6))  # 4140 W on three phases
    for now in range(5, 300, 5):  # a cloud: 3000 W imported, far beyond the 300 W
        controller.meter(MeterReading(power=3000.0), now)
        assert calls(list(controller.decide(now).writes)) == {}, now
        assert not garage.paused
    controller.meter(MeterReading(power=3000.0), 300)
    assert calls(list(controller.decide(300).writes)) == {"garage": [{"frc": 1}]}
    assert garage.why == "paused: no sun for its minimum"


def test_a_pv_start_inside_its_minimum_charge_time_still_yields_to_the_fuse() -> None:
    controller = site(mode="pv", meter_exports=True, pv_min_charge_time=300, fuse=16.0,
                      chargers=(SiteChargerSettings(name="garage"),))  # fmt: skip
    garage = controller.managed["garage"]
    garage.started_at, garage.written, garage.written_at = 0.0, 6, 0.0
    # 12 A of house on every phase beside the garage's 6: 16 - 0.5 - 12 leaves 3.5 A.
    writes = step(controller, 10, (12, 12, 12), garage=charging(6, limit=6))
    assert calls(writes) == {"garage": [{"frc": 1}]}
    assert garage.why == "paused: no room for its minimum"


def test_a_pv_charger_short_of_sun_and_of_room_says_which() -> None:
    controller = site(mode="pv", meter_exports=True, pv_min_charge_time=0,
                      chargers=(SiteChargerSettings(name="garage"),))  # fmt: skip
    controller.managed["garage"].written = 6
    writes = step(controller, 10, (1, 1, 1), garage=charging(6, limit=6))  # 4830 W imported
    assert calls(writes) == {"garage": [{"frc": 1}]}
    assert controller.managed["garage"].why == "paused: no sun for its minimum"


def test_a_stale_reading_raises_nothing() -> None:
    # The meter stops (not yet past its timeout): its last reading less what the charger
    # draws now would take the charger's own increase for room, again and again.
    controller = site(chargers=(SiteChargerSettings(name="garage"),), meter_timeout=30)
    step(controller, 0, (2, 2, 2), garage=charging(6, limit=6))  # taken over at 6
    controller.meter(MeterReading(currents=(8.0, 8.0, 8.0)), 1)  # after the write
    for now, drawn in ((5, 6), (10, 8), (15, 8), (20, 8), (25, 8)):
        controller.see("garage", charging(drawn, limit=drawn))
        writes = calls(list(controller.decide(now).writes))
        if now == 5:
            assert writes == {"garage": [{"tcl": 8}]}  # a reading newer than the write
        else:
            assert writes == {}, now


def test_a_paused_charger_forced_on_by_someone_else_is_paused_again_and_counted() -> None:
    # The app, the charger's button or a user's start_charging (frc=2) resumes a charger
    # the site paused. Its draw is then the site's doing as much as an oven's: the others
    # make room for it, and it is paused again, however long it goes on.
    controller = site(resume_after=60)
    step(controller, 0, (1, 1, 1), garage=charging(16, limit=16), carport=charging(7, limit=7))
    writes = step(controller, 5, (14, 14, 14), garage=charging(16, limit=16),
                  carport=charging(7, limit=7))  # fmt: skip
    assert calls(writes) == {"garage": [{"tcl": 10}], "carport": [{"frc": 1}]}
    forced = ChargerSeen(online=True, car=2, frc=2, currents=(7.0, 7.0, 7.0), limit=7)
    garage = charging(10, limit=10)
    # Within the time a pause takes to show, nothing more is written.
    assert step(controller, 10, (14, 14, 14), garage=garage, carport=forced) == []
    writes = step(controller, 15, (14, 14, 14), garage=garage, carport=forced)
    # 14 A of house and the carport's 7 A leave 3.5 A: not the garage's minimum either.
    assert calls(writes) == {"garage": [{"frc": 1}], "carport": [{"frc": 1}]}
    assert "paused again" in controller.managed["carport"].why
    # It still does not follow: paused again after twice as long, never given room.
    paused_garage = ChargerSeen(online=True, car=4, frc=1, limit=10)
    for now in (20, 25, 30):
        assert step(controller, now, (14, 14, 14), garage=paused_garage, carport=forced) == []
    writes = step(controller, 35, (14, 14, 14), garage=paused_garage, carport=forced)
    assert calls(writes) == {"carport": [{"frc": 1}]}
    # It follows: the garage (priority 1) has room for its minimum again and resumes
    # after resume_after; the carport stays paused (10.5 A is not two minimums).
    stopped = ChargerSeen(online=True, car=4, frc=1, limit=7)
    resumed: list[int] = []
    for now in range(40, 120, 5):
        writes = step(controller, now, (14, 14, 14), garage=paused_garage, carport=stopped)
        if "garage" in calls(writes):
            resumed.append(now)
        assert "carport" not in calls(writes), now
    assert resumed
    assert min(resumed) >= 40 + 60
    assert controller.managed["carport"].paused


def test_a_charger_that_draws_more_than_written_makes_the_others_give_way() -> None:
    # The garage shows the 10 A written, but its car draws 16 (a firmware that ignores
    # tcl, a car that ignores the pilot): what it draws beyond its limit is counted as
    # load the site does not steer, so the fuse holds.
    controller = site()
    step(controller, 0, (1, 1, 1), garage=charging(16, limit=16), carport=charging(7, limit=7))
    writes = step(controller, 5, (8, 8, 8), garage=charging(16, limit=16),
                  carport=charging(7, limit=7))  # fmt: skip
    assert calls(writes) == {"garage": [{"tcl": 10}], "carport": [{"tcl": 6}]}
    unruly = charging(16, limit=10)
    assert step(controller, 10, (8, 8, 8), garage=unruly, carport=charging(6, limit=6)) == []
    writes = step(controller, 15, (8, 8, 8), garage=unruly, carport=charging(6, limit=6))
    # 8 A of house and the garage's 5 A beyond its 10 (+1 of tolerance) leave 11.5 A:
    # the garage's 16 A and the carport's 6 A would be 30 A on a 25 A fuse.
    assert calls(writes) == {"carport": [{"frc": 1}]}
    assert "draws" in controller.managed["garage"].why
    # A charger that ignores even its own pause leaves the others nothing more.
    controller = site(chargers=(SiteChargerSettings(name="garage"),
                                SiteChargerSettings(name="carport")))  # fmt: skip
    step(controller, 0, (1, 1, 1), garage=charging(11, limit=11), carport=charging(11, limit=11))
    wild = charging(32, limit=11)
    sent: list[Write] = []
    for now in (5, 10, 15):
        sent += step(controller, now, (1, 1, 1), garage=wild, carport=charging(11, limit=11))
    # 1 A of house and the garage's 20 A beyond its limit leave 3.5 A: no minimum fits.
    assert calls(sent) == {"garage": [{"frc": 1}], "carport": [{"frc": 1}]}


def test_a_charger_paused_longer_than_tcl_lives_resumes_at_its_minimum() -> None:
    # Paused for a quarter of an hour, the firmware has dropped the 6 A tcl written before the
    # pause: the charger's own 16 A apply again. Resuming with frc alone would let it
    # start at 16 A where there is room for 6.
    controller = site(resume_after=60)
    step(controller, 0, (1, 1, 1), garage=charging(16, limit=16), carport=charging(7, limit=7))
    step(controller, 5, (12, 12, 12), garage=charging(16, limit=16), carport=charging(7, limit=7))
    step(controller, 10, (18.5, 18.5, 18.5), garage=charging(11, limit=11),
         carport=charging(6, limit=6))  # fmt: skip
    assert controller.managed["carport"].paused
    assert controller.managed["carport"].written == 6
    paused = ChargerSeen(online=True, car=4, frc=1, limit=6)
    garage = charging(6, limit=6)
    for now in range(15, 900, 5):  # no room for its minimum for a quarter of an hour
        writes = step(controller, now, (18.5, 18.5, 18.5), garage=garage, carport=paused)
        assert "carport" not in calls(writes)
    expired = ChargerSeen(online=True, car=4, frc=1, limit=16)  # tcl gone: amp's 16 A
    for now in range(900, 1000, 5):
        writes = step(controller, now, (12, 12, 12), garage=garage, carport=expired)
        if "carport" in calls(writes):
            break
    assert calls(writes)["carport"] == [{"tcl": 6}, {"frc": 0}]


def test_a_fuse_set_by_command_below_the_fallback_is_refused() -> None:
    controller = site()  # two chargers, fallback_current 6
    assert controller.set_fuse(11) == (
        "fuse 11 A is below the fallback of 2 chargers at 6 A (12 A): with the meter"
        " silent they alone would overload it"
    )
    assert controller.fuse == 25
    assert controller.set_fuse(12) is None
    assert site(fallback_current=0).set_fuse(6) is None  # the fallback pauses them


def test_a_charger_that_never_shows_what_is_written_is_written_to_less_and_less() -> None:
    # A firmware that ignores tcl, or refuses it: the site writes again after 10 s, then
    # after twice as long each time (at most 5 minutes apart), not 360 times an hour
    # through the journal and the charger's API. What it draws beyond counts meanwhile.
    controller = site(chargers=(SiteChargerSettings(name="garage"),))
    step(controller, 0, (14, 14, 14), garage=charging(16, limit=16))  # taken over: 10 A
    deaf = charging(10, limit=16)  # shows 16 A, draws what it was written (or not)
    sent = [now for now in range(5, 3605, 5)
            if step(controller, now, (14, 14, 14), garage=deaf)]  # fmt: skip
    assert sent[:5] == [10, 30, 70, 150, 310]
    assert len(sent) <= 20, sent
    # Once it shows the value, the count starts again: 10 s after a write, then 20.
    step(controller, 3605, (14, 14, 14), garage=charging(10, limit=10))
    sent = [now for now in range(3610, 3700, 5)
            if step(controller, now, (14, 14, 14), garage=deaf)]  # fmt: skip
    assert sent[:3] == [3610, 3630, 3670]
    # The same for a pause it does not keep: 14 A of house and 16 A of a charger that
    # ignores its pause leave no minimum; paused again, less and less often.
    controller = site(chargers=(SiteChargerSettings(name="garage"),))
    step(controller, 0, (1, 1, 1), garage=charging(16, limit=16))
    assert calls(step(controller, 5, (20, 20, 20), garage=charging(16, limit=16))) == {
        "garage": [{"frc": 1}]
    }
    wild = ChargerSeen(online=True, car=2, frc=2, currents=(16.0, 16.0, 16.0), limit=16)
    sent = [now for now in range(10, 3610, 5)
            if step(controller, now, (20, 20, 20), garage=wild)]  # fmt: skip
    assert sent[:5] == [15, 35, 75, 155, 315]
    assert len(sent) <= 20, sent


def test_a_current_no_charger_can_draw_is_not_taken_for_room() -> None:
    # A charger's nrg with garbage (6553.5 A, a firmware's "no value"; 10**15 from a
    # hostile peer) would be subtracted from the meter as the site's own draw and leave
    # thousands of amperes of room. Beyond what a go-e charger draws it is taken as 0:
    # what the charger really draws then counts as other load (the safe side).
    for garbage in (6553.5, 1e15, 2**53):
        status = {"car": 2, "tcl": 6, "amp": 16, "mca": 6, "ama": 32,
                  "nrg": [230, 230, 230, 0, garbage, garbage, garbage, 0, 0, 0, 0, 0]}  # fmt: skip
        assert seen_from_status(status, online=True).currents == (0.0, 0.0, 0.0)
    status = {"car": 2, "nrg": [230, 230, 230, 0, 32.4, 16, 0.2, 0, 0, 0, 0, 0]}
    assert seen_from_status(status, online=True).currents == (32.4, 16.0, 0.2)
    controller = site()
    nonsense = [230, 230, 230, 0, 6553.5, 6553.5, 6553.5, 0, 0, 0, 0, 0]
    garbled = seen_from_status(status | {"nrg": nonsense, "tcl": 6}, online=True)
    # The house draws 14 A, the garage 6 and the carport nothing: the meter says 20.
    writes = step(controller, 0, (14, 14, 14), garage=charging(6, limit=6), carport=garbled)
    assert controller.room is not None
    assert max(controller.room) <= 25 - 14  # for both chargers: not 6564 A
    assert all(call.get("tcl", 0) <= 6 for call in calls(writes).get("garage", []))


def test_nothing_goes_up_in_a_decision_that_lowers_another() -> None:
    # The README: room is made before it is used. The carport takes priority over the
    # garage: the garage goes down first; the carport goes up only at a later decision,
    # on a reading that shows the garage down.
    controller = site()
    step(controller, 0, (1, 1, 1), garage=charging(16), carport=charging(16))
    garage, carport = charging(16, limit=16), charging(7, limit=7)
    assert step(controller, 5, (1, 1, 1), garage=garage, carport=carport) == []
    controller.set_priority("carport", 1)
    controller.set_priority("garage", 2)
    writes = step(controller, 10, (1, 1, 1), garage=garage, carport=carport)
    assert calls(writes) == {"garage": [{"tcl": 6}]}
    # The carport's raise waits, and the site does not take it as written.
    assert controller.state(10)["chargers"]["carport"]["allocated"] == 7
    writes = step(controller, 15, (1, 1, 1), garage=charging(6, limit=6), carport=carport)
    assert calls(writes) == {"carport": [{"tcl": 9}]}  # 2 A up, from the 7 it has
    # A tcl refresh that falls due while another goes down goes out at the next decision
    # (taken as sent, the next would come 8 minutes on: after the firmware dropped it).
    controller = site()
    step(controller, 0, (1, 1, 1), garage=charging(16), carport=charging(16))
    garage, carport = charging(16, limit=16), charging(7, limit=7)
    for now in range(5, 480, 5):
        assert step(controller, now, (1, 1, 1), garage=garage, carport=carport) == []
    # At 8 minutes both tcl are due; 1 A more of house takes the carport down to 6.
    writes = step(controller, 480, (2, 2, 2), garage=garage, carport=carport)
    assert calls(writes) == {"carport": [{"tcl": 6}]}  # the garage's refresh waits
    writes = step(controller, 485, (2, 2, 2), garage=garage, carport=charging(6, limit=6))
    assert calls(writes) == {"garage": [{"tcl": 16}]}  # and goes out now


def test_a_fallback_never_raises_a_charger_nor_passes_its_maximum() -> None:
    # After a start the meter never speaks: the charging chargers go to the fallback,
    # but one that draws less keeps what it has (never up without a meter), and none
    # goes above its max_current.
    controller = site(fallback_current=12, meter_timeout=30,
                      chargers=(SiteChargerSettings(name="garage", max_current=10),
                                SiteChargerSettings(name="carport")))  # fmt: skip
    controller.see("garage", charging(10, limit=16))  # its own amp 16, the car takes 10
    controller.see("carport", charging(8, limit=8))
    assert controller.decide(0).writes == ()  # waiting for the first reading
    writes = calls(list(controller.decide(30).writes))
    assert writes == {"garage": [{"tcl": 10}], "carport": [{"tcl": 8}]}
    assert controller.fallback is not None


def test_a_busy_charger_goes_up_no_more_once_its_hour_holds_50_writes() -> None:
    # Clouds passing all afternoon: every climb from 6 A is a write per 2 A. Past 50
    # writes in the last hour a charger goes up no more until its hour thins out, and
    # still goes down at once (safety has no budget; test_site_lies.py bounds the hour).
    controller = site(chargers=(SiteChargerSettings(name="garage"),))
    step(controller, 0, (1, 1, 1), garage=charging(6, limit=6))
    garage = controller.managed["garage"]
    garage.writes.extend(float(t) for t in range(1, 50))  # 49 more in this hour: 50
    assert garage.writes_in_hour(5) == 50
    assert step(controller, 5, (1, 1, 1), garage=charging(6, limit=6)) == []  # no raise
    writes = step(controller, 10, (22, 22, 22), garage=charging(6, limit=6))
    assert calls(writes) == {"garage": [{"frc": 1}]}  # down: at once, budget or not
    # Room again, but a resume goes up too: it waits for the hour to thin out.
    paused = ChargerSeen(online=True, car=4, frc=1, limit=6)
    for now in range(15, 3600, 5):
        assert step(controller, now, (1, 1, 1), garage=paused) == [], now
    writes = step(controller, 3605, (1, 1, 1), garage=paused)  # 0..5 s have left the hour
    assert calls(writes) == {"garage": [{"tcl": 6}, {"frc": 0}]}  # its old tcl is gone


def test_a_pause_a_user_stopped_is_not_resumed_by_the_site() -> None:
    """The site paused the carport; its user stops it (frc=1 stays): with room back, the
    site writes nothing to it, where it would have resumed it."""
    stopped = ChargerSeen(online=True, car=4, frc=1)

    def carport_writes(controller: SiteController) -> list[dict[str, int | None]]:
        written: list[dict[str, int | None]] = []
        for now in range(0, 120, 5):
            writes = step(controller, now, (1, 1, 1), garage=charging(6, limit=6),
                          carport=stopped)  # fmt: skip
            written += calls(writes).get("carport", [])
        return written

    resumed = site(resume_after=0)
    resumed.restore_paused("carport", 0)
    assert {"frc": 0} in carport_writes(resumed)  # the site's resume
    forgotten = site(resume_after=0)
    forgotten.restore_paused("carport", 0)
    forgotten.forget_pause("carport")
    assert carport_writes(forgotten) == []
    assert forgotten.paused() == {}


def test_a_limit_no_charger_has_is_not_taken_and_stops_no_decision() -> None:
    huge = int("1" + "0" * 400)  # JSON reads it; float() of it raises OverflowError
    status = {"car": 2, "tcl": 10, "nrg": [230, 230, 230, 0, 10, 10, 10] + [0] * 9}
    clean = calls(step(site(), 0, (1, 1, 1), garage=seen_from_status(status, online=True)))
    for garbage in ({"mca": huge}, {"mca": -5}, {"ama": huge}, {"cbl": -huge}):
        seen = seen_from_status({**status, **garbage}, online=True)
        assert (seen.low, seen.high) == (6, 32), garbage  # as when the charger says none
        assert calls(step(site(), 0, (1, 1, 1), garage=seen)) == clean, garbage


def test_a_charger_whose_own_minimum_is_above_its_max_current_is_paused_not_raised() -> None:
    """max_current is the user's cap (README: to cap a charger, lower its max_current).
    A charger whose minimum in the app (mca) is 12 A under a max_current of 10 A was
    taken over at 10 A, raised to 11 and 12, and its fallback was 12 A."""
    capped = (SiteChargerSettings(name="garage", priority=1, max_current=10),)
    controller = site(chargers=capped)
    seen = ChargerSeen(online=True, car=2, currents=(10.0,) * 3, low=12, high=32, limit=10)
    assert calls(step(controller, 0, (1, 1, 1), garage=seen)) == {"garage": [{"frc": 1}]}
    state = controller.state(0)["chargers"]["garage"]
    assert state["paused"]
    assert state["why"] == "paused: its minimum 12 A (mca) is above its max_current 10 A"
    stopped = ChargerSeen(online=True, car=4, low=12, high=32, limit=10, frc=1)
    for now in range(5, 600, 5):  # room enough all along: it never resumes
        writes = step(controller, now, (1, 1, 1), garage=stopped)
        assert all(w.call == {"frc": 1} for w in writes), (now, writes)
    # The meter silent: the fallback pauses it too, never writes its minimum.
    fallback = site(chargers=capped, fallback_current=6)
    seen = ChargerSeen(online=True, car=2, currents=(12.0,) * 3, low=12, high=32)
    fallback.see("garage", seen)
    fallback.meter_invalid("broken", 0)
    assert calls(list(fallback.decide(0).writes)) == {"garage": [{"frc": 1}]}


def test_a_meter_stuck_below_what_the_chargers_draw_gives_no_room_beyond_the_fuse() -> None:
    """A meter that measures import only cannot read less than the site's own chargers
    draw: such a reading is stuck (a meter bridge republishing its last value) or
    spoofed. Taken as negative other load, it was room: each raise lowered the "other
    load" as much, and two chargers ran up to 31 A each under a meter stuck at 0 A - 77 A
    through a 25 A fuse with 15 A of house. The other load is at least 0: the chargers
    get the fuse at most, whatever the meter says."""
    amps = amps_under_a_meter_stuck_at_zero()
    assert sum(amps.values()) <= 25 - 0.5, amps


def test_a_meter_that_repeats_itself_raises_nothing_twice() -> None:
    """A meter that measures export may read below what the chargers draw (the sun), so
    that is room - but one stuck on a value (a meter bridge republishing its last one,
    or a spoofer's constant) then took each raise for more room, the next reading being
    "after the write": two chargers ran up to 31 A each under a stuck 0 A. A raise now
    waits for a reading whose value moved since the charger's last write."""
    amps = amps_under_a_meter_stuck_at_zero(meter_exports=True, ramp_up=2)
    assert max(amps.values()) <= 6 + 2, amps


def amps_under_a_meter_stuck_at_zero(**overrides: Any) -> dict[str, int]:
    """Two chargers at 6 A, 5 minutes of a site whose meter says 0 A at every look: the
    currents it left them at."""
    chargers = (SiteChargerSettings(name="garage", priority=1),
                SiteChargerSettings(name="carport", priority=2))  # fmt: skip
    controller = site(chargers=chargers, **overrides)
    amps = {"garage": 6, "carport": 6}
    for now in range(0, 300, 5):
        for name, current in amps.items():
            controller.see(name, charging(current, limit=current))
        controller.meter(MeterReading(currents=(0.0, 0.0, 0.0)), now)  # stuck at 0 A
        for write in controller.decide(now).writes:
            amps[write.charger] = int(write.call.get("tcl") or amps[write.charger])
    return amps


def test_a_garbage_limit_or_force_state_the_charger_shows_is_never_written_back() -> None:
    """A status whose tcl (or amp) is no current (-1, -10**300) was taken for the limit
    the charger had: the site "took it over at -1 A", a write the command path refuses,
    and believed it written (its raises then crept up from there). A frc that is none of
    go-e's (41) was kept as the force state to restore: mode off wrote it back, refused,
    and the charger stayed paused."""
    house = (2.0, 2.0, 2.0)
    for garbage in (-1, -(10**300), 6553):
        controller = site()
        shown = ChargerSeen(online=True, car=2, currents=(10.0, 10.0, 10.0), limit=None)
        controller.see("garage", seen_from_status(
            {"car": 2, "nrg": [230, 230, 230, 0, 10, 10, 10, 0, 0, 0, 0, 0], "tcl": garbage,
             "amp": garbage, "frc": 41}, online=True))  # fmt: skip
        writes = step(controller, 0, house, carport=shown)
        [take_over] = calls(writes)["garage"]
        assert 6 <= take_over["tcl"] <= 16, take_over  # type: ignore[operator]
    # Paused (no room for its minimum) while it shows frc 41; then mode off resumes it.
    controller = site()
    odd = seen_from_status({"car": 2, "nrg": [230, 230, 230, 0, 10, 10, 10, 0, 0, 0, 0, 0],
                            "tcl": 10, "frc": 41}, online=True)  # fmt: skip
    step(controller, 0, house, garage=odd, carport=charging(10, limit=10))
    writes = step(controller, 5, (24, 24, 24), garage=odd, carport=charging(10, limit=10))
    assert {"frc": 1} in calls(writes)["garage"]
    assert controller.set_mode("off") is None
    resumed = [call for call in calls(list(controller.decide(10).writes))["garage"]
               if "frc" in call]  # fmt: skip
    assert resumed == [{"frc": 0}]  # neutral, as go-e knows it


def test_a_write_that_only_lowers_the_draw_is_marked_so_and_a_raise_is_not() -> None:
    # Write.lowers: journaled as a lowering (bridge/desk.py), it runs after a restart,
    # where a raise, decided on the last run's reading, does not.
    controller = site(chargers=(SiteChargerSettings(name="garage", max_current=16),))
    (taken,) = step(controller, 0, (2, 2, 2), garage=charging(16, limit=16))
    assert (taken.call, taken.lowers) == ({"tcl": 16}, False)  # taken over at what it has
    (down,) = step(controller, 5, (14, 14, 14), garage=charging(16, limit=16))
    assert (down.call, down.lowers) == ({"tcl": 10}, True)
    (up,) = step(controller, 10, (6, 6, 6), garage=charging(10, limit=10))
    assert (up.call, up.lowers) == ({"tcl": 12}, False)
    (pause,) = step(controller, 15, (22, 22, 22), garage=charging(12, limit=12))
    assert (pause.call, pause.lowers) == ({"frc": 1}, True)
    # A limit written again because the charger shows more than written: a lowering.
    controller = site(chargers=(SiteChargerSettings(name="garage", max_current=16),))
    step(controller, 0, (2, 2, 2), garage=charging(10, limit=10))
    (again,) = step(controller, 20, (14, 14, 14), garage=charging(10, limit=16))
    assert (again.call, again.lowers) == ({"tcl": 10}, True)
