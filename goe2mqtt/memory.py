"""Memory upkeep for a long-running process: a small heap for the garbage collector
to walk, and freed memory handed back to the system.

- Python's cyclic garbage collector walks every tracked object on a full collection.
  At 10 000 chargers that is over a million objects (connections, tasks, settings, the
  catalogue) made at start-up and never freed: full collections came every few
  seconds and held the event loop up to 1.4 s each (bench/bench.py --fleet, 10 000
  chargers), so commands waited. So there is no collection while the fleet starts
  (its connections are made then); once every charger has had its first poll the heap
  is collected once and frozen (gc.freeze), and collections walk only what was made
  since, mostly the statuses each poll replaces. What survives is frozen again every
  TRIM_EVERY (cheap: no collection). Refcounting still frees frozen objects; only
  garbage cycles among them would stay, so every REFREEZE_EVERY the heap is unfrozen,
  collected in full once (~1.3 s at 10 000 chargers) and frozen again.
- Every TLS handshake, and the session tickets a TLS 1.3 server sends after it, leave
  freed blocks between live ones that glibc keeps in the process. Measured on 1000
  TLS connections: 58 KiB each after the handshakes, 48 KiB after malloc_trim(0) (45
  KiB against a server that sends no tickets, and then trimming gains nothing). So
  the heap is trimmed after the start-up freeze and every TRIM_EVERY. Without glibc
  (musl, macOS) there is no malloc_trim and only the freezing is done.
"""

from __future__ import annotations

import asyncio
import ctypes
import gc
import os
import time
from collections.abc import Callable
from typing import Any

import structlog

from goe2mqtt.aio import wait_until_set

log = structlog.get_logger()

TRIM_EVERY = 600.0  # s
REFREEZE_EVERY = 3600.0  # s
READY_CHECK_EVERY = 1.0  # s


def _find_malloc_trim() -> Callable[[int], int] | None:
    try:
        libc = ctypes.CDLL(None)
    except OSError:
        return None
    trim = getattr(libc, "malloc_trim", None)
    if trim is None:
        return None
    trim.argtypes, trim.restype = [ctypes.c_size_t], ctypes.c_int
    return trim  # type: ignore[no-any-return]


_malloc_trim = _find_malloc_trim()


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
    if _malloc_trim is None:
        return False
    _malloc_trim(0)
    return True


def freeze_heap() -> None:
    """Collect what is garbage now, then leave every surviving object out of future
    collections (after an unfreeze, this is the periodic full collection)."""
    gc.unfreeze()
    gc.collect()
    gc.freeze()


class MemoryUpkeep:
    """Runs the schedule above; report() is bridge/info's "memory"."""

    def __init__(self) -> None:
        self._last: dict[str, Any] = {}

    def _timed(self, step: str, action: Callable[[], object]) -> None:
        before, started = rss_mib(), time.perf_counter()
        action()
        after = rss_mib()
        self._last[f"{step}_ms"] = round((time.perf_counter() - started) * 1000, 1)
        if before is not None and after is not None:
            self._last[f"{step}_freed_mib"] = round(before - after, 1)
        log.debug("memory_upkeep", step=step, **{k: v for k, v in self._last.items()
                                                  if k.startswith(step)})  # fmt: skip

    async def run(self, stop: asyncio.Event, *, ready: Callable[[], bool], at_most: float) -> None:
        """Until `stop`. The start-up phase ends when `ready()` (every charger had its
        first poll), at the latest after `at_most` seconds."""
        gc.disable()
        try:
            deadline = time.monotonic() + at_most
            while not ready() and time.monotonic() < deadline:
                if await wait_until_set(stop, READY_CHECK_EVERY):
                    return
            self._timed("freeze", freeze_heap)
        finally:
            gc.enable()
        self._trim()
        refreeze_due = time.monotonic() + REFREEZE_EVERY
        while not await wait_until_set(stop, TRIM_EVERY):
            if time.monotonic() >= refreeze_due:
                self._timed("freeze", freeze_heap)
                refreeze_due = time.monotonic() + REFREEZE_EVERY
            else:
                gc.freeze()
            self._trim()

    def _trim(self) -> None:
        if _malloc_trim is not None:
            self._timed("trim", release_free_memory)

    def report(self) -> dict[str, Any]:
        rss = rss_mib()
        return {
            "rss_mib": None if rss is None else round(rss, 1),
            "frozen_objects": gc.get_freeze_count(),
            **self._last,
        }
