"""One seeded day of a site: a house, a meter, chargers with cars, and the controller.

Simulated time, one step a second, no sockets: a day runs in about a second. Chargers
follow a new current after a realistic delay (the command's way, then the charger's
once-a-second logic and the car's own ramp); cars arrive, need energy and taper when
nearly full; a charger drops offline now and then; ``tcl`` expires after 10 minutes
like the firmware's. What the day measures is what the issue's properties are about.
With ``solar``, a fuse day's house has PV too and its meter measures export (``meter_exports``).
With ``outage``, the meter also has one long outage (``meter_outage``): hours silent or
of nothing but bad readings, most starting in the afternoon and lasting into the night.
With ``faulty_nrg``, the garage's nrg shows 0 A on phases 2 and 3 whatever it draws.
Overshoot and pv import are measured by whose they are: the site's (a charger it can
write draws), the offline chargers' (only they draw: the site cannot reach them), the
fallback's (the meter silent) or the house's alone.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from typing import Any

from goe2mqtt.config.site import SiteChargerSettings, SiteSettings
from goe2mqtt.sim.house import DAY, VOLTS, Amps, House, Meter, Sun
from goe2mqtt.sim.site_charger import REACTION, SimCharger
from goe2mqtt.site.controller import STARTING, Mode, SiteController
from goe2mqtt.site.meter import MeterInvalid, parse_meter
from goe2mqtt.site.seen import seen_from_status

__all__ = ["REACTION", "DayReport", "SimCharger", "busiest_hour", "meter_outage", "run_day"]


@dataclass
class DayReport:
    seed: int
    mode: str
    fuse: float
    interval: float
    # s a phase was above the fuse in one stretch (meter live), while a charger the site
    # can reach drew on it: the site's to end within one interval and the reaction.
    worst_overshoot: int = 0
    # A the limits the site has written exceed the fuse by on a phase (the largest at any
    # decision; negative: below it): each charger's written limit on its car's phases.
    written_over_fuse: float = -math.inf
    # A the limits written to the chargers the site steers exceed its room by on a phase
    # (the largest at any decision, after its writes): each limit counted on every phase
    # its charger may draw on (the simulation's never forced to one: a car may switch).
    written_over_room: float = -math.inf
    overshoot_seconds: int = 0
    silent_overshoot: int = 0  # the same while the meter was silent (fallback's doing)
    house_overshoot_seconds: int = 0  # the house alone above the fuse: nobody's doing
    # Above the fuse with only offline chargers drawing on the phase (meter live): the
    # house rose while the site could not write them - the longest stretch, and in all.
    offline_overshoot: int = 0
    offline_overshoot_seconds: int = 0
    lowest_write: int | None = None
    writes_per_hour: dict[str, int] = field(default_factory=dict)  # in the busiest hour
    writes: dict[str, int] = field(default_factory=dict)
    fallback_late: list[str] = field(default_factory=list)
    pv_import_over: int = 0  # s of site-caused import beyond the hysteresis (meter live)
    worst_pv_import: int = 0  # the longest such stretch, counted from the meter's return
    silent_pv_import: int = 0  # the longest while the meter was silent (fallback's doing)
    # The longest with every charger that draws offline, the meter speaking: the site
    # sees the cloud but cannot pause a charger it cannot reach.
    offline_pv_import: int = 0
    # pv runs the site started and then paused for want of sun: the shortest (s), and how
    # many ended inside pv_min_charge_time (a cloud stopping a car that has just started).
    shortest_pv_run: int | None = None
    short_pv_runs: int = 0
    pv_grid_wh: float = 0.0  # Wh the chargers took from the grid (their import, all day)
    outage: tuple[int, int, bool] | None = None  # the long one: start, end, garbled
    # While the meter had given no valid reading for more than an interval (blind): the
    # Wh the chargers took from the grid, and the longest a charger drew in one stretch,
    # counted from the last valid reading, its car's start or its coming back online
    # (whichever is last: the site cannot pause a charger it cannot reach).
    blind_grid_wh: float = 0.0
    longest_blind_run: int = 0
    # The fewest s without a valid reading after which the fallback paused a charger
    # (None: it never did; pv pauses only past pv_blind_limit, fallback_current 0 at once).
    shortest_blind_pause: int | None = None
    energy: dict[str, float] = field(default_factory=dict)  # kWh each charger gave
    decisions: int = 0


def site_settings(mode: Mode, fuse: float, interval: float, **over: Any) -> SiteSettings:
    return SiteSettings(
        name="house", fuse=fuse, meter_topic="home/meter", interval=interval, mode=mode,
        meter_exports=over.pop("meter_exports", mode == "pv"), chargers=(
            SiteChargerSettings(name="garage", priority=1, max_current=16),
            SiteChargerSettings(name="carport", priority=2),
        ), **over,
    )  # fmt: skip


def meter_outage(seed: int) -> tuple[int, int, bool]:
    """A day's long meter outage (start, end, garbled), from a stream of its own, so the
    rest of the day is the day without it: six in ten start in the afternoon (12-18 h),
    the rest at any time; 5 minutes to 12 hours long (as many under an hour as over),
    into the night; one in three publishes garbage instead of falling silent."""
    rng = random.Random(f"meter outage {seed}")
    afternoon = rng.random() < 0.6
    start = rng.randrange(12 * 3600, 18 * 3600) if afternoon else rng.randrange(0, DAY - 600)
    length = round(math.exp(rng.uniform(math.log(300), math.log(12 * 3600))))
    return start, min(DAY, start + length), rng.random() < 1 / 3


def run_day(seed: int, *, mode: Mode = "fuse", fuse: float = 25.0, interval: float = 5.0,
            outage: bool = False, solar: bool = False, faulty_nrg: bool = False,
            **site: Any) -> DayReport:  # fmt: skip
    """One seeded day; ``site``: settings of the site beyond the simulation's own.
    ``faulty_nrg``: the garage's nrg shows 0 A on phases 2 and 3, whatever it draws."""
    rng = random.Random(seed)
    house = House(rng, heavy=rng.uniform(0.6, 1.1))
    exports = mode == "pv" or solar
    sun = Sun(rng, peak=rng.uniform(6000, 11000)) if exports else None
    meter = Meter(rng, period=rng.randrange(1, int(interval) + 1), exports=exports)
    settings = site_settings(mode, fuse, interval, **({"meter_exports": True} if solar else {}),
                             **site)  # fmt: skip
    controller = SiteController(settings)
    chargers = [SimCharger(c.name, rng, own_amp=16) for c in settings.chargers]
    chargers[0].faulty_nrg = faulty_nrg
    report = DayReport(seed, mode, fuse, interval)
    if outage:
        report.outage = start, end, garbled = meter_outage(seed)
        meter.outage(start, end, garbled=garbled)
    last_decision = -1e9
    last_reading = 0
    run, unreached = [0, 0, 0], [0, 0, 0]
    pv_runs = [0, 0, 0]  # the stretches of pv import so far: the site's, silent, offline
    drawing_since: dict[str, int] = {}
    for t in range(DAY):
        for charger in chargers:
            charger.step(t)
        other = house.at(t)
        looks = [c.currents() for c in chargers]
        drawn = [sum(look[p] for look in looks) for p in range(3)]
        sun_amps = sun.at(t) / 3 / VOLTS if sun is not None else 0.0
        grid = (other[0] + drawn[0] - sun_amps, other[1] + drawn[1] - sun_amps,
                other[2] + drawn[2] - sun_amps)  # fmt: skip
        due = t - last_decision >= interval
        payload = meter.payload(t, grid)
        if payload is not None:
            try:
                controller.meter(parse_meter(payload, exports=exports), t)
                last_reading = t
            except MeterInvalid as exc:
                controller.meter_invalid(str(exc), t)
            due = due or t - last_decision >= 1
        if due:
            last_decision = t
            report.decisions += 1
            for charger in chargers:
                online = charger.online(t)
                controller.see(charger.name, seen_from_status(charger.status(), online=online))
            running = {m.name: m.started_at for m in controller.managed.values() if not m.paused}
            for write in controller.decide(t).writes:
                next(c for c in chargers if c.name == write.charger).send(t, write.call)
                if write.call.get("frc") == 1 and write.why.startswith("fallback:"):
                    fewest, blind_for = report.shortest_blind_pause, t - last_reading
                    report.shortest_blind_pause = blind_for if fewest is None \
                        else min(fewest, blind_for)  # fmt: skip
                for key, value in write.call.items():
                    if key in ("tcl", "amp") and value is not None:
                        low = report.lowest_write
                        report.lowest_write = value if low is None else min(low, value)
            report.written_over_fuse = max(
                report.written_over_fuse, _written_over_fuse(controller, chargers, fuse)
            )
            report.written_over_room = max(
                report.written_over_room, _written_over_room(controller, t)
            )
            if t - last_reading > settings.meter_timeout + interval:
                _check_fallback(controller, report, t)
            _measure_runs(controller, report, running, t)
        # Silent: in a silent spell, or no valid reading for longer than the meter's period
        # (a broken one). Not the seconds between two readings: with "2 s without one",
        # a meter publishing every 4-5 s cut every stretch of pv import into pieces of 3 s.
        silent = meter.is_silent(t) or t - last_reading > meter.period + 1
        reach = [sum(c.currents()[p] for c in chargers if c.online(t)) for p in range(3)]
        _measure(report, t, grid, other, reach, (run, unreached), silent)
        blind = t - last_reading > interval
        _measure_blind(report, chargers, drawing_since, t, last_reading, blind=blind)
        if blind:
            sun_now = sun_amps if sun is not None else 0.0
            report.blind_grid_wh += max(0.0, _site_import(grid, other, sun_now)) / 3600
        if sun is not None and mode == "pv":
            caused = _site_import(grid, other, sun_amps)
            # A start keeps its minimum through pv_min_charge_time whatever the sun does:
            # that much import is the minimum charge time's, not the site's to end.
            kept = _kept_minimums(controller, chargers, t)
            report.pv_grid_wh += max(0.0, caused) / 3600
            over = caused > settings.pv_stop_hysteresis + kept + PV_TOLERANCE
            _measure_pv(report, pv_runs, over=over, silent=silent, reached=any(reach))
    for charger in chargers:
        times = [t for t, _ in charger.written]
        report.writes[charger.name] = len(times)
        report.energy[charger.name] = round(charger.delivered / 1000, 1)
        report.writes_per_hour[charger.name] = busiest_hour(times)
    return report


