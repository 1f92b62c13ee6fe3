"""Memory upkeep for a long-running process: a small heap for the garbage collector
to walk, and freed memory handed back to the system.

- The bridge runs the cyclic collector itself, because its automatic full
  collections walk every tracked object and hold the event loop while they do: none
  while the fleet starts; once every charger has had its first poll, one full
  collection and the heap frozen (gc.freeze); then every COLLECT_EVERY a collection
  of what is not frozen and a freeze of what survived, or less often when a collection
  takes longer than COLLECTOR_SHARE of the time between two (what each connection
  keeps while it waits for its next frame is made anew every second and walked by every
  collection: 100-200 ms at 10 000 websocket chargers, which held the loop a tenth of
  the time when run every second); every REFREEZE_EVERY the heap unfrozen and collected
  in full, to free cycles that died after they were frozen.
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

COLLECT_EVERY = 1.0  # s, at the most often
COLLECTOR_SHARE = 0.02  # of the loop's time, at most, for the collections of what is new
COLLECT_AT_LEAST_EVERY = 30.0  # s
TRIM_EVERY = 600.0  # s
REFREEZE_EVERY = 3600.0  # s
# A trim gave back about a sixth of what TLS handshakes had grown the process by (58 ->
# 48 KiB a connection, docs/scaling.md): below this growth, less than ctypes costs.
TRIM_WORTH = 4.0  # MiB
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


def next_collection_in(took: float) -> float:
    """Seconds until the next collection of what is not frozen, after one that took
    `took` seconds: every COLLECT_EVERY while they are short, further apart as they get
    longer, so that they hold the loop at most COLLECTOR_SHARE of the time."""
    return min(max(COLLECT_EVERY, took / COLLECTOR_SHARE), COLLECT_AT_LEAST_EVERY)


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
        trim_due, refreeze_due = loop.time() + TRIM_EVERY, loop.time() + REFREEZE_EVERY
        pause = COLLECT_EVERY
        while not await wait_until_set(stop, pause):
            now = loop.time()
            if now >= refreeze_due:
                self._timed("freeze", freeze_heap)
                refreeze_due = now + REFREEZE_EVERY
            else:
                started = time.perf_counter()
                gc.collect()  # only what is not frozen: what was made since the last one
                gc.freeze()
                took = time.perf_counter() - started
                pause = next_collection_in(took)
                self._last["collect_ms"] = round(took * 1000, 1)
                self._last["collect_every_s"] = round(pause, 1)
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
        return {
            "rss_mib": None if rss is None else round(rss, 1),
            **self._last,
        }
