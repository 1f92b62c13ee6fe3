"""Memory upkeep for a long-running process: a small heap for the garbage collector
to walk, and freed memory handed back to the system.

- The bridge runs the cyclic collector itself, because its automatic full
  collections walk every tracked object and hold the event loop while they do: none
  while the fleet starts; once every charger has had its first poll, one full
  collection and the heap frozen (gc.freeze); then a look at what was made since the
  last one (young_plan): what is new frozen, collected first (generations 0 and 1) when
  it may hold garbage. A collection walks every object made since the last freeze that
  is still alive, and a fleet's sockets remake theirs with every frame (aiohttp's
  receive: a future, two coroutines and their callbacks per socket and frame, alive
  until the next frame): at 10 000 websocket chargers a second of them is ~110 000
  objects, and walked when seconds old (their neighbours out of the CPU's caches) they
  held the loop 150-900 ms per collection (docs/scaling.md). So a busy process looks
  every YOUNG_EVERY, and a freeze costs nothing (the lists are spliced); the walk, at
  YOUNG_EVERY 12 % of such a bridge's CPU and finding nothing (a socket's objects die
  by their counts, no cycles), is done when the objects made net since the last look
  (gc.get_count: made minus freed) reach YOUNG_WORTH, as garbage does - and by Python's
  own trigger past its threshold between looks (at 10 000 websocket chargers 48-104
  made net per look: nothing walked but by Python's own trigger). A quiet process
  (under BUSY_CPU of a core since the last look: one charger) looks twice as far apart
  each time, up to YOUNG_QUIET_EVERY, and collects at each look: what it made is
  little to walk.
  Cycles that die older than a look, or fewer than YOUNG_WORTH net in a busy one, are
  frozen with the living: a full collection (unfrozen, collected, frozen again) frees
  them every REFREEZE_EVERY, or sooner once the resident memory grew REFREEZE_GROWTH
  since the last one (but not again within GROWN_AT_MOST_EVERY: a fleet still
  connecting grows for minutes, and a full collection then finds little and holds the
  loop ~1 s at 10 000 chargers), so a long run's memory stays bounded whatever dies when.
- The heap is trimmed (glibc malloc_trim) after the start-up freeze and every
  TRIM_EVERY: TLS handshakes leave freed blocks between live ones. Without glibc
  only the freezing is done; nor in a process that grew by less than TRIM_WORTH since
  the upkeep started (one charger: a trim there gave back ~0.2 MiB, and ctypes, loaded
  to call it, costs 0.34 MiB).

docs/scaling.md ("Memory upkeep") has the measurements behind each choice.
"""

from __future__ import annotations

import asyncio
import functools
import gc
import os
import time
from collections.abc import Callable
from typing import Any

import structlog

from goe2mqtt.util.aio import wait_until_set

log = structlog.get_logger()

YOUNG_EVERY = 0.1  # s: a busy process's looks at what it made since the last one
YOUNG_QUIET_EVERY = 1.6  # s: a quiet one's, at the least often
BUSY_CPU = 0.02  # of a core since the last look: busy
YOUNG_WORTH = 256  # tracked objects made net since the last look: a collection first
TRIM_EVERY = 600.0  # s
REFREEZE_EVERY = 3600.0  # s
# A trim gave back about a sixth of what TLS handshakes had grown the process by (58 ->
# 48 KiB a connection, docs/scaling.md): below this growth, less than ctypes costs.
TRIM_WORTH = 4.0  # MiB
REFREEZE_GROWTH = 0.25  # of the resident memory after the last full collection
REFREEZE_GROWTH_MIN_MIB = 32.0  # a small process's noise is no reason for a full walk
GROWN_AT_MOST_EVERY = 600.0  # s: full collections for growth, at the most often
GROWTH_CHECK_EVERY = 1.0  # s
READY_CHECK_EVERY = 1.0  # s


@functools.cache
def _malloc_trim() -> Callable[[int], int] | None:
    """glibc's malloc_trim, or None; ctypes is loaded at the first call, not at import."""
    import ctypes

    try:
        libc = ctypes.CDLL(None)
    except OSError:
        return None
    trim = getattr(libc, "malloc_trim", None)
    if trim is None:
        return None
    trim.argtypes, trim.restype = [ctypes.c_size_t], ctypes.c_int
    return trim  # type: ignore[no-any-return]


