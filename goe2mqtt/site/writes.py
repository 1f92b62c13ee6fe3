"""What the site writes to one charger, and keeps written: a current limit or a pause.

Each write is recorded in the charger's ``Managed`` as it is made (what was written,
when, since when the limit is what it is). A limit the charger does not show, or a
pause it does not keep, is written again (``resend_wait`` after the last time); tcl is
refreshed before the firmware drops it. Pure, like the controller that calls these.
"""

from __future__ import annotations

from dataclasses import dataclass

from goe2mqtt.site.seen import FORCE_OFF, Managed

TCL_REFRESH = 480.0  # s: go-e drops tcl after 600 s unless it is written again

SetCall = dict[str, int | None]


@dataclass(frozen=True)
class Write:
    charger: str
    call: SetCall  # {"tcl": 10}, {"frc": 1}, ...
    why: str
    # It only lowers the draw: a pause, or a limit below both what the site wrote last
    # and what the charger showed (those it knows). Journaled so, it runs after a restart
    # (bridge/desk.py), where a raise, decided on that run's reading, does not.
    lowers: bool = False


def upkeep(m: Managed, now: float, down: list[Write], up: list[Write]) -> None:
    """The written limit kept: refreshed before tcl expires, written again when the
    charger does not show it (a write that did not apply, a reboot, the app)."""
    if m.written is None:
        return
    if m.seen.limit is not None and m.seen.limit != m.written:
        if now - m.written_at >= m.resend_wait():
            m.unheeded += 1
            why = f"the charger shows {m.seen.limit} A, not the {m.written} A written"
            higher = m.seen.limit > m.written  # unsafe: counts as going down
            (down if higher else up).append(write_current(m, m.written, why, now))
    else:
        m.unheeded = 0
        if m.seen.has_tcl and now - m.written_at >= TCL_REFRESH:
            up.append(write_current(m, m.written, "refreshed before tcl expires", now))


def pause_kept(m: Managed, now: float, writes: list[Write]) -> bool:
    """Whether a paused charger keeps its pause; one that does not is paused again
    into ``writes`` (``resend_wait`` after the last time)."""
    if not m.defies_pause(now):
        m.unheeded = 0
        return True
    if now - m.paused_at >= m.resend_wait():
        writes.append(pause_again(m, now))
    return False


def pause_again(m: Managed, now: float) -> Write:
    """The pause written again (frc as it was before the site's pause is kept); its
    resume_after counts from now."""
    m.paused_at, m.fits_since = now, None
    m.unheeded += 1
    m.why = "paused again: it was resumed while the site had it paused"
    return Write(m.name, {"frc": FORCE_OFF}, m.why, lowers=True)


def write_current(m: Managed, amps: int, why: str, now: float) -> Write:
    known = [a for a in (m.written, m.seen.limit) if a is not None]
    lowers = bool(known) and amps <= min(known) and amps < max(known)
    if amps != m.written:
        m.limit_since, m.unheeded = now, 0
    m.written, m.written_at = amps, now
    key = "tcl" if m.seen.has_tcl else "amp"
    return Write(m.name, {key: amps}, why, lowers=lowers)


def write_pause(m: Managed, why: str, now: float) -> Write:
    m.paused, m.paused_at, m.fits_since, m.why = True, now, None, why
    m.limit_since, m.unheeded = now, 0
    frc = m.seen.frc
    m.frc_before = frc if frc is not None and frc != FORCE_OFF else 0
    return Write(m.name, {"frc": FORCE_OFF}, why, lowers=True)
