"""How many live streams (/events) may be open at once: http.max_streams.

Each open stream looks at its page every second (web/live.py), and nothing but the
token (or local access) bounded them (README has what they cost: bench/page.py). A
stream beyond the limit is refused (503, Retry-After) rather than closing the oldest:
the pages already open - a wall display, the operator's own tab - keep theirs, and an
evicted page's script would reconnect within a second and evict another, without end.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Any, TypeVar

T = TypeVar("T")

RETRY_AFTER = 30  # s: what a refused page (and Retry-After) waits before it asks again


@dataclass
class StreamSlots:
    """The open streams, the limit, and how many were refused since the start."""

    limit: int
    open: int = 0
    refused: int = 0

    def take(self) -> bool:
        """A slot for a new stream, or False (counted as refused) when all are taken."""
        if self.open >= self.limit:
            self.refused += 1
            return False
        self.open += 1
        return True

    def give_back(self) -> None:
        self.open -= 1

    @property
    def full(self) -> bool:
        return self.open >= self.limit

    def text(self) -> str:
        """What the page's header says: "3 of 64"."""
        return f"{self.open} of {self.limit}"


class Ticks:
    """One clock for every open stream: they look at the bridge at the same moments,
    and what one of them made of it (a page's rows, a row's cells, the header) serves
    the others until the next tick. Sixty-four pages open on one fleet page made its
    fifty rows sixty-four times a second; now once. The clock runs while streams wait
    on it, and stops a tick after the last one went."""

    def __init__(self, period: float) -> None:
        self._period = period
        self._event = asyncio.Event()
        self._waiting = 0
        self._runner: asyncio.Task[None] | None = None
        self._made: dict[Hashable, Any] = {}

    async def next(self) -> None:
        """Until the next tick."""
        if self._runner is None:
            self._runner = asyncio.create_task(self._run())
        event = self._event
        self._waiting += 1
        try:
            await event.wait()
        finally:
            self._waiting -= 1

    def made(self, key: Hashable, make: Callable[[], T]) -> T:
        """What make() gives, made once a tick for every stream that asks by this key."""
        if key not in self._made:
            self._made[key] = make()
        made: T = self._made[key]
        return made

    def tick(self) -> None:
        """What was made is forgotten, and the waiting streams look again."""
        event, self._event = self._event, asyncio.Event()
        self._made.clear()
        event.set()

    async def _run(self) -> None:
        try:
            while True:
                await asyncio.sleep(self._period)
                if not self._waiting:
                    return  # no stream waits (the next one that does starts it again)
                self.tick()
        finally:
            self._runner = None

    async def stop(self) -> None:
        runner = self._runner
        if runner is not None:
            runner.cancel()
            await asyncio.gather(runner, return_exceptions=True)
