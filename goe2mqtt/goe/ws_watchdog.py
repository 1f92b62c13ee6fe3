"""One timer for a fleet's websocket watchdogs: each link's next look is put in a slot
of SLOT seconds, and the slots are run by one timer of the event loop.

A link looks at its socket a few seconds after its last frame (the quiet steps, the
silence, the way to live, a full status in parts) and again a few seconds later: with
deltas every second, once every 4-5 s. With a TimerHandle per look, 10 000 chargers
made ~2500 timers a second, each pushed into and popped from the loop's heap of all
timers (a dozen comparisons in Python each way) with a context copied for it; a look
here is a dict entry, and its slot number an int in a heap of a few dozen.

A look runs up to SLOT late, never early. One that raises is logged, and the rest of
its slot runs.
"""

from __future__ import annotations

import asyncio
import bisect
import contextvars
import heapq
import math
import weakref
from collections.abc import Callable, Sequence

import structlog

log = structlog.get_logger()

SLOT = 0.1  # s
_CONTEXT = contextvars.Context()  # the looks read no context variables


def next_look(now: float, heard_at: float, after: Sequence[float], *due: float | None) -> float:
    """When a link looks next: the first of ``after`` (seconds after its last frame at
    ``heard_at``, ascending) still ahead, or a ``due`` (None: none) sooner; ``now`` when
    nothing is ahead or due."""
    at = next((heard_at + s for s in after if heard_at + s > now), math.inf)
    for other in due:
        if other is not None and other < at:
            at = other
    return now if at == math.inf else at


def reached(age: float, steps: Sequence[float]) -> float:
    """The largest of ``steps`` (ascending) that ``age`` reached, or 0."""
    return steps[bisect.bisect_right(steps, age) - 1] if steps and age >= steps[0] else 0.0


class Watchdogs:
    """The looks due, by slot, on one event loop."""

    def __init__(self) -> None:  # the loop is not held: it is the key it is kept under
        self._slots: dict[int, dict[object, Callable[[], None]]] = {}
        self._due: list[int] = []  # the slots' numbers, a heap
        self._timer: asyncio.TimerHandle | None = None
        self._timer_slot: float = math.inf  # the slot the timer runs (-inf: running)

    def arm(self, owner: object, at: float, look: Callable[[], None]) -> int:
        """Call ``look`` at loop time ``at`` (up to SLOT later); the slot, for disarm.
        One look per owner and slot: the later arm of the two wins."""
        slot = math.ceil(at / SLOT)
        looks = self._slots.get(slot)
        if looks is None:
            looks = self._slots[slot] = {}
            heapq.heappush(self._due, slot)
        looks[owner] = look
        if slot < self._timer_slot:
            self._set_timer(slot)
        return slot

    def disarm(self, owner: object, slot: int) -> None:
        looks = self._slots.get(slot)
        if looks is not None:
            looks.pop(owner, None)

    def _set_timer(self, slot: int) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer_slot = slot
        loop = asyncio.get_running_loop()
        self._timer = loop.call_at(slot * SLOT, self._run, context=_CONTEXT)

    def _run(self) -> None:
        # The slot the timer was for is due (the loop ran it), and any before now; a
        # look armed meanwhile for a slot already due waits for the next run.
        last = max(self._timer_slot, math.floor(asyncio.get_running_loop().time() / SLOT))
        # No timer set per look armed while the slots run: one, for the earliest, after.
        self._timer, self._timer_slot = None, -math.inf
        due: list[dict[object, Callable[[], None]]] = []
        while self._due and self._due[0] <= last:
            due.append(self._slots.pop(heapq.heappop(self._due), {}))
        for looks in due:
            for look in looks.values():
                try:
                    look()
                except Exception:  # one link's bug must not stop every other's watch
                    log.exception("websocket_watchdog_crashed")
        while self._due and not self._slots.get(self._due[0]):
            self._slots.pop(heapq.heappop(self._due), None)  # emptied by disarms
        self._timer_slot = math.inf
        if self._due:
            self._set_timer(self._due[0])


_WATCHDOGS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Watchdogs] = (
    weakref.WeakKeyDictionary()
)


def watchdogs() -> Watchdogs:
    """The running loop's."""
    loop = asyncio.get_running_loop()
    found = _WATCHDOGS.get(loop)
    if found is None:
        found = _WATCHDOGS[loop] = Watchdogs()
    return found
