"""One site's decisions: the room per phase, each charger's share, pauses and fallback.

Pure: the time of a decision is an argument, readings and looks are handed in, writes
(site/writes.py) are handed out (go-e set calls) for the bridge to carry through the
command path.

Safety first, then calm: going down is at once (the next decision), going up at most
``ramp_up`` A a decision, once an interval, and only with an ampere to spare (meter
noise writes nothing), and never in a decision that lowers another charger (room is
made before it is used). A charger that cannot have its minimum pauses; it resumes once room for its
minimum has been there ``resume_after``. A silent or wrong meter sends the charging
chargers to ``fallback_current`` in the decision that notices it; in mode pv they pause
once it has been so for ``pv_blind_limit`` (site/fallback.py).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

from goe2mqtt.config.site import SiteSettings
from goe2mqtt.site.fallback import blind_reason, fall_back
from goe2mqtt.site.meter import PHASES, MeterReading
from goe2mqtt.site.room import room_of
from goe2mqtt.site.seen import ChargerSeen, Managed
from goe2mqtt.site.sharing import Room, room_beyond, share, short_of_sun
from goe2mqtt.site.writes import (
    TCL_REFRESH,
    Write,
    pause_kept,
    upkeep,
    write_current,
    write_pause,
)

__all__ = [
    "MODES",
    "STARTING",
    "TCL_REFRESH",
    "UP_BUDGET",
    "UP_MARGIN",
    "Decision",
    "Mode",
    "SiteController",
    "Write",
]

Mode = Literal["fuse", "pv", "off"]
MODES: tuple[Mode, ...] = ("fuse", "pv", "off")
UP_MARGIN = 1.0  # A beyond the next whole ampere before going up: meter noise writes nothing
# Writes in the last hour past which a charger goes up no more (down always goes): an
# hour holds at most these, one down per ampere of the limit above the minimum, and the
# pause (77 under a 32 A maximum), besides writes sent again that the charger did not show.
UP_BUDGET = 50
STARTING = 60.0  # s a resumed charger keeps its claim before its car draws (cars wake slowly)


@dataclass(frozen=True)
class Decision:
    writes: tuple[Write, ...]
    changed: bool  # the state shows something new


class SiteController:
    def __init__(self, settings: SiteSettings) -> None:
        self.settings = settings
        self.name = settings.name
        self.mode: Mode = settings.mode
        self.fuse = settings.fuse
        self.managed = {
            c.name: Managed(c, order, c.priority) for order, c in enumerate(settings.chargers)
        }
        self.reading: MeterReading | None = None
        self.reading_at = -math.inf
        self.invalid: str | None = None  # why the last payload was refused
        self.fallback: str | None = None  # why the site falls back, while it does
        self.room: tuple[float, float, float] | None = None
        self.started: float | None = None
        self._shown: Any = None
        self._beyond: dict[str, float] = {}  # A a charger draws beyond what the site allows
        self._sunless: set[str] = set()  # pv: below their minimum for want of sun alone
        self._roomy: set[str] = set()  # at their maximum with UP_MARGIN to spare beyond it

    # --- what comes in ----------------------------------------------------------------

    def meter(self, reading: MeterReading, now: float) -> None:
        self.reading, self.reading_at, self.invalid = reading, now, None

    def meter_invalid(self, reason: str, now: float) -> None:
        """A payload that cannot be trusted: the next decision falls back."""
        self.invalid = reason

    def see(self, charger: str, seen: ChargerSeen) -> None:
        self.managed[charger].learn(seen)

    def set_mode(self, mode: str) -> str | None:
        """None when done, else why not."""
        if mode not in MODES:
            return f"mode must be one of {', '.join(MODES)}, got {mode[:20]!r}"
        self.mode = next(m for m in MODES if m == mode)
        return None

    def set_fuse(self, fuse: float) -> str | None:
        if not 0 < fuse <= 1000:
            return "fuse must be above 0 and at most 1000 A"
        lowest = max(m.settings.min_current for m in self.managed.values())
        if fuse < lowest:
            return f"fuse {fuse:g} A is below a charger's min_current {lowest} A"
        fallback, chargers = self.settings.fallback_current, len(self.managed)
        if fallback * chargers > fuse:
            return (
                f"fuse {fuse:g} A is below the fallback of {chargers} chargers at {fallback} A"
                f" ({fallback * chargers} A): with the meter silent they alone would overload it"
            )
        self.fuse = fuse
        return None

    def set_priority(self, charger: str, priority: int) -> str | None:
        if charger not in self.managed:
            return f"charger {charger[:64]!r} is not in site {self.name}"
        if not 1 <= priority <= 99:
            return "priority must be 1 to 99"
        self.managed[charger].priority = priority
        return None

    def paused(self) -> dict[str, int]:
        """The chargers the site has paused -> their force state before (what a resume
        writes back): kept across a restart, a paused charger looks like any car that
        does not charge."""
        return {m.name: m.frc_before for m in self.managed.values() if m.paused}

    def forget_pause(self, charger: str) -> None:
        """A user stopped a charger the site had paused: it stays stopped by their
        wish (frc=1 either way), and the site no longer resumes it. Should it charge
        again (the app, its button), the site steers it like any charging charger."""
        m = self.managed[charger]
        m.paused, m.fits_since, m.why = False, None, "stopped by a user's command"

    def restore_paused(self, charger: str, frc_before: int) -> bool:
        """An earlier process paused this charger: resumed as if this one had."""
        m = self.managed.get(charger)
        if m is None or frc_before not in (0, 2):  # neutral, or forced on
            return False
        m.paused, m.frc_before, m.why = True, frc_before, "paused before the restart"
        return True

    # --- the decision -----------------------------------------------------------------

    def decide(self, now: float) -> Decision:
        if self.started is None:
            self.started = now
        if self.mode == "off":
            self.fallback = None
            writes = self._release()
        else:
            problem = self._meter_problem(now)
            if problem is _WAITING:
                writes = []
            elif problem is not None:
                blind = self._blind(problem, now)
                self.fallback = problem if blind is None else blind
                writes = fall_back(self.managed.values(), self.settings.fallback_current,
                                   self.fallback, now, pause=blind is not None)  # fmt: skip
            else:
                self.fallback = None
                writes = self._control(now)
        for write in writes:
            self.managed[write.charger].count_write(now)
        shown = self._summary(now)
        changed, self._shown = shown != self._shown, shown
        return Decision(tuple(writes), changed)

    def _meter_problem(self, now: float) -> str | None:
        timeout = self.settings.meter_timeout
        if self.invalid is not None:
            return f"meter reading invalid: {self.invalid}"
        if self.reading is None:
            assert self.started is not None
            waited = now - self.started
            return f"no meter reading for {waited:.0f} s" if waited >= timeout else _WAITING
        age = now - self.reading_at
        return f"meter silent for {age:.0f} s" if age > timeout else None

    def _blind(self, problem: str, now: float) -> str | None:
        """pv: why the chargers pause, once no valid reading has come for pv_blind_limit
        (counted from the last valid one, or from the start without any); else None."""
        limit = self.settings.pv_blind_limit
        if self.mode != "pv" or limit is None:
            return None
        since = self.reading_at if self.reading is not None else self.started
        assert since is not None
        blind = now - since
        return None if blind < limit else blind_reason(problem, self.invalid, blind, limit)

    def _release(self) -> list[Write]:
        """Mode off: paused chargers back to what they were, temporary limits cleared."""
        writes: list[Write] = []
        for m in self.managed.values():
            if not m.seen.online:
                continue
            m.why = "mode off"
            if m.paused:
                m.paused = False
                writes.append(Write(m.name, {"frc": m.frc_before}, "mode off: resumed"))
            if m.written is not None and m.seen.has_tcl:
                m.written = None
                writes.append(Write(m.name, {"tcl": None}, "mode off: limit cleared"))
        return writes

    def _control(self, now: float) -> list[Write]:
        room = self._room(now)
        online = [m for m in self.managed.values() if m.seen.online]
        claimants = [
            m for m in online if m.seen.drawing or m.paused or now - m.started_at < STARTING
        ]
        again: list[Write] = []
        capped = [m for m in claimants if m.over_cap() is not None]
        for m in capped:  # never its minimum: max_current is the user's cap
            claimants.remove(m)
            why, m.share, m.fits_since = f"paused: {m.over_cap()}", 0.0, None
            if not m.paused:
                again.append(write_pause(m, why, now))
            elif pause_kept(m, now, again):
                m.why = why
        pv = self.mode == "pv"
        claims = [m.claim(now, self.settings, pv=pv) for m in claimants]
        first = share(claims, room)
        self._sunless = short_of_sun(claims, room, first)
        resuming = []
        for m in claimants:
            if not m.paused:
                continue
            if not pause_kept(m, now, again):
                continue
            if first[m.name] >= m.bounds()[0]:
                m.fits_since = now if m.fits_since is None else m.fits_since
                waited = min(now - m.fits_since, now - m.paused_at)
                if waited >= self.settings.resume_after and self._may_raise(m, now):
                    resuming.append(m)
                else:
                    m.why = (
                        f"paused: room for its minimum, resumes in"
                        f" {self.settings.resume_after - waited:.0f} s"
                    )
            else:
                m.fits_since = None
                m.why = "paused: " + self._lack(m)
        running = [m for m in claimants if not m.paused]
        if len(running) + len(resuming) == len(claimants):
            shares = first  # nobody left out: the same claims, the same shares
        else:
            claims = [m.claim(now, self.settings, pv=pv) for m in (*running, *resuming)]
            shares = share(claims, room)
            self._sunless |= short_of_sun(claims, room, shares)
        self._roomy = room_beyond(claims, room, shares, UP_MARGIN)
        down: list[Write] = again
        up: list[Write] = []
        # What a write records of a charger, to undo for the ups that wait (below).
        before = {m.name: (m.written, m.written_at, m.limit_since, m.unheeded)
                  for m in (*running, *resuming)}  # fmt: skip
        for m in running:
            self._steer(m, shares[m.name], now, down, up)
        for m in resuming:
            low, _ = m.bounds()
            m.share = shares[m.name]
            # Written again unless the charger shows it: a pause longer than tcl lives
            # has let the firmware drop it, and frc alone would resume at amp.
            if (
                m.written != low
                or m.seen.limit != low
                or (m.seen.has_tcl and now - m.written_at >= TCL_REFRESH)
            ):
                up.append(write_current(m, low, "resumes at its minimum", now))
            up.append(Write(m.name, {"frc": m.frc_before}, "room for its minimum: resumed"))
        for m in online:
            if m not in claimants and m not in capped:
                m.share, m.why = 0.0, "not charging"
        # Room is made before it is used: what goes up waits while something goes down.
        if down:
            for m in resuming:
                m.why = "resumes once the others are down"
            for write in up:  # not sent: the charger keeps what it was written before
                m = self.managed[write.charger]
                m.written, m.written_at, m.limit_since, m.unheeded = before[m.name]
            return down
        for m in resuming:
            m.paused, m.started_at, m.fits_since = False, now, None
            m.limit_since, m.unheeded = now, 0
        for m in (*running, *resuming):
            if (m.written or 0) > (before[m.name][0] or 0):
                m.raised_on = self.reading  # the next raise needs a reading that moved
        return up

    def _steer(self, m: Managed, given: float, now: float, down: list[Write],
               up: list[Write]) -> None:  # fmt: skip
        low, high = m.bounds()
        m.share = given
        if given < low:
            down.append(write_pause(m, "paused: " + self._lack(m), now))
            return
        current = m.written if m.written is not None else (m.seen.limit or high)
        lower = min(math.floor(given + 1e-9), high)
        # An ampere to spare beyond the next whole one; a share capped at the maximum
        # cannot show it, so there the room beyond the maximum is asked (else a charger
        # lowered once came back to its maximum less 1 A, however empty the house).
        spare = high if m.name in self._roomy else math.floor(given - UP_MARGIN)
        higher = min(spare, high, current + self.settings.ramp_up)
        m.why = f"share {given:.1f} A"
        if m.name in self._beyond:
            m.why += f"; draws {self._beyond[m.name]:.1f} A beyond its limit, counted as other load"
        if lower < current:
            down.append(write_current(m, max(lower, low), f"down to its share {given:.1f} A", now))
        elif m.written is None:  # a charging charger of the site always has the site's limit
            # Never more than it has: counts with what goes down (nothing waits for it).
            down.append(write_current(m, min(current, lower), f"taken over at {current} A", now))
        elif higher > current and self._may_raise(m, now):
            up.append(write_current(m, higher, f"up towards its share {given:.1f} A", now))
        else:
            upkeep(m, now, down, up)

    def _may_raise(self, m: Managed, now: float) -> bool:
        """Up once an interval at most, and only on a reading taken after the last write
        and within the interval: a stale meter minus what the chargers draw now would
        take their own increases for room, and raise them again and again - so would a
        stuck one (a bridge republishing its last value): not the reading of its last
        raise again. And not past UP_BUDGET writes in the last hour."""
        fresh = now - self.reading_at <= self.settings.interval and self.reading != m.raised_on
        return now - m.written_at >= self.settings.interval and self.reading_at > m.written_at \
            and fresh and m.writes_in_hour(now) < UP_BUDGET  # fmt: skip

    def _lack(self, m: Managed) -> str:
        return "no sun for its minimum" if m.name in self._sunless else "no room for its minimum"

    def _room(self, now: float) -> Room:
        """What the site's chargers may draw now (site/room.py)."""
        assert self.reading is not None
        pv = self.mode == "pv"
        found = room_of(self.reading, self.managed.values(), now, fuse=self.fuse,
                        import_limit=self.settings.import_limit, pv=pv,
                        exports=pv or self.settings.meter_exports)  # fmt: skip
        self.room, self._beyond = found.room.phases, found.beyond
        return found.room

    # --- what goes out -----------------------------------------------------------------

    def state(self, now: float) -> dict[str, Any]:
        """The site's state topic: what it knows, decided and why."""
        reading = self.reading
        return {
            "mode": self.mode,
            "fuse": self.fuse,
            "import_limit": self.settings.import_limit,
            "meter": {
                "age": None if reading is None else round(now - self.reading_at, 1),
                "reading": None if reading is None else reading.as_json(),
                "invalid": self.invalid,
            },
            "room": None
            if self.room is None
            else dict(zip(PHASES, (round(r, 1) for r in self.room), strict=True)),
            **self._summary(now),
        }

    def _summary(self, now: float) -> dict[str, Any]:
        return {
            "fallback": self.fallback is not None,
            "fallback_reason": self.fallback,
            "chargers": {
                m.name: {
                    "allocated": m.written if not m.paused else 0,
                    "paused": m.paused,
                    "why": m.why,
                    "online": m.seen.online,
                    "priority": m.priority,
                    "phases": [p + 1 for p in m.draws_on()],
                    "writes_this_hour": m.writes_in_hour(now),
                }
                for m in self.managed.values()
            },
        }


_WAITING = "waiting for the first meter reading"
