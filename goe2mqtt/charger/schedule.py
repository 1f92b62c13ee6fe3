"""When one charger is looked at, and which keys a poll asks for.

Spread: the first polls of a fleet are spread instead of a burst. Steady: each poll is
then due an interval after the one before was due, not after it ended. Early: a
command or the push connection's change wakes the loop. Polite: settings and facts are
asked for only every config_interval, after a write or after the charger restarted.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from goe2mqtt.catalogue import LIVE_KEYS
from goe2mqtt.charger.rules import next_due
from goe2mqtt.config.settings import ChargerSettings
from goe2mqtt.util.aio import Alarm

MAX_BACKOFF_FACTOR = 3  # polling slows to at most 3x scan_interval while failing


class PollSchedule:
    __slots__ = ("_settings", "_settled_due", "_settled_read_at", "_wake", "stopping")

    def __init__(self, settings: ChargerSettings) -> None:
        self._settings = settings
        self._wake = Alarm()
        self.stopping = False
        self._settled_read_at: float | None = None  # monotonic: the last poll of every key
        self._settled_due = True  # a write, a restart: read settings and facts again

    def wake(self) -> None:
        """Look now."""
        self._wake.set()

    async def sleep(self, seconds: float) -> bool:
        """Wait ``seconds`` or until woken; whether it was woken."""
        return await self._wake.wait(seconds)

    def stop(self) -> None:
        self.stopping = True
        self._wake.set()

    def poll_soon(self, delay: float = 0.0) -> None:
        """Poll early (after a command: every key, settings included)."""
        self._settled_due = True
        if delay <= 0:
            self._wake.set()
        else:
            asyncio.get_running_loop().call_later(delay, self._wake.set)

    def every_key_due(self, now: float, *, writing: bool) -> bool:
        """Whether a poll at ``now`` asks every key, or only the live ones
        (``writing``: a command runs, and reads back every key)."""
        return (
            self._settled_due
            or writing
            or self._settled_read_at is None
            or now - self._settled_read_at >= self._settings.config_interval
        )

    def answered(
        self, last: Mapping[str, Any], answer: dict[str, Any], *, every_key: bool, at: float
    ) -> dict[str, Any] | None:
        """The status a poll's answer makes; None when the charger restarted (its
        restart counter moved), perhaps into new firmware: ask again, every key."""
        if every_key:
            self._settled_read_at, self._settled_due = at, False
            return answer
        if answer.get("rbc") != last.get("rbc"):
            self._settled_due = True
            return None
        # Settings as last read; a live key the answer lacks is gone (unknown).
        status = {k: v for k, v in last.items() if k not in LIVE_KEYS}
        status.update(answer)
        return status

    def next_delay(self, *, failures: int, hold_off: float, car_idle: bool) -> float:
        """Seconds from one poll to the next: slower while failing (at most
        MAX_BACKOFF_FACTOR), idle_interval with no car, never before ``hold_off``."""
        if failures:
            factor = min(2 ** (failures - 1), MAX_BACKOFF_FACTOR)
            return max(float(self._settings.scan_interval * factor), hold_off)
        if car_idle:
            # No car: only plugging one in can change anything. A command wakes us anyway.
            return max(self._settings.idle_interval, hold_off)
        return max(self._settings.scan_interval, hold_off)

    async def run(
        self,
        start_within: float | None,
        look: Callable[[], Awaitable[bool]],
        next_delay: Callable[[], float],
        told: Callable[[], bool] = lambda: False,
    ) -> None:
        """Call ``look`` whenever a look is due, until stop(). ``look`` says whether it
        polled; False (the charger pushes, or its push connection is on its way): only a
        look whether the push connection still stands is due, at the usual pace - or none
        while ``told()``: the connection wakes the loop itself when it goes down (at
        10 000 pushing chargers a look every scan_interval was 1000 wake-ups a second)."""
        # Polls that a stall (a long collection, a busy machine) made late all at once
        # go back to their own times, instead of staying bunched and coming due
        # together ever after.
        scan_interval = self._settings.scan_interval
        if start_within is None:
            start_within = min(scan_interval, 1.0)
        loop = asyncio.get_running_loop()
        due = loop.time() + random.uniform(0, start_within)
        woken = await self._wake.wait(due - loop.time())
        while not self.stopping:
            self._wake.clear()
            if woken:  # polled early (a command, a wake-up): the schedule starts anew
                due = loop.time()
            if not await look():
                woken = await self._wake.wait(None if told() else scan_interval)
                continue
            now = loop.time()
            due = next_due(due, next_delay(), now)
            woken = await self._wake.wait(due - now)