def _measure_pv(report: DayReport, runs: list[int], *, over: bool, silent: bool,
                reached: bool) -> None:  # fmt: skip
    """A second of pv, by whose its import beyond the hysteresis is (``over``): ``runs``
    the stretches so far (the site's, the silent meter's, the offline chargers')."""
    if not over:
        runs[:] = [0, 0, 0]
    elif silent:
        # The site cannot see the sun: the chargers keep their share, then the fallback
        # current (a house load that rises meanwhile is paid from the grid).
        runs[:] = [0, runs[1] + 1, 0]
        report.silent_pv_import = max(report.silent_pv_import, runs[1])
    elif not reached:  # only chargers offline draw: none the site can pause
        runs[0], runs[2] = 0, runs[2] + 1
        report.offline_pv_import = max(report.offline_pv_import, runs[2])
    else:  # counted from the meter's return: the site's to end within the bound
        runs[0] += 1
        report.pv_import_over += 1
        report.worst_pv_import = max(report.worst_pv_import, runs[0])


def busiest_hour(times: list[int]) -> int:
    """The most writes in any hour (a window of 3600 s from any write), not only in the
    clock's hours: 40 writes before 01:00 and 40 after are 80 in an hour."""
    ordered = sorted(times)
    most, first = 0, 0
    for last, at in enumerate(ordered):
        while ordered[first] <= at - 3600:
            first += 1
        most = max(most, last - first + 1)
    return most


