"""How a room is shared: who gets their minimum, then what is left, by priority.

Pure arithmetic on one decision's numbers. Every charger that can have its minimum gets
it, in priority order (a pv start still inside its minimum charge time first); what
is left above the minimums goes to priority 1 up to its maximum, then 2, and equally
within a priority. A share is never above what every limit allows: per phase (the
fuse, on every phase a charger may draw on), in watts (import_limit) and in watts of
sun (pv, on the phases it draws on).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from itertools import groupby

SLACK = 1e-6  # float arithmetic: a share that fits exactly must count as fitting


@dataclass(frozen=True)
class Claim:
    """A charger that may draw: what it needs and may take."""

    name: str
    priority: int
    order: int  # its place in the site's list: ties of priority
    phases: tuple[int, ...]  # 0, 1, 2: the phases it draws on (its watts)
    # The phases its current needs room on for the fuse: every phase it may switch to
    # unseen, not only those it draws on now (Managed.may_draw_on).
    room_on: tuple[int, ...]
    low: int  # A: its minimum; below it the charger pauses
    high: int  # A: its maximum (site, charger, cable)
    # pv: W of import it may cause to keep its minimum (the stop hysteresis, for a
    # charger already running; unbounded inside its minimum charge time; 0 to start).
    pv_slack: float = 0.0
    first: bool = False  # a pv start inside its minimum charge time: kept before priority


@dataclass(frozen=True)
class Room:
    """What may still be drawn by the chargers that claim."""

    phases: tuple[float, float, float] | None  # A per phase (fuse); None: no fuse
    watts: float | None  # W in all (import_limit); None: no cap
    pv: float | None  # W of sun (mode pv); None: not pv
    volts: tuple[float, float, float] = (230.0, 230.0, 230.0)

    def watts_of(self, claim: Claim, amps: float) -> float:
        return amps * sum(self.volts[p] for p in claim.phases)


def share(claims: Sequence[Claim], room: Room) -> dict[str, float]:
    """Each claim's current (A, a float; 0 for one that cannot have its minimum)."""
    admitted: list[Claim] = []
    for claim in sorted(claims, key=lambda c: (not c.first, c.priority, c.order)):
        trial = {c.name: float(c.low) for c in (*admitted, claim)}
        if _fits([*admitted, claim], trial, room, pv_slack=claim.pv_slack):
            admitted.append(claim)
    shares = {c.name: 0.0 for c in claims}
    shares.update({c.name: float(c.low) for c in admitted})
    # Above the minimums only real sun counts (the slack kept minimums, never more).
    pv_floor = sum(room.watts_of(c, c.low) for c in admitted)
    level_room = room
    if room.pv is not None and room.pv < pv_floor:
        level_room = Room(room.phases, room.watts, pv_floor, room.volts)
    by_priority = sorted(admitted, key=lambda c: c.priority)
    for _, group_iter in groupby(by_priority, key=lambda c: c.priority):
        group = list(group_iter)
        level = _highest_level(group, admitted, shares, level_room)
        for claim in group:
            shares[claim.name] = _clamp(level, claim)
    return shares


def room_beyond(
    claims: Sequence[Claim], room: Room, shares: Mapping[str, float], extra: float
) -> set[str]:
    """The claims whose share is their maximum and that would still fit ``extra`` A above
    it, the others at their shares: room to spare beyond the maximum, which a share
    capped there cannot show (the controller's up needs an ampere to spare)."""
    topped = [c for c in claims if c.low <= shares[c.name] and shares[c.name] >= c.high - SLACK]
    found = set()
    for claim in topped:
        trial = {**shares, claim.name: shares[claim.name] + extra}
        if _fits(claims, trial, room, pv_slack=0.0):
            found.add(claim.name)
    return found


def short_of_sun(claims: Sequence[Claim], room: Room, shares: Mapping[str, float]) -> set[str]:
    """pv: the claims left below their minimum that the fuse and import_limit alone
    would have let have it - the sun is what lacks (the pause's reason, and the
    simulation's measure of pauses for want of sun)."""
    short = [c for c in claims if shares[c.name] < c.low]
    if room.pv is None or not short:
        return set()
    unlit = share(claims, replace(room, pv=None))
    return {c.name for c in short if unlit[c.name] >= c.low}


def _clamp(level: float, claim: Claim) -> float:
    return min(max(level, float(claim.low)), float(claim.high))


def _highest_level(
    group: Sequence[Claim], admitted: Sequence[Claim], shares: Mapping[str, float], room: Room
) -> float:
    """The highest equal level for a priority group, the others as they stand: the
    lowest of what each limit allows (each is a sum of clamped levels, piecewise linear)."""
    members = {c.name for c in group}
    others = [c for c in admitted if c.name not in members]
    top = float(max(c.high for c in group))
    level = top
    if room.phases is not None:
        for p in range(3):
            fixed = sum(shares[c.name] for c in others if p in c.room_on)
            terms = [(c.low, c.high, 1.0) for c in group if p in c.room_on]
            level = min(level, _reach(terms, room.phases[p] - fixed, top))
    budgets = [b for b in (room.watts, room.pv) if b is not None]
    if budgets:
        fixed = sum(room.watts_of(c, shares[c.name]) for c in others)
        terms = [(c.low, c.high, room.watts_of(c, 1.0)) for c in group]
        for budget in budgets:
            level = min(level, _reach(terms, budget - fixed, top))
    return level


def _reach(terms: Sequence[tuple[int, int, float]], budget: float, top: float) -> float:
    """The highest x <= top with sum(coef * clamp(x, low, high)) <= budget."""
    if not terms:
        return top

    def total(x: float) -> float:
        return sum(coef * min(max(x, low), high) for low, high, coef in terms)

    if total(top) <= budget + SLACK:
        return top
    points = sorted({float(b) for low, high, _ in terms for b in (low, high)} | {0.0})
    below = 0.0
    for point in points:
        if total(point) > budget + SLACK:
            # Linear between the last point that fits and this one.
            slope = (total(point) - total(below)) / (point - below) if point > below else 0.0
            if slope <= 0:
                return below
            return below + (budget - total(below)) / slope
        below = point
    return below


def _fits(
    claims: Sequence[Claim], amps: Mapping[str, float], room: Room, *, pv_slack: float
) -> bool:
    if room.phases is not None:
        # Only the phases the claims draw on: a phase without room (below 0) that none
        # of them may draw on is not theirs to relieve (a charger forced onto phase 2
        # was paused for phase 1's house load, which pausing it took nothing off).
        load: dict[int, float] = {}
        for claim in claims:
            for phase in claim.room_on:
                load[phase] = load.get(phase, 0.0) + amps[claim.name]
        if any(amps_there > room.phases[p] + SLACK for p, amps_there in load.items()):
            return False
    watts = sum(room.watts_of(c, amps[c.name]) for c in claims)
    if room.watts is not None and watts > room.watts + SLACK:
        return False
    return room.pv is None or watts <= room.pv + pv_slack + SLACK
