"""How long the event loop was held: what every poll and command waiting then paid.

One process serves every charger on one event loop, so anything that holds it (a
garbage collection over a large heap, encoding a large payload) delays all of them
at once. bridge/info shows the longest hold since the last report, and the longest
garbage collection, so a fleet operator sees stalls before the chargers' users do.
A hold is wall time: with the CPU time the process got meanwhile beside it, a hold
of our own (CPU about equal) tells apart from a process the system did not run
(CPU much less: a busy or throttled machine, e.g. a container's CPU limit).

A hold is seen as a sample's lateness: the watch sleeps and measures how late it woke.
Every SAMPLE_EVERY while the bridge is busy; a quiet one (its loop working under
BUSY_SHARE of the time, nothing late) samples twice as far apart each time, up to
QUIET_EVERY (sample_plan): at 0.1 s the samples were ten of an idle daemon's ~13
wake-ups a second. A hold that ends before a long sample's deadline is not late for it,
so a quiet sample also counts the CPU time the loop's thread took meanwhile: at least
HOLD_LOGGED of it, where the sample before took under BUSY_SHARE, is a hold of our own
(a collection, encoding, a burst of work) and counts as one of that length (the hold
and the little else that ran: an upper bound), and the next sample is SAMPLE_EVERY
again. What a quiet watch misses: a hold that is not the loop's own CPU (a blocking
call waiting on a stalled disk, the system not running the process) shorter than
QUIET_EVERY and between two samples; the collections are timed apart (gc.callbacks),
whenever they run.
"""

from __future__ import annotations

import asyncio
import gc
import time
from typing import Any, NamedTuple

import structlog

log = structlog.get_logger()

SAMPLE_EVERY = 0.1  # s: a hold shorter than this may go unseen, which is fine
QUIET_EVERY = 1.0  # s: a quiet bridge's samples, at the least often
BUSY_SHARE = 0.02  # of the time the loop's thread took CPU during a sample: busy
BUSY_LATE = 0.02  # s: a sample this late is a busy loop's (idle: under 1 ms)
HOLD_LOGGED = 0.1  # s: a hold this long is logged (loop_held), with what ran meanwhile
HOLDS_LOGGED_PER_MINUTE = 20  # a process held again and again must not flood the log


class Plan(NamedTuple):
    hold: float  # s: the hold the sample saw (0 if none)
    next_every: float  # s: the sleep of the next sample


def sample_plan(every: float, late: float, loop_cpu: float) -> Plan:
    """What a sample saw, and when to sample next. ``every``: the sample's sleep;
    ``late``: how late it woke; ``loop_cpu``: CPU time of the loop's thread over it."""
    hold = late
    if every > SAMPLE_EVERY and loop_cpu >= HOLD_LOGGED:
        hold = max(late, loop_cpu)  # may have ended before the deadline: not late
    if late >= BUSY_LATE or loop_cpu >= BUSY_SHARE * (every + late) or hold >= HOLD_LOGGED:
        return Plan(hold, SAMPLE_EVERY)
    return Plan(hold, min(QUIET_EVERY, 2 * every))


class LoopWatch:
    def __init__(self) -> None:
        self._lag_max = 0.0
        self._lag_max_cpu = 0.0
        self._gc_max = 0.0
        self._gc_full = 0
        self._gc_started: float | None = None
        self._lag_reported = 0.0  # the longest hold of the window report() closed last
        self._gc_time = 0.0  # s, all collections so far: a hold's share of it is told
        self._gc_gen = -1  # the oldest generation collected since the last sample
        self._logged_at: list[float] = []  # when holds were logged in the last minute
        self._every = SAMPLE_EVERY  # the next sample's sleep

    def _on_gc(self, phase: str, details: dict[str, Any]) -> None:
        if phase == "start":
            self._gc_started = time.perf_counter()
        elif self._gc_started is not None:
            pause = time.perf_counter() - self._gc_started
            self._gc_max = max(self._gc_max, pause)
            self._gc_time += pause
            self._gc_gen = max(self._gc_gen, details.get("generation", -1))
            self._gc_started = None
            if details.get("generation") == 2:
                self._gc_full += 1

    async def run(self) -> None:
        """Sample until cancelled; the garbage collector is watched meanwhile."""
        gc.callbacks.append(self._on_gc)
        loop = asyncio.get_running_loop()
        try:
            while True:
                every = self._every
                due, cpu, loop_cpu = loop.time() + every, time.process_time(), time.thread_time()
                gc_time, self._gc_gen = self._gc_time, -1
                await asyncio.sleep(every)
                self.sampled(
                    every,
                    loop.time() - due,
                    time.process_time() - cpu,
                    time.thread_time() - loop_cpu,
                    self._gc_time - gc_time,
                )
        finally:
            gc.callbacks.remove(self._on_gc)

    def sampled(self, every: float, late: float, cpu: float, loop_cpu: float,
                gc_time: float) -> None:  # fmt: skip
        """One sample: ``every`` asked, woke ``late``; the process's CPU time meanwhile,
        its loop's thread's, and the collections' time."""
        hold, self._every = sample_plan(every, late, loop_cpu)
        if hold > self._lag_max:
            self._lag_max, self._lag_max_cpu = hold, cpu
        if hold >= HOLD_LOGGED:
            self._log_hold(hold, cpu, gc_time, every)

    def _log_hold(self, lag: float, cpu: float, gc_time: float, every: float) -> None:
        """One line per hold (at most HOLDS_LOGGED_PER_MINUTE): how long, the CPU the
        process got meanwhile, and how much of it the garbage collector took."""
        now = time.monotonic()
        self._logged_at = [at for at in self._logged_at if now - at < 60.0]
        if len(self._logged_at) >= HOLDS_LOGGED_PER_MINUTE:
            return
        self._logged_at.append(now)
        log.info(
            "loop_held",
            ms=round(lag * 1000, 1),
            cpu_ms=round(cpu * 1000, 1),  # the hold and what else ran in the sample
            sample_ms=round(every * 1000),  # 100 busy, up to 1000 quiet
            gc_ms=round(gc_time * 1000, 1),
            gc_generation=self._gc_gen if self._gc_gen >= 0 else None,
        )

    def report(self) -> dict[str, Any]:
        """The longest hold and collection since the last report (then starts anew)."""
        report = {
            "lag_max_ms": round(self._lag_max * 1000, 1),
            # CPU time the process got during that sample (the hold and what else ran)
            "lag_max_cpu_ms": round(self._lag_max_cpu * 1000, 1),
            "gc_pause_max_ms": round(self._gc_max * 1000, 1),
            "gc_full_collections": self._gc_full,
        }
        self._lag_reported = self._lag_max
        self._lag_max = self._lag_max_cpu = self._gc_max = 0.0
        self._gc_full = 0
        return report

    @property
    def lag_lately(self) -> float:
        """The longest hold, in seconds, in this window and the one reported last: what
        /metrics shows without starting a window anew (bridge/info does that)."""
        return max(self._lag_max, self._lag_reported)