PV_TOLERANCE = 60.0  # W: the meter's noise and the whole-ampere steps


def _site_import(grid: Amps, other: Amps, sun_amps: float) -> float:
    """W of import the chargers cause: the import now, less what the house alone imports."""
    with_chargers = max(0.0, sum(grid) * VOLTS)
    alone = max(0.0, sum(i - sun_amps for i in other) * VOLTS)
    return with_chargers - alone


def _kept_minimums(controller: SiteController, chargers: list[SimCharger], t: int) -> float:
    """W the chargers inside their pv minimum charge time may take from the grid: the
    minimum on every phase its car draws on (the car's own, not the site's view: a
    faulty nrg hides two of a three-phase car's, and the minimum it keeps is 3 x 6 A)."""
    hold = controller.settings.pv_min_charge_time
    kept = 0.0
    for charger in chargers:
        m = controller.managed[charger.name]
        if not m.paused and t - m.started_at < hold:
            phases = len(charger.car.phases) if charger.car is not None else len(m.draws_on())
            kept += m.bounds()[0] * VOLTS * phases
    return kept


def _written_over_fuse(controller: SiteController, chargers: list[SimCharger],
                      fuse: float) -> float:  # fmt: skip
    """A the site's written limits exceed the fuse by on the worst phase: what its
    chargers would draw, their cars willing, were the sun gone and the house idle."""
    load = [0.0, 0.0, 0.0]
    for charger in chargers:
        m = controller.managed[charger.name]
        if charger.car is not None and not m.paused and m.written is not None:
            for p in charger.car.phases:
                load[p] += m.written
    return max(load) - fuse


