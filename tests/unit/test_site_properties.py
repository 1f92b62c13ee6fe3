"""The site controller's proof: seeded house days on simulated time (issue 31, item 7).

Each seed is a day: a heat pump cycling, an oven, kettles, two chargers whose cars
come, taper and leave, a meter with silent spells and broken readings, chargers that
drop offline. No sockets and no clock: a day takes seconds. bench/site_days.py runs
more days and prints the figures the README quotes.
"""

from __future__ import annotations

from typing import Any

import pytest

from goe2mqtt.sim.site_day import REACTION, DayReport, _measure, _measure_pv, busiest_hour, run_day
from goe2mqtt.site.room import MARGIN
from goe2mqtt.site.sharing import SLACK

FUSE_DAYS = range(100, 106)
# Fuse days of a house with PV and a meter that measures export: before the fuse's other
# load was kept at 0 or more, the limits written exceeded the fuse by 10, 7, 6 and 6 A.
SOLAR_DAYS = range(100, 104)
PV_DAYS = (102, 200, 201, 202)
# pv days with a long meter outage (sim/site_day.meter_outage) and a car that charged
# through it. Before pv_blind_limit the fallback's 6 A charged on blind: day 300 for 16061
# s in one stretch (6.0 kWh from the grid), 302 for 10664 s, 308 for 5301 s (12.7 kWh).
OUTAGE_DAYS = (300, 302, 308)
BLIND_LIMIT = 900.0  # s: pv_blind_limit's default
MAX_WRITES_PER_HOUR = 60  # per charger, in any hour of the day


def _common(report: DayReport) -> None:
    # No phase above the fuse longer than one interval plus the charger's reaction
    # (while the meter speaks: a silent meter leaves the fallback current alone; and
    # while a charger the site can write draws on it: offline_overshoot is apart).
    assert report.worst_overshoot <= report.interval + REACTION, report
    # At every decision the limits written fit the site's room on every phase their
    # charger may draw on, not only the phases its car was seen on: the site's writes
    # never take a phase past the fuse, only a load that rises after them can. Before,
    # a car seen on one phase was given that phase's room: on 33 of the fuse days
    # 7000-7039 the limits went beyond another phase's room, by up to 13 A.
    assert report.written_over_room <= SLACK, report
    assert report.house_overshoot_seconds == 0, "the house alone must fit its fuse"
    # The limits the site wrote add up to the fuse less the meter's margin at most, on
    # every phase and at every decision: an export is never room for the fuse (pv day
    # 102 wrote 6 A beyond it before).
    assert report.written_over_fuse <= -MARGIN, report
    assert report.lowest_write is not None
    assert report.lowest_write >= 6, report
    assert max(report.writes_per_hour.values()) <= MAX_WRITES_PER_HOUR, report
    # Every decision past the meter's timeout found the charging chargers at the
    # fallback current (or paused): the fallback came within one decision.
    assert report.fallback_late == [], report.fallback_late[:3]
    assert report.decisions >= 86_400 / report.interval


def _day(seed: int, **options: Any) -> DayReport:
    """The seeded day (``options``: run_day's), run and held to what every day keeps."""
    report = run_day(seed, **options)
    _common(report)
    return report


@pytest.mark.parametrize("seed", FUSE_DAYS)
def test_a_fuse_day(seed: int) -> None:
    _day(seed, mode="fuse")


@pytest.mark.parametrize("seed", SOLAR_DAYS)
def test_a_fuse_day_with_pv_and_an_exporting_meter_writes_no_more_than_the_fuse(
    seed: int,
) -> None:
    report = _day(seed, mode="fuse", solar=True)
    assert report.written_over_fuse > -report.fuse, "the chargers charged"


@pytest.mark.parametrize("seed", PV_DAYS)
def test_a_pv_day(seed: int) -> None:
    report = _day(seed, mode="pv")
    # The import the chargers cause stays within the stop hysteresis, but for the
    # moments a cloud needs to reach the chargers (one interval plus their reaction).
    assert report.worst_pv_import <= report.interval + REACTION, report
    assert sum(report.energy.values()) > 0, "the sun charged the cars"
    # No car the site started was stopped by a cloud inside pv_min_charge_time (seed 202
    # had three such runs, the shortest 32 s, before the minimum charge time held).
    assert report.short_pv_runs == 0, report
    assert report.shortest_pv_run is not None, "the sun started and stopped a car"


def test_a_pv_days_import_while_the_meter_is_silent_is_the_fallbacks_measured_apart() -> None:
    """Found running more seeds than these tests: on pv day 3029 a heat pump started
    while the meter was silent, and the garage's 6 A (1380 W) came from the grid for 127
    s, then stopped within seconds of the meter's return. The site cannot see the sun
    without the meter: like the fuse's, the pv bound holds from the meter's return, and
    the silent stretch (the fallback current's doing) is measured apart."""
    report = _day(3029, mode="pv")
    assert report.worst_pv_import <= report.interval + REACTION, report
    assert report.silent_pv_import > report.interval + REACTION  # the stretch is there
    # The measure itself, on constructed seconds: 127 silent, then 8 from the return.
    measured, runs = DayReport(3029, "pv", 25.0, 5.0), [0, 0, 0]
    for _ in range(127):
        _measure_pv(measured, runs, over=True, silent=True, reached=True)
    for _ in range(8):
        _measure_pv(measured, runs, over=True, silent=False, reached=True)
    _measure_pv(measured, runs, over=False, silent=False, reached=True)
    assert (measured.silent_pv_import, measured.worst_pv_import) == (127, 8)
    assert measured.pv_import_over == 8


