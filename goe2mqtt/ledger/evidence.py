"""What a charger's readings prove: how far its counter may move between two readings,
how long the bridge was away by the charger's own clock, and whether the car found after
the bridge was away is another connection than the session it resumed. Pure; the tracker
(tracker.py) asks.
"""

from __future__ import annotations

from goe2mqtt.ledger.readings import Reading
from goe2mqtt.ledger.record import Session

# No charger delivers more (go-e: 22 kW; twice that, for meters and rounding) ...
MAX_CHARGE_POWER_W = 44_000.0
# ... and readings may lag each other by this much (cloud data is up to 30 s old,
# a pushed delta a few seconds): the allowance for a counter's step.
READING_LAG_S = 120.0


def allowance_wh(elapsed: float) -> float:
    """The most energy a counter may add in ``elapsed`` seconds."""
    return MAX_CHARGE_POWER_W * (max(0.0, elapsed) + READING_LAG_S) / 3600.0


def time_away(session: Session, reading: Reading, wall: float) -> float:
    """The time the counter may have risen in since ``session`` was last seen, the bridge
    away meanwhile (its monotonic clock began anew): ``wall``, what the wall clock says
    passed, or what the charger's clock says, if more. A wall clock set back meanwhile
    (NTP, a box without a battery clock that booted at an older time) says less than
    passed, nothing when it is behind the last reading; the charger's clock only runs on.
    Under the session's reboot count (rbc), the time since the car connected (rbt less
    lccfi, when lccfi is the session's) holds the time since it was last seen; without
    lccfi, the time since the charger booted (rbt) does."""
    uptime = reading.uptime_ms
    if reading.reboots is None or reading.reboots != session.reboots or uptime is None:
        return wall
    since = session.connected_ms
    if since is not None and reading.connected_ms == since and uptime >= since:
        uptime -= since
    return max(wall, uptime / 1000)


def set_while_away(session: Session, reading: Reading, now: float) -> float:
    """How far the wall clock was set ahead while the bridge was away, by the charger's
    clock (0: it cannot tell): in the same connection (the session's rbc and lccfi), the
    time since the car connected (rbt less lccfi) less what the session had lasted when
    last seen is no less than what passed since; the wall clock said more by this much."""
    uptime, since = reading.uptime_ms, session.connected_ms
    if (
        reading.reboots is None
        or reading.reboots != session.reboots
        or uptime is None
        or since is None
        or reading.connected_ms != since
        or uptime < since
    ):
        return 0.0
    passed = (uptime - since) / 1000 - (session.seen_at - session.started)
    return max(0.0, now - session.seen_at - passed)


def energy_tolerance(wh: float) -> float:
    """How far ``wh`` and ``eto`` may disagree over ``wh`` of charging in one connection:
    the keys of one status may be a few seconds apart on the push transports (22 kW is
    6 Wh a second), eto is whole Wh, and a margin for the two counters' own rounding."""
    return 100.0 + 0.05 * max(0.0, wh)


def another_connection(session: Session, reading: Reading, now: float) -> str | None:
    """Why the car connected now is not the one of ``session`` (None: it may be).
    Asked of a session resumed from disk at the first reading after the bridge was
    away: the car may have left and another (or the same, plugged in again) come."""
    same_boot = reading.reboots is not None and reading.reboots == session.reboots
    if (
        same_boot
        and session.connected_ms is None
        and reading.connected_ms is not None
        and reading.uptime_ms is not None
        and reading.uptime_ms >= reading.connected_ms
    ):
        # lccfi unknown when the session was last stored: its own value cannot be
        # compared, but the time it gives can. The car was connected when the session
        # was last seen; a car state that left idle later was another connection.
        connected_at = now - (reading.uptime_ms - reading.connected_ms) / 1000
        if connected_at > session.seen_at + READING_LAG_S and not _wh_holds_all(session, reading):
            return (
                f"the charger's lccfi says the car connected {connected_at - session.seen_at:.0f} s"
                " after the session was last seen"
            )
    if (
        same_boot
        and session.connected_ms is not None
        and reading.connected_ms is not None
        and reading.connected_ms != session.connected_ms
    ):
        return "the charger's lccfi changed: the car state left idle again"
    if (
        (same_boot or reading.reboots is None)
        and reading.wh is not None
        and session.charger_wh is not None
        and reading.wh < session.charger_wh - 1.0
    ):
        return (
            f"the charger's session energy wh went from {session.charger_wh:.0f} to"
            f" {reading.wh:.0f} Wh: it counts from each connection"
        )
    if (
        reading.trx_known
        and reading.trx is not None
        and session.card_slot is not None
        and reading.trx - 1 != session.card_slot
    ):
        return f"another card: {reading.card} where the session had {session.card}"
    if same_boot or reading.reboots is None:
        return _wh_fell_behind(session, reading)
    return None


def _wh_holds_all(session: Session, reading: Reading) -> bool:
    """The charger's session energy wh holds all the session's, what it had when last
    seen too (more than the tolerance): the car connected before then, whatever the wall
    clock says (one set ahead while the bridge was away). After a replug wh counts only
    the new connection, short of the old one's energy."""
    wh, eto, start, last = reading.wh, reading.eto, session.eto_start, session.eto_last
    if wh is None or eto is None or start is None or last is None:
        return False
    tolerance = energy_tolerance(eto - start)
    return last - start > tolerance and wh >= eto - start - tolerance


def _wh_fell_behind(session: Session, reading: Reading) -> str | None:
    """In one connection wh and eto rise together; after a replug wh counts only the new
    connection, and falls behind eto by what the old one had (the old wh) and took after
    it was last seen. Trusted only where this session showed wh keeping up with eto while
    the bridge watched, over more energy than the tolerance (a firmware whose wh stands
    still, or a session the bridge saw take nothing, tells nothing)."""
    wh, eto = reading.wh, reading.eto
    start, last, last_wh = session.eto_start, session.eto_last, session.charger_wh
    if wh is None or eto is None or start is None or last is None or last_wh is None:
        return None
    watched = last - start
    if watched <= energy_tolerance(watched) or last_wh < watched - energy_tolerance(watched):
        return None  # no energy seen, or wh did not keep up with it: no evidence
    gained = eto - last
    if wh - last_wh >= gained - energy_tolerance(gained):
        return None
    return (
        f"the charger's session energy wh rose by {wh - last_wh:.0f} Wh where eto rose by"
        f" {gained:.0f} Wh: it counts from each connection"
    )
