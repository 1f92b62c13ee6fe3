"""What the controller knows of each charger: what it shows now, and what the site did.

``ChargerSeen`` is one look at a charger (from its go-e status); ``Managed`` is the
site's memory of it across decisions (what was written, when it paused, its phases).
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from goe2mqtt.catalogue.limits import current_bounds
from goe2mqtt.config.site import SiteChargerSettings, SiteSettings
from goe2mqtt.site.sharing import Claim
from goe2mqtt.util.numbers import finite_number

NOMINAL_VOLTS = 230.0
# A mains voltage a charger's nrg may show: EN 50160's 230 V +-10 %. Anything else (a
# wrong scaling, garbage) is taken as NOMINAL_VOLTS; room.py never takes one above it.
PLAUSIBLE_VOLTS = (207.0, 253.0)
DRAWING = 1.0  # A on a phase: below this the phase is taken as not drawn on
MAX_PHASE_CURRENT = 40.0  # A: a go-e charger's 32 A and a margin; beyond it, garbage
CHARGING = 2  # go-e car state: charging
NO_CAR = 1
FORCE_OFF = 1  # frc: stop now
FORCE_STATES = (0, 1, 2)  # frc: neutral, off, on
HOUR = 3600.0
MISMATCH_GRACE = 10.0  # s: a limit still not shown this long after its write is written again
# A a car may draw above the limit written (the pilot's rounding, the charger's own
# measurement). Beyond it, once MISMATCH_GRACE has passed since the write, the charger
# is not following the site (a firmware that ignores tcl, the app or a button resuming
# a paused charger): what it draws beyond is counted as load the site does not steer.
FOLLOW_TOLERANCE = 1.0
RESEND_MAX = 300.0  # s: a write the charger never shows is sent again at least this often


@dataclass(frozen=True)
class ChargerSeen:
    """One look at a charger, as far as the site cares."""

    online: bool
    car: int | None = None
    currents: tuple[float, float, float] = (0.0, 0.0, 0.0)  # A per phase, from nrg
    volts: tuple[float, float, float] = (NOMINAL_VOLTS,) * 3
    low: int = 6  # A: what the charger takes at least (mca)
    high: int = 32  # A: what it allows at most (ama, cable, adapter, temperature)
    psm: int | None = None  # 1: forced one phase
    frc: int | None = None
    limit: int | None = None  # the current limit it shows (tcl, or amp without tcl)
    has_tcl: bool = True  # its firmware knows tcl (else the site writes amp)

    @property
    def drawing(self) -> bool:
        """Its car charges: the car state says so, or its nrg shows a current. A status
        whose keys disagree (a push's deltas apart, a firmware's lag, no car state) is
        taken by its current: the meter's reading less that current was room no charger
        claimed (a car state of 4 beside 16 A drawn let another charger take them)."""
        return self.car == CHARGING or max(self.currents) >= DRAWING


def seen_from_status(status: Mapping[str, Any], *, online: bool) -> ChargerSeen:
    """A go-e status (as the bridge keeps it) as the site sees it."""
    nrg = status.get("nrg")
    volts: tuple[float, float, float] = (NOMINAL_VOLTS,) * 3
    currents = (0.0, 0.0, 0.0)
    if isinstance(nrg, list) and len(nrg) >= 7:
        numbers = [_number(v) for v in nrg[:7]]
        lowest, highest = PLAUSIBLE_VOLTS
        volts = tuple(v if v is not None and lowest <= v <= highest else NOMINAL_VOLTS
                      for v in numbers[:3])  # type: ignore[assignment]  # fmt: skip
        # Beyond what a charger draws (garbage, 6553.5 "no value"): taken as 0, so the
        # meter's reading counts it as other load, never as room.
        currents = tuple(i if i is not None and 0.0 <= i <= MAX_PHASE_CURRENT else 0.0
                         for i in numbers[4:7])  # type: ignore[assignment]  # fmt: skip
    bounds = current_bounds(status)
    low, high = int(bounds[0]), int(bounds[1])
    has_tcl = "tcl" in status
    # null: no temporary limit, the current is amp's. A value no current could be (-1,
    # 6553) is none: "taken over" at it, the site wrote what the command path refuses.
    tcl = _amps(status.get("tcl"))
    limit = tcl if tcl is not None else _amps(status.get("amp"))
    frc = _integer(status.get("frc"))  # 0, 1, 2: another was restored on a resume
    return ChargerSeen(
        online=online,
        car=_integer(status.get("car")),
        currents=currents,
        volts=volts,
        low=low,
        high=high,
        psm=_integer(status.get("psm")),
        frc=frc if frc in FORCE_STATES else None,
        limit=limit,
        has_tcl=has_tcl,
    )


def _number(value: Any) -> float | None:
    if type(value) is float:  # the common case first: a status is read every second
        return value if math.isfinite(value) else None
    number = finite_number(value)
    return None if number is None else float(number)


def _amps(value: Any) -> int | None:
    amps = _integer(value)
    return amps if amps is not None and 0 <= amps <= MAX_PHASE_CURRENT else None


def _integer(value: Any) -> int | None:
    number = finite_number(value)
    return int(number) if number is not None and float(number).is_integer() else None


@dataclass
class Managed:
    """The site's memory of one of its chargers."""

    settings: SiteChargerSettings
    order: int
    priority: int
    seen: ChargerSeen = field(default_factory=lambda: ChargerSeen(online=False))
    written: int | None = None  # A the site last wrote
    written_at: float = -math.inf
    paused: bool = False  # the site forced it off
    paused_at: float = -math.inf
    frc_before: int = 0  # what frc was before the site paused it: restored on resume
    fits_since: float | None = None  # room for its minimum since (while paused)
    started_at: float = -math.inf  # pv: when it last started
    phases: tuple[int, ...] | None = None  # learned from what it draws on
    last_draw: tuple[float, float, float] = (0.0, 0.0, 0.0)  # kept while offline
    limit_since: float = -math.inf  # since when the site's limit (or pause) is what it is
    unheeded: int = 0  # writes sent again in a row that the charger did not show
    raised_on: object = None  # the meter reading its last raise was decided on
    share: float = 0.0  # A it was given at the last decision
    why: str = ""
    writes: deque[float] = field(default_factory=deque)

    @property
    def name(self) -> str:
        return self.settings.name

    def learn(self, seen: ChargerSeen) -> None:
        """Take a new look (an offline look keeps what was drawn last)."""
        self.seen = seen
        if not seen.online:
            return
        self.last_draw = seen.currents
        if seen.car == NO_CAR:
            self.phases = None  # the next car may use other phases
        elif seen.drawing:
            drawn = tuple(p for p in range(3) if seen.currents[p] >= DRAWING)
            if drawn:
                self.phases = drawn

    def draws_on(self) -> tuple[int, ...]:
        """The phases its current counts on in watts: those seen drawn, phase 1 when
        forced to one phase, else all three (an unknown car may use every phase)."""
        if self.phases is not None:
            return self.phases
        return (0,) if self.seen.psm == 1 else (0, 1, 2)

    def may_draw_on(self) -> tuple[int, ...]:
        """The phases its limit must have room on under the fuse: all three unless it is
        forced to one phase (psm 1: the phase seen drawn, else phase 1). A car seen on one
        phase may be on three the next second, unseen while the charger is offline (go-e's
        own phase switching, another car plugged in): a limit sized for one phase then
        overloads the others until the site can write again."""
        if self.seen.psm == 1:
            return self.phases if self.phases is not None else (0,)
        return (0, 1, 2)

    def claim(self, now: float, site: SiteSettings, *, pv: bool) -> Claim:
        """What it needs and may take at this decision (site/sharing.py)."""
        low, high = self.bounds()
        # A pv start keeps its minimum for pv_min_charge_time whatever the sun does (the
        # fuse and import_limit still hold): a cloud does not stop a car that has just
        # started, as go-e's own minimum charging time (fmt) and evcc's disable delay do.
        first = pv and not self.paused and now - self.started_at < site.pv_min_charge_time
        slack = math.inf if first else site.pv_stop_hysteresis
        return Claim(
            name=self.name,
            priority=self.priority,
            order=self.order,
            phases=self.draws_on(),
            room_on=self.may_draw_on(),
            low=low,
            high=high,
            pv_slack=slack if pv and not self.paused else 0.0,
            first=first,
        )

    def over_cap(self) -> str | None:
        """Why it cannot charge within its max_current (None: it can): the charger's own
        minimum (mca, set in the app) above it. Such a charger is paused, never written
        its minimum: max_current is the user's cap."""
        low = max(self.settings.min_current, self.seen.low)
        if low <= self.settings.max_current:
            return None
        return f"its minimum {low} A (mca) is above its max_current {self.settings.max_current} A"

    def bounds(self) -> tuple[int, int]:
        """(min, max) A: the site's and the charger's limits together."""
        low = max(self.settings.min_current, self.seen.low)
        high = min(self.settings.max_current, self.seen.high)
        return low, max(low, high)

    def allowed(self, now: float) -> float | None:
        """A per phase it may draw by the site's last write, once it has had
        MISMATCH_GRACE to follow it; None: no bound yet (not written, still following)."""
        if (not self.paused and self.written is None) or now - self.limit_since < MISMATCH_GRACE:
            return None
        return (0.0 if self.paused else float(self.written or 0)) + FOLLOW_TOLERANCE

    def defies_pause(self, now: float) -> bool:
        """Paused by the site, yet resumed (the app, a button, a user's start_charging):
        it shows another force state, or draws, MISMATCH_GRACE after the pause."""
        if not self.paused or now - self.limit_since < MISMATCH_GRACE:
            return False
        frc = self.seen.frc
        return (frc is not None and frc != FORCE_OFF) or max(self.seen.currents) >= FOLLOW_TOLERANCE

    def resend_wait(self) -> float:
        """How long after the last write one the charger does not show is sent again:
        MISMATCH_GRACE, then twice as long each time in a row (at most RESEND_MAX)."""
        return min(MISMATCH_GRACE * 2.0 ** min(self.unheeded, 8), RESEND_MAX)

    def count_write(self, now: float) -> None:
        self.writes.append(now)
        self.writes_in_hour(now)

    def writes_in_hour(self, now: float) -> int:
        while self.writes and self.writes[0] <= now - HOUR:
            self.writes.popleft()
        return len(self.writes)