def rss_mib() -> float | None:
    """This process's resident memory (Linux), or None where it cannot be read."""
    try:
        with open("/proc/self/statm", encoding="ascii") as statm:
            pages = int(statm.read().split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def release_free_memory() -> bool:
    """Give freed heap pages back to the system; False where that is not possible."""
    trim = _malloc_trim()
    if trim is None:
        return False
    trim(0)
    return True


def grown(rss: float | None, since: float | None) -> bool:
    """Whether the resident memory `rss` (MiB) grew enough over `since`, that after the
    last full collection, for another: frozen garbage is freed only by one."""
    if rss is None or since is None:
        return False
    return rss - since > max(REFREEZE_GROWTH_MIN_MIB, REFREEZE_GROWTH * since)


def young_plan(made: int, cpu_share: float, every: float) -> tuple[bool, float]:
    """At a look: whether to collect what is not frozen before freezing it (else only
    freeze), and the seconds to the next look. ``made``: tracked objects made net since
    the last look (gc.get_count()[0]); ``cpu_share``: the process's CPU time since then
    over the time since; ``every``: the seconds since the last look."""
    if cpu_share >= BUSY_CPU:
        return made >= YOUNG_WORTH, YOUNG_EVERY
    return True, min(YOUNG_QUIET_EVERY, max(YOUNG_EVERY, 2 * every))


def collect_young() -> int:
    """Collect what is not frozen - made since the last freeze - and freeze what
    survived; the number of objects collected. Generations 0 and 1 only: a full
    collection also empties the interpreter's free lists, for nothing here."""
    collected = gc.collect(1)
    gc.freeze()
    return collected


def freeze_heap() -> int:
    """Collect the whole heap, then leave every surviving object out of future
    collections; the number of objects collected."""
    gc.unfreeze()
    collected = gc.collect()
    gc.freeze()
    return collected


class MemoryUpkeep:
    """Runs the schedule above; report() is bridge/info's "memory"."""

    def __init__(self, *, trim_worth: float = TRIM_WORTH) -> None:
        self._last: dict[str, Any] = {}
        self._trim_worth = trim_worth
        self._rss_at_start: float | None = None  # when run() starts: before the first polls
        self._young_max = 0.0  # s: the longest collection of what was new, this report
        self._young_collected = 0  # objects those collections freed, this report
        self._looks = self._young_collections = 0  # this report's
        self._made_max = 0  # the most tracked objects made net between two looks

    def _timed(self, step: str, action: Callable[[], object]) -> None:
        before, started = rss_mib(), time.perf_counter()
        outcome = action()
        after = rss_mib()
        self._last[f"{step}_ms"] = round((time.perf_counter() - started) * 1000, 1)
        if isinstance(outcome, int) and not isinstance(outcome, bool):
            self._last[f"{step}_collected"] = outcome
        if before is not None and after is not None:
            self._last[f"{step}_freed_mib"] = round(before - after, 1)
        log.debug("memory_upkeep", step=step, **{k: v for k, v in self._last.items()
                                                  if k.startswith(step)})  # fmt: skip

    async def run(self, stop: asyncio.Event, *, ready: Callable[[], bool], at_most: float) -> None:
        """Until `stop`. The start-up phase ends when `ready()` (every charger had its
        first poll), at the latest after `at_most` seconds."""
        self._rss_at_start = rss_mib()
        gc.disable()
        try:
            deadline = time.monotonic() + at_most
            while not ready() and time.monotonic() < deadline:
                if await wait_until_set(stop, READY_CHECK_EVERY):
                    return
            self._timed("freeze", freeze_heap)
        finally:
            gc.enable()
        try:
            await self._keep(stop)
        finally:
            gc.unfreeze()  # the process as it was, for whatever runs after the bridge

    async def _keep(self, stop: asyncio.Event) -> None:
        self._trim()
        loop = asyncio.get_running_loop()
        now = loop.time()
        trim_due, refreeze_due, check_due = now + TRIM_EVERY, now + REFREEZE_EVERY, now
        since, full_at = rss_mib(), now  # after the last full collection (and trim)
        every, looked, cpu = YOUNG_EVERY, now, time.process_time()
        while not await wait_until_set(stop, every):
            now, cpu_before, cpu = loop.time(), cpu, time.process_time()
            cpu_share, looked = (cpu - cpu_before) / max(now - looked, 1e-3), now
            if now >= check_due:
                check_due = now + GROWTH_CHECK_EVERY
                may_grow = now - full_at >= GROWN_AT_MOST_EVERY
                if now >= refreeze_due or (may_grow and grown(rss_mib(), since)):
                    self._timed("freeze", freeze_heap)
                    self._trim()
                    trim_due, refreeze_due = now + TRIM_EVERY, now + REFREEZE_EVERY
                    since, full_at = rss_mib(), now
                    looked, cpu = loop.time(), time.process_time()
                    continue
            made = gc.get_count()[0]
            collect, every = young_plan(made, cpu_share, every)
            self._looks += 1
            self._made_max = max(self._made_max, made)
            if collect:
                started = time.perf_counter()
                self._young_collected += collect_young()
                self._young_max = max(self._young_max, time.perf_counter() - started)
                self._young_collections += 1
            else:
                gc.freeze()  # what was made since the last look: spliced, not walked
            if now >= trim_due:
                self._trim()
                trim_due = now + TRIM_EVERY

    def _trim(self) -> None:
        now = rss_mib()
        if now is None or self._rss_at_start is None:
            return  # no /proc: not Linux, so no glibc either
        if now - self._rss_at_start >= self._trim_worth and _malloc_trim() is not None:
            self._timed("trim", release_free_memory)

    # No count of frozen objects here: gc.get_freeze_count() walks the whole frozen list,
    # a long hold of the loop at fleet size (docs/scaling.md).
    def report(self) -> dict[str, Any]:
        rss = rss_mib()
        report = {
            "rss_mib": None if rss is None else round(rss, 1),
            **self._last,
            "young_max_ms": round(self._young_max * 1000, 1),
            "young_collected": self._young_collected,
            # looks at what was new, those that walked it, the most made net between two
            "young_looks": self._looks,
            "young_collections": self._young_collections,
            "young_made_max": self._made_max,
        }
        self._young_max, self._young_collected = 0.0, 0
        self._looks = self._young_collections = self._made_max = 0
        return report
