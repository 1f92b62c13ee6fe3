"""The site controller over many seeded simulated days: the figures the README quotes.

    PYTHONPATH=. python bench/site_days.py --fuse-days 40 --pv-days 20

Each day is a seed of goe2mqtt/sim/site_day.py (a house, a meter with silent spells and
broken readings, two chargers with cars that come, taper and leave), on simulated time.
Prints per mode: days, the worst stretch a phase spent above the fuse while the meter
spoke and a charger the site can write drew on it, the limits written against the fuse
and against the room of every phase their charger may draw on, the longest stretch above
the fuse with only offline chargers drawing on the phase (the site cannot write them),
the longest such stretch while the meter was silent (the fallback's doing), writes per
charger in the busiest hour and on average, the longest site-caused import beyond the
pv hysteresis, the shortest pv run the site started and a lack of sun ended (and how
many ended inside pv_min_charge_time), and whether every fallback came within one decision;
then the energy the chargers took from the grid while the meter was blind (no valid
reading for more than an interval) and the longest stretch a charger charged blind.
With --outages every day also has one long meter outage (sim/site_day.meter_outage:
hours silent or garbled, most starting in the afternoon and lasting into the night).
With --faulty-nrg the garage's nrg shows 0 A on phases 2 and 3, whatever it draws.

    PYTHONPATH=. python bench/site_days.py --fuse-days 0 --pv-days 30 --outages --first-seed 5000
"""

from __future__ import annotations

import argparse
import statistics
import time

from goe2mqtt.sim.site_day import REACTION, DayReport, run_day


def summary(mode: str, reports: list[DayReport], seconds: float) -> str:
    worst = max(r.worst_overshoot for r in reports)
    written = max(r.written_over_fuse for r in reports)
    over_room = max(r.written_over_room for r in reports)
    offline = max(reports, key=lambda r: r.offline_overshoot)
    pv_offline = max(r.offline_pv_import for r in reports)
    silent = max(r.silent_overshoot for r in reports)
    busiest = max(max(r.writes_per_hour.values()) for r in reports)
    per_hour = statistics.mean(w / 24 for r in reports for w in r.writes.values())
    late = sum(len(r.fallback_late) for r in reports)
    lowest = min(r.lowest_write or 99 for r in reports)
    pv = max(r.worst_pv_import for r in reports)
    pv_silent = max(r.silent_pv_import for r in reports)
    runs = [r.shortest_pv_run for r in reports if r.shortest_pv_run is not None]
    short = sum(r.short_pv_runs for r in reports)
    grid = sum(r.pv_grid_wh for r in reports) / 1000
    energy = sum(sum(r.energy.values()) for r in reports)
    bound = reports[0].interval + REACTION
    blind_kwh = sum(r.blind_grid_wh for r in reports) / 1000
    blind_run = max(reports, key=lambda r: r.longest_blind_run)
    return (
        f"{mode}: {len(reports)} days in {seconds:.0f} s; worst overshoot {worst} s (bound"
        f" {bound:g} s; {sum(r.overshoot_seconds for r in reports)} s in all); the limits"
        f" written {written:+g} A beyond the fuse at most, {over_room:+.1f} A beyond the room"
        f" of a phase their charger may draw on; with only offline chargers drawing on the"
        f" phase {offline.offline_overshoot} s (day {offline.seed},"
        f" {sum(r.offline_overshoot_seconds for r in reports)} s in all); while the"
        f" meter was silent {silent} s; writes per charger per hour: {per_hour:.1f} on"
        f" average, {busiest} in the busiest hour; lowest current written {lowest} A;"
        f" late fallbacks {late}" + (f"; longest pv import beyond the hysteresis {pv} s"
                                     f" (while the meter was silent {pv_silent} s, while only"
                                     f" offline chargers drew {pv_offline} s); shortest run"
                                     f" the site started and the sun ended"
                                     f" {min(runs, default=0)} s, {short} inside the minimum"
                                     f" charge time; {grid:.1f} of the {energy:.1f} kWh charged"
                                     f" came from the grid" if mode == "pv" else "")
        + f"; charged blind: {blind_kwh:.1f} kWh from the grid, the longest stretch"
        f" {blind_run.longest_blind_run} s (day {blind_run.seed})"
        + (f"; {sum(r.outage is not None for r in reports)} days with a long outage"
           if reports[0].outage is not None else "")
    )  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--fuse-days", type=int, default=20)
    parser.add_argument("--pv-days", type=int, default=10)
    parser.add_argument("--first-seed", type=int, default=1000)
    parser.add_argument("--outages", action="store_true",
                        help="every day also has one long meter outage")  # fmt: skip
    parser.add_argument(
        "--solar",
        action="store_true",
        help="fuse days: the house has PV and its meter measures export",
    )
    parser.add_argument("--faulty-nrg", action="store_true",
                        help="the garage's nrg shows 0 A on phases 2 and 3")  # fmt: skip
    args = parser.parse_args()
    for mode, days in (("fuse", args.fuse_days), ("pv", args.pv_days)):
        if not days:
            continue
        started = time.monotonic()
        reports = [run_day(args.first_seed + n, mode=mode, outage=args.outages,  # type: ignore[arg-type]
                           solar=args.solar, faulty_nrg=args.faulty_nrg)
                   for n in range(days)]  # fmt: skip
        print(summary(mode, reports, time.monotonic() - started), flush=True)


if __name__ == "__main__":
    main()
