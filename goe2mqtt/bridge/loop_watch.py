"""How long the event loop was held: what every poll and command waiting then paid.

One process serves every charger on one event loop, so anything that holds it (a
garbage collection over a large heap, encoding a large payload) delays all of them
at once. bridge/info shows the longest hold since the last report, and the longest
garbage collection, so a fleet operator sees stalls before the chargers' users do.
A hold is wall time: with the CPU time the process got meanwhile beside it, a hold
of our own (CPU about equal) tells apart from a process the system did not run
(CPU much less: a busy or throttled machine, e.g. a container's CPU limit).
"""

from __future__ import annotations

import asyncio
import gc
import time
from typing import Any

import structlog

log = structlog.get_logger()

SAMPLE_EVERY = 0.1  # s: a hold shorter than this may go unseen, which is fine
HOLD_LOGGED = 0.1  # s: a hold this long is logged (loop_held), with what ran meanwhile
HOLDS_LOGGED_PER_MINUTE = 20  # a process held again and again must not flood the log


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
                due, cpu = loop.time() + SAMPLE_EVERY, time.process_time()
                gc_time, self._gc_gen = self._gc_time, -1
                await asyncio.sleep(SAMPLE_EVERY)
                lag = loop.time() - due
                cpu = time.process_time() - cpu
                if lag > self._lag_max:
                    self._lag_max, self._lag_max_cpu = lag, cpu
                if lag >= HOLD_LOGGED:
                    self._log_hold(lag, cpu, self._gc_time - gc_time)
        finally:
            gc.callbacks.remove(self._on_gc)

    def _log_hold(self, lag: float, cpu: float, gc_time: float) -> None:
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
            cpu_ms=round(cpu * 1000, 1),  # the sample's 100 ms and the hold
            gc_ms=round(gc_time * 1000, 1),
            gc_generation=self._gc_gen if self._gc_gen >= 0 else None,
        )

    def report(self) -> dict[str, Any]:
        """The longest hold and collection since the last report (then starts anew)."""
        report = {
            "lag_max_ms": round(self._lag_max * 1000, 1),
            # CPU time the process got during that sample (100 ms + the hold)
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