@pytest.mark.parametrize("seed", OUTAGE_DAYS)
def test_a_pv_day_with_a_long_meter_outage_charges_blind_no_longer_than_the_limit(
    seed: int,
) -> None:
    report = _day(seed, mode="pv", outage=True)
    assert report.outage is not None
    # No charger draws blind longer than pv_blind_limit plus one decision and its
    # reaction (counted from the last valid reading, or its car's start).
    assert report.longest_blind_run <= BLIND_LIMIT + report.interval + REACTION, report
    # The limit paused a charger (the bound was put to work), and none sooner: the
    # fallback current holds through a shorter silence.
    assert report.shortest_blind_pause is not None, report
    assert report.shortest_blind_pause >= BLIND_LIMIT, report
    assert report.worst_pv_import <= report.interval + REACTION, report


def test_the_busiest_hour_is_any_hour_not_a_clock_hour() -> None:
    # The README promises at most 60 writes per charger "in any hour": 40 writes in the
    # last ten minutes before 01:00 and 40 in the first ten after are 80 in an hour.
    before = [3000 + 15 * n for n in range(40)]
    after = [3600 + 15 * n for n in range(40)]
    assert busiest_hour(before + after) == 80
    assert busiest_hour([0, 3599, 3600, 7199]) == 2
    assert busiest_hour([]) == 0


def test_a_fuse_day_above_the_fuse_only_with_an_offline_charger_is_measured_apart() -> None:
    """Fuse day 7018 (before 2026-12-07): the garage's car (one phase, 13 A) went offline
    at 82143 s, a kettle came on phase 2 at 82196 s, and at 82296 s a three-phase car took
    the garage's place: phase 2 carried 25.6 A for 39 s until the garage was seen again
    and lowered (the carport, the only charger the site could write, already paused). No
    write bounds that: the 13 A fit phase 2 at their write (4.5 A of house there), and a
    three-phase car then would have done the same. Measured apart, like the fallback's
    share. Since a charger goes back to its maximum (2026-12-07) day 7018 shows no such
    stretch (0 s), and no seed searched did: fuse days 7000-7159, 5000-5013 with --solar,
    and 12 to 8806 that a screen picked (a car plugged in while its charger was offline).
    The day still holds every bound; the measure is held to constructed seconds: those
    39 s, then 7 with the carport (online) drawing on the phase too."""
    _day(7018, mode="fuse")
    report, runs = DayReport(7018, "fuse", 25.0, 5.0), ([0, 0, 0], [0, 0, 0])
    house = (4.0, 12.6, 4.0)
    for t in range(39):  # phase 2: 12.6 A of house and the offline garage's 13 A
        _measure(report, t, (17.0, 25.6, 17.0), house, [0.0, 0.0, 0.0], runs, silent=False)
    for t in range(39, 46):  # the carport, which the site can write, draws there too
        _measure(report, t, (23.0, 25.6, 23.0), house, [6.0, 6.0, 6.0], runs, silent=False)
    assert (report.offline_overshoot, report.offline_overshoot_seconds) == (39, 39)
    assert (report.worst_overshoot, report.overshoot_seconds) == (7, 7)


def test_a_pv_days_import_while_only_an_offline_charger_draws_is_measured_apart() -> None:
    """pv day 7008: a cloud came as the garage (7 A on one phase) went offline at 64930
    s; it drew 1380 W from the grid for 123 s (117 s since 2026-12-07), and was paused in
    the decision that saw it again. The site saw the cloud but could reach no charger
    that drew."""
    report = run_day(7008, mode="pv")
    _common(report)
    assert report.worst_pv_import <= report.interval + REACTION, report
    assert report.offline_pv_import > 100, report
    # The measure itself, on constructed seconds: 123 offline, then 4 once it is seen.
    measured, runs = DayReport(7008, "pv", 25.0, 5.0), [0, 0, 0]
    for _ in range(123):
        _measure_pv(measured, runs, over=True, silent=False, reached=False)
    for _ in range(4):
        _measure_pv(measured, runs, over=True, silent=False, reached=True)
    assert (measured.offline_pv_import, measured.worst_pv_import) == (123, 4)


@pytest.mark.parametrize("seed", [7002, 7003])
def test_a_fuse_day_with_a_charger_whose_nrg_hides_two_phases(seed: int) -> None:
    """The garage's nrg shows 0 A on phases 2 and 3 whatever its car draws there (a faulty
    charger; a real go-e does not). Before, it was counted on phase 1 alone and raised on
    phase 1's room: on fuse days 7000-7009 its limit went up to 17.7 A beyond another
    phase's room (what kept the stretches short was that a phase's room below 0 pauses
    every charger). Counted on every phase, and what it draws there as the house's too,
    it gets less, never more."""
    report = run_day(seed, mode="fuse", faulty_nrg=True)
    _common(report)


def test_a_pv_day_with_a_charger_whose_nrg_hides_two_phases() -> None:
    """pv day 7008 with the garage's nrg showing 0 A on phases 2 and 3 measured 296 s of
    import beyond the hysteresis. Traced: its three-phase car was learned on phase 1 at
    its first start and kept so while plugged in, so each restart was decided on the sun
    for 6 A on one phase (1380 W) and drew 6 A on three (4140 W); the minimum charge time
    held it (by design: a start keeps its minimum for pv_min_charge_time), and the
    simulation allowed that hold the site's view of the phases, not the car's. Measured
    with the car's phases, the site's own stretch is within the bound; what the wrong
    starts cost is the grid energy the README gives (989 Wh that day)."""
    report = _day(7008, mode="pv", faulty_nrg=True)
    assert report.worst_pv_import <= report.interval + REACTION, report
    assert sum(report.energy.values()) > 0, "the sun charged the car"
