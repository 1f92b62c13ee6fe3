"""A site without its meter: the fallback current, and pv's bound on charging blind.

Pure, like the controller that calls it. A silent or wrong meter sends the charging
chargers to ``fallback_current`` (0 pauses them) and never raises one. In mode pv the
site cannot see the sun without its meter, so the fallback would charge from the grid,
all night should the meter die in the afternoon: once no valid reading has come for
``pv_blind_limit`` the charging chargers pause instead, until the meter is back.
"""

from __future__ import annotations

from collections.abc import Iterable

from goe2mqtt.site.seen import Managed
from goe2mqtt.site.writes import Write, pause_kept, upkeep, write_current, write_pause


def blind_reason(problem: str, invalid: str | None, blind: float, limit: float) -> str:
    """Why a pv site pauses after ``blind`` s without a valid reading (``problem`` is
    the fallback's reason, ``invalid`` why the last payload was refused, if it was)."""
    what = problem if invalid is None else f"meter reading invalid for {blind:.0f} s ({invalid})"
    return f"{what}: pv paused, the surplus cannot be seen (pv_blind_limit {limit:g} s)"


def fall_back(managed: Iterable[Managed], fallback: int, why: str, now: float, *,
              pause: bool) -> list[Write]:  # fmt: skip
    """Charging chargers to ``fallback`` A, or paused (``pause``, or a fallback below
    a charger's minimum); never up without a meter."""
    writes: list[Write] = []
    for m in managed:
        if not m.seen.online:
            continue
        if m.paused:
            pause_kept(m, now, writes)
            continue
        low, high = m.bounds()
        # Never above its maximum, nor above what it has: never up without a meter.
        has = m.written if m.written is not None else m.seen.limit
        target = max(low, min(fallback, high, high if has is None else has))
        m.why, m.share = f"fallback: {why}", float(target)
        if pause or fallback < low or m.over_cap() is not None:
            if m.seen.drawing:
                writes.append(write_pause(m, m.why, now))
        elif (m.written is None and m.seen.drawing) or (m.written or 0) > target:
            writes.append(write_current(m, target, m.why, now))
        else:
            upkeep(m, now, writes, writes)
    return writes
