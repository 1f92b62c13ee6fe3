"""One charger's sessions, from the statuses it sends: when one opens, what it
counts, how it ends.

Pure: the caller gives the time (unix for the books, monotonic for ages) and gets
back what changed, to store and publish. A session opens when a car connects and
closes when it is gone; a counter that runs backwards (beyond a late reading), or
faster than a charger can deliver, closes it flagged (never a negative or absurd
energy; evidence.py says how far it may move); a restart of the charger closes it
too. Energy is counted reading by reading, each interval priced and split into grid
and PV by that interval's grid reading.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from goe2mqtt.ledger.evidence import (
    allowance_wh,
    another_connection,
    set_while_away,
    time_away,
)
from goe2mqtt.ledger.pricing import Pricing
from goe2mqtt.ledger.readings import Reading
from goe2mqtt.ledger.record import (
    BRIDGE_GAP,
    CHARGER_RESTARTED,
    COUNTER_JUMP,
    UNPLUGGED,
    Session,
    new_id,
)

# A wall clock that moved this much more (or less) than the time seen to pass was set
# (a box without a battery clock booted in 1970, then NTP; a bad NTP server): the open
# session's times move with it, so that it lasts what it lasted and counts in the month
# it started by the set clock. Smaller steps are left as they are. A clock behind the
# session's last reading (set back a little while it ran, or behind it when the session
# is resumed after a restart of the bridge) leaves its times standing until it catches
# up with them: that catching up is no step.
CLOCK_STEP_S = 86_400.0


def grid_share(charger_w: float | None, grid_w: float | None) -> float:
    """The part of the charger's energy that came from the grid.

    The grid reading is the house meter and includes the charger, which is the load
    that follows the sun: the import is the charger's first. 9 kW drawn with 3 kW
    imported is a third grid; exporting, none of it. Without a reading, all of it."""
    if grid_w is None:
        return 1.0
    if charger_w is None or charger_w <= 0:
        return 1.0 if grid_w > 0 else 0.0
    return min(max(grid_w, 0.0), charger_w) / charger_w


@dataclass
class Step:
    """What one reading changed: sessions opened, closed, or counted."""

    opened: list[Session] = field(default_factory=list)
    closed: list[Session] = field(default_factory=list)
    counted: bool = False  # the open session's progress changed (written in batches)
    flagged: bool = False  # the open session got a new flag (written at once)
    # Why the car found after the bridge was away is another connection than the
    # resumed session's (which then closed), for the log.
    replugged: str | None = None


class Tracker:
    def __init__(
        self,
        charger: str,
        *,
        currency: str,
        pricing: Pricing | None,
        pv_price: float = 0.0,
        resumed: Session | None = None,
        new_id: Callable[[str, float], str] = new_id,
    ) -> None:
        self.charger = charger
        self.currency = currency
        self.pricing = pricing
        self.pv_price = pv_price
        self.open = resumed
        self._new_id = new_id
        # A session from disk: the bridge was away; until the first reading the
        # ages come from the wall clock and the charger's (evidence.time_away), and
        # a clock set ahead meanwhile from the charger's (evidence.set_while_away).
        self._seen_mono: float | None = None
        self._seen_wall = 0.0  # the wall clock at _seen_mono (the session's stamps may be ahead)
        self._resumed = resumed is not None

    def observe(
        self,
        reading: Reading,
        *,
        now: float,
        mono: float,
        serial: str | None,
        grid_w: float | None = None,
    ) -> Step:
        step = Step()
        session = self.open
        last_seen = session.seen_at if session is not None else now
        resumed, self._resumed = self._resumed, False
        if session is not None and resumed and reading.connected:
            why = another_connection(session, reading, now)
            if why is not None:
                self._replugged(session, reading, why, now=now, mono=mono, serial=serial,
                                step=step)  # fmt: skip
                return step
        if session is not None:
            self._count(session, reading, step, now=now, mono=mono, grid_w=grid_w)
        session = self.open
        if session is not None:
            if (
                reading.reboots is not None
                and session.reboots is not None
                and reading.reboots != session.reboots
            ):
                self._close(session, CHARGER_RESTARTED, now, step)
            elif reading.connected is False:
                # Gone while the bridge was away: it cannot know when.
                reason = BRIDGE_GAP if resumed else UNPLUGGED
                self._close(session, reason, last_seen if resumed else now, step)
        if self.open is None and reading.connected:
            self._start(reading, now=now, mono=mono, serial=serial, step=step)
        return step

    # --- counting -----------------------------------------------------------------------

    def _count(
        self, session: Session, reading: Reading, step: Step, *,
        now: float, mono: float, grid_w: float | None,
    ) -> None:  # fmt: skip
        self._settle(session, step)
        if (
            reading.reboots is not None
            and session.reboots is not None
            and reading.reboots != session.reboots
        ):
            # The charger restarted (observe closes the session): only its counter's
            # rise is this session's, and one a little back is what it had not saved
            # when the power went, not a counter that jumped. Its other values - wh from
            # zero, the card - are the next session's.
            self._count_before_restart(session, reading, step, now=now, mono=mono)
            return
        for problem in reading.problems:
            step.flagged |= session.flag(problem)
        eto = reading.eto
        if eto is not None and self._seen_mono is not None:
            self._follow_clock(session, now, mono, step)
        elif eto is not None:  # resumed: the charger's clock tells a step meanwhile
            self._move(session, set_while_away(session, reading, now), step)
        if eto is not None:
            if session.eto_start is None:  # unreadable at the start: counted from here
                session.eto_start = session.eto_last = eto
                step.flagged |= session.flag("eto: unreadable at the start")
            assert session.eto_last is not None
            delta = eto - session.eto_last
            elapsed = (
                mono - self._seen_mono
                if self._seen_mono is not None
                else time_away(session, reading, now - session.seen_at)
            )
            if 0 > delta >= -allowance_wh(0.0):
                # Behind the last reading by what a charger delivers in the lag readings
                # may have (a cloud poll after pushed data, up to 30 s old): a late
                # reading, not the counter running backwards. The next one counts.
                return
            if delta < 0:
                session.flag(f"eto went backwards from {session.eto_last:.0f} to {eto:.0f} Wh")
                self._close(session, COUNTER_JUMP, now, step)
                return
            if delta > allowance_wh(elapsed):
                session.flag(
                    f"eto jumped by {delta:.0f} Wh in {max(0.0, elapsed):.0f} s,"
                    " more than a charger delivers"
                )
                self._close(session, COUNTER_JUMP, now, step)
                return
            if delta > 0:
                self._price(session, delta, session.seen_at, now, reading.power, grid_w)
                session.eto_last = eto
                step.counted = True
            session.seen_at = max(now, session.seen_at)
            self._seen_mono, self._seen_wall = mono, now
        if reading.wh is not None and reading.wh != session.charger_wh:
            session.charger_wh = reading.wh
            step.counted = True
        if reading.power is not None and (
            session.peak_power_w is None or reading.power > session.peak_power_w
        ):
            session.peak_power_w = reading.power
            step.counted = True
        if reading.phases and (session.phases is None or reading.phases > session.phases):
            session.phases = reading.phases
            step.counted = True
        if session.connected_ms is None and reading.connected_ms is not None:
            same_boot = reading.reboots is None or reading.reboots == session.reboots
            if same_boot:  # unreported at the opening: this connection's, from now on
                session.connected_ms = reading.connected_ms
                step.counted = True
        if reading.trx_known and reading.trx is not None:
            slot = reading.trx - 1 if reading.trx > 0 else None
            if (slot, reading.card) != (session.card_slot, session.card):
                session.card_slot, session.card = slot, reading.card or "none"
                step.counted = True

    def _follow_clock(self, session: Session, now: float, mono: float, step: Step) -> None:
        """Moves the session's times with a wall clock set by more than CLOCK_STEP_S
        since the last reading. A clock that stood behind them first catches up: only
        what it moves beyond them is a step."""
        assert self._seen_mono is not None
        passed = mono - self._seen_mono
        jump = (now - self._seen_wall) - passed
        # How far the session's stamps stand ahead of the clock as it ran on.
        ahead = session.seen_at - (self._seen_wall + passed)
        if jump > 0 and ahead > 0:
            jump -= min(jump, ahead)
        self._move(session, jump, step)

    @staticmethod
    def _move(session: Session, jump: float, step: Step) -> None:
        if abs(jump) > CLOCK_STEP_S:
            session.started += jump
            session.seen_at += jump
            step.counted = True

    def _count_before_restart(
        self, session: Session, reading: Reading, step: Step, *, now: float, mono: float
    ) -> None:
        eto, last = reading.eto, session.eto_last
        if eto is None or last is None or eto <= last:
            return
        elapsed = mono - self._seen_mono if self._seen_mono is not None else now - session.seen_at
        if eto - last > allowance_wh(elapsed):
            return  # what the new boot's counter says is no evidence: the last good stays
        self._price(session, eto - last, session.seen_at, now, None, None)
        session.eto_last = eto
        session.seen_at = max(now, session.seen_at)
        step.counted = True

    def _price(
        self, session: Session, delta: float, start: float, end: float,
        power: float | None, grid_w: float | None,
    ) -> None:  # fmt: skip
        grid = delta * grid_share(power, grid_w)
        pv = delta - grid
        session.energy_grid_wh += grid
        session.energy_pv_wh += pv
        if self.pricing is None:
            return
        session.cost_so_far += pv / 1000 * self.pv_price
        price = self.pricing.average(min(start, end), end)
        if price is None:
            # No price heard yet (a price topic, since this start): the grid energy
            # waits for the first one, which counts backwards (it stood before we heard).
            session.unpriced_wh += grid
            return
        session.cost_so_far += grid / 1000 * price

    def _settle(self, session: Session, step: Step) -> None:
        """Energy that waited for the first price, priced at it once it is heard."""
        if not session.unpriced_wh or self.pricing is None:
            return
        first = self.pricing.average(session.started, session.started)
        if first is not None:
            session.cost_so_far += session.unpriced_wh / 1000 * first
            session.unpriced_wh = 0.0
            step.counted = True

    # --- opening and closing ---------------------------------------------------------------

    def _replugged(
        self, session: Session, reading: Reading, why: str, *,
        now: float, mono: float, serial: str | None, step: Step,
    ) -> None:  # fmt: skip
        """The bridge was away and the car now connected is another connection: the
        resumed session ended meanwhile (bridge_gap, as last seen), a new one opens.
        The charger's `wh` (energy since this car connected) splits the counter: what
        the counter rose before the new connection is the old session's, the rest the
        new one's; the new one starts when the charger says the car connected (lccfi),
        never before the old one was last seen."""
        eto, wh = reading.eto, reading.wh
        split = None
        if eto is not None and wh is not None and session.eto_last is not None:
            split = eto - wh
            if not session.eto_last <= split <= eto:
                split = None  # the counters disagree: nothing is moved
        if split is not None and session.eto_last is not None:
            delta = split - session.eto_last
            if 0 < delta <= allowance_wh(time_away(session, reading, now - session.seen_at)):
                self._price(session, delta, session.seen_at, now, None, None)
                session.eto_last = split
        step.replugged = why  # not a flag: nothing about its energy is in doubt
        self._close(session, BRIDGE_GAP, session.seen_at, step)
        started = now
        if reading.connected_ms is not None and reading.uptime_ms is not None:
            ago = (reading.uptime_ms - reading.connected_ms) / 1000
            if ago >= 0:
                started = min(now, max(session.seen_at, now - ago))
        # A wall clock behind the old one's last reading: the new one starts then, its
        # stamps standing until the clock catches up (CLOCK_STEP_S).
        started = max(started, session.seen_at)
        self._start(reading, now=now, mono=mono, serial=serial, step=step)
        new = self.open
        assert new is not None
        if split is not None and new.eto_last is not None and new.eto_last > split:
            new.eto_start = split
            self._price(new, new.eto_last - split, started, now, reading.power, None)
        if started != now:
            new.started, new.id = started, self._new_id(self.charger, started)
            new.seen_at = max(new.seen_at, started)

    def _start(
        self, reading: Reading, *, now: float, mono: float, serial: str | None, step: Step
    ) -> None:
        session = Session(
            id=self._new_id(self.charger, now),
            charger=self.charger,
            serial=serial,
            started=now,
            eto_start=reading.eto,
            eto_last=reading.eto,
            seen_at=now,
            currency=self.currency,
            priced=self.pricing is not None,
            reboots=reading.reboots,
            charger_wh=reading.wh,
            peak_power_w=reading.power,
            phases=reading.phases or None,
        )
        if reading.trx_known and reading.trx is not None:
            session.card_slot = reading.trx - 1 if reading.trx > 0 else None
            session.card = reading.card or "none"
        session.connected_ms = reading.connected_ms
        for problem in reading.problems:
            session.flag(problem)
        if reading.eto is None:
            session.flag("eto: unreadable at the start")
        self.open, self._seen_mono, self._seen_wall = session, mono, now
        step.opened.append(session)

    def _close(self, session: Session, reason: str, at: float, step: Step) -> None:
        # A bridge_gap ends at ``at``, as last seen before the bridge was away; any other
        # end is seen now, never before the last reading (a wall clock behind it).
        floor = session.started if reason == BRIDGE_GAP else max(session.started, session.seen_at)
        session.ended, session.end_reason = max(at, floor), reason
        self.open = None
        step.closed.append(session)
