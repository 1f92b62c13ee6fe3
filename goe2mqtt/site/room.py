"""The room of one decision: what the site's chargers may draw, per phase and in watts.

Pure. The other load is the meter less what the site's chargers draw now; the room is
the limits less that. A charger offline counts as still drawing what it drew, and as
able to draw its limit on every phase it is not forced off. What a charger draws beyond
what the site allows it (once it has had time to follow a write) is other load too: the
site does not steer it, so the others must make room for it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from goe2mqtt.site.meter import MeterReading
from goe2mqtt.site.seen import NOMINAL_VOLTS, Managed
from goe2mqtt.site.sharing import Room

# The meter's noise: the room is taken this much smaller, so a reading a little low
# cannot fill the fuse past its rating (and the next reading corrects what one did).
MARGIN = 0.5  # A per phase
MARGIN_WATTS = MARGIN * NOMINAL_VOLTS


@dataclass(frozen=True)
class Found:
    room: Room
    beyond: dict[str, float]  # A a charger draws beyond what the site allows it


def room_of(
    reading: MeterReading, managed: Iterable[Managed], now: float, *,
    fuse: float | None, import_limit: float | None, pv: bool, exports: bool = True,
) -> Found:  # fmt: skip
    """``exports``: the meter measures both ways. One that measures import only cannot
    read less than the site's chargers draw (it measures them too): such a reading is
    stuck or spoofed, and its "negative other load" would be room that grows with every
    raise (a meter stuck at 0 A ran two chargers up to their maximum). The other load
    is then at least 0: the chargers get the fuse at most."""
    chargers = list(managed)
    volts = _volts(chargers)
    drawn = [0.0, 0.0, 0.0]
    reserved = [0.0, 0.0, 0.0]
    beyond: dict[str, float] = {}
    for m in chargers:
        # Offline: taken as still drawing what it drew, and able to draw its limit.
        cap = m.allowed(now) if m.seen.online else None
        for p in range(3):
            current = m.last_draw[p] if not m.seen.online else m.seen.currents[p]
            if cap is not None and current > cap:
                beyond[m.name] = max(beyond.get(m.name, 0.0), current - cap)
                current = cap
            drawn[p] += current
        if not m.seen.online:
            limit = max(m.written or 0, *m.last_draw)
            # On every phase it may draw on: unseen, it may switch phases (go-e's own
            # automatic switching, another car); counted on the phase it was seen on, the
            # others' room on the rest took none of its limit.
            for p in m.may_draw_on():
                reserved[p] += limit
    drawn_watts = sum(v * i for v, i in zip(volts, drawn, strict=True))
    reserved_watts = sum(v * i for v, i in zip(volts, reserved, strict=True))
    currents = reading.currents
    if reading.power is not None:
        other_watts = reading.power - drawn_watts
    else:
        assert currents is not None
        other_watts = sum(v * i for v, i in zip(volts, currents, strict=True)) - drawn_watts
    if not exports:
        other_watts = max(0.0, other_watts)
    # The fuse's other load is never below 0, even from a meter that measures export:
    # an export is the sun's, gone with a cloud in a second; room made of it let the
    # written limits add up beyond the fuse (10 A over on a phase, on a seeded day with
    # PV), which a charger offline or not taking writes then drew past the next reading.
    if currents is not None:
        other = [max(0.0, currents[p] - drawn[p]) for p in range(3)]
    else:  # power alone: any phase may carry all of the rest
        other = [max(0.0, other_watts) / volts[p] for p in range(3)]
    phases = None
    if fuse is not None:
        rating = fuse - MARGIN
        phases = (rating - other[0] - reserved[0], rating - other[1] - reserved[1],
                  rating - other[2] - reserved[2])  # fmt: skip
    watts = None if import_limit is None else import_limit - other_watts - reserved_watts
    if watts is not None:
        watts -= MARGIN_WATTS
    sun = -other_watts - reserved_watts - MARGIN_WATTS if pv else None
    return Found(Room(phases, watts, sun, volts), beyond)


def _volts(chargers: list[Managed]) -> tuple[float, float, float]:
    """The voltage per phase the site's watts and amps convert at: the lowest a charger
    online shows (within seen.PLAUSIBLE_VOLTS), never above NOMINAL_VOLTS. A voltage
    taken too high under-counts the other load twice over when the meter gives power
    (the chargers' watts subtracted too large, the rest divided by too much): 300 V hid
    a fifth to a half of it. Too low only counts more, so a charger's voltage may lower
    the figure (a weak grid), never raise it past nominal."""
    a, b, c = (min([NOMINAL_VOLTS, *(m.seen.volts[p] for m in chargers if m.seen.online)])
               for p in range(3))  # fmt: skip
    return (a, b, c)