def _written_over_room(controller: SiteController, t: int) -> float:
    """A the limits in force for the chargers the site shared its room among exceed that
    room by on the worst phase (a phase's room below 0 - the house, an offline charger's
    reserve - is none). The simulation's chargers are never forced to one phase: a limit
    counts on all three, for a car seen on one may be on three the next second."""
    room = controller.room
    if room is None or controller.fallback is not None or controller.mode == "off":
        return -math.inf
    load = 0.0
    for m in controller.managed.values():
        claims = m.seen.drawing or t - m.started_at < STARTING
        if m.seen.online and claims and not m.paused and m.written is not None:
            load += m.written
    return max(load - max(r, 0.0) for r in room) if load else -math.inf


def _measure_runs(controller: SiteController, report: DayReport, running: dict[str, float],
                  t: int) -> None:  # fmt: skip
    """The pv runs this decision ended by a pause for want of sun, by their length."""
    for name, started_at in running.items():
        m = controller.managed[name]
        if not m.paused or started_at == float("-inf") or "no sun" not in m.why:
            continue
        length = int(t - started_at)
        shortest = report.shortest_pv_run
        report.shortest_pv_run = length if shortest is None else min(shortest, length)
        if length < controller.settings.pv_min_charge_time:
            report.short_pv_runs += 1


def _measure_blind(report: DayReport, chargers: list[SimCharger], since: dict[str, int],
                   t: int, last_reading: int, *, blind: bool) -> None:  # fmt: skip
    """The longest stretch a charger drew blind; ``since``: from when each charger has
    drawn, online, without a break."""
    for charger in chargers:
        if not any(charger.currents()) or not charger.online(t):
            since.pop(charger.name, None)
            continue
        start = since.setdefault(charger.name, t)
        if blind:
            stretch = t - max(start, last_reading)
            report.longest_blind_run = max(report.longest_blind_run, stretch)


def _check_fallback(controller: SiteController, report: DayReport, t: int) -> None:
    """The meter has been silent past its timeout and a decision ran: every charging
    charger must be at the fallback current or paused by now."""
    fallback = controller.settings.fallback_current
    for m in controller.managed.values():
        if m.seen.online and m.seen.drawing and not m.paused and (m.written or 99) > fallback:
            report.fallback_late.append(f"{m.name} at {t} s: {m.written} A")


def _measure(report: DayReport, t: int, grid: Amps, other: Amps, reach: list[float],
             runs: tuple[list[int], list[int]], silent: bool) -> None:  # fmt: skip
    """A second's overshoot, by whose it is: ``reach`` is what the chargers online draw
    per phase; ``runs`` the stretches so far (the site's, the offline chargers')."""
    run, unreached = runs
    for p in range(3):
        if grid[p] > report.fuse + 1e-6:  # at the rating exactly a fuse holds for ever
            if other[p] > report.fuse:
                report.house_overshoot_seconds += 1
                continue
            if reach[p] < 1e-9 and not silent:  # only chargers the site cannot write
                run[p], unreached[p] = 0, unreached[p] + 1
                report.offline_overshoot_seconds += 1
                report.offline_overshoot = max(report.offline_overshoot, unreached[p])
                continue
            unreached[p] = 0
            run[p] += 1
            if silent:
                report.silent_overshoot = max(report.silent_overshoot, run[p])
            else:
                report.overshoot_seconds += 1
                report.worst_overshoot = max(report.worst_overshoot, run[p])
        else:
            run[p] = unreached[p] = 0
