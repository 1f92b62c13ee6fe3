"""Small asyncio helpers the standard library gets subtly wrong on Python 3.11."""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Collection
from typing import Any, TypeVar

RECANCEL_EVERY = 1.0  # s: a task still running is cancelled again this often

_Task = TypeVar("_Task", bound="asyncio.Future[Any]")


async def wait_until_set(event: asyncio.Event, seconds: float) -> bool:
    """Wait for ``event`` at most ``seconds``; True if it was set.

    Not ``asyncio.wait_for``: on 3.11 a cancellation that races with its timeout
    comes out as TimeoutError, so a caller that shrugs off timeouts would shrug
    off the cancel too and never stop. ``asyncio.timeout`` tells the two apart.
    """
    try:
        async with asyncio.timeout(seconds):
            await event.wait()
    except TimeoutError:
        return False
    return True


async def cancel_until_ended(tasks: Collection[_Task], within: float | None = None) -> set[_Task]:
    """Cancel ``tasks``, again every RECANCEL_EVERY s until they end; after ``within`` s
    (None: until they end) those still running are returned, cancelled, not awaited.

    Again: on 3.11 an asyncio.wait_for inside a library (aiomqtt's connect, subscribe)
    returns a result that came with the cancel and drops the cancel; the task goes on.
    """
    loop = asyncio.get_running_loop()
    deadline = None if within is None else loop.time() + within
    pending = set(tasks)
    while pending:
        for task in pending:
            task.cancel()
        wait = RECANCEL_EVERY if deadline is None else min(RECANCEL_EVERY, deadline - loop.time())
        try:
            # Past the deadline still one turn of the loop: a task that ends at its cancel does.
            _, pending = await asyncio.wait(pending, timeout=max(0.0, wait))
        except asyncio.CancelledError:
            # The caller cancelled (a stop's backstop re-cancels it every second): one that
            # dropped its cancel would go on for good, asyncio.wait passes none along.
            for task in pending:
                task.cancel()
            raise
        if wait <= 0:
            break
    return pending


_NO_CONTEXT = contextvars.Context()  # for timers that read no context variables


class Alarm:
    """A flag that one sleeper waits on with a timeout: each charger's poll loop.

    An asyncio.Event waited on under asyncio.timeout keeps a dozen objects alive per
    sleep, and a fleet's sleeping loops make the collector's full walks long
    (docs/scaling.md). This sleep is a future and its timer, nothing raised when it
    expires.
    """

    __slots__ = ("_set", "_timer", "_waiter")

    def __init__(self) -> None:
        self._set = False
        self._waiter: asyncio.Future[bool] | None = None
        self._timer: asyncio.TimerHandle | None = None

    def is_set(self) -> bool:
        return self._set

    def set(self) -> None:
        self._set = True
        if self._waiter is not None:
            if not self._waiter.done():
                self._waiter.set_result(True)
            self._waiter = None
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def clear(self) -> None:
        self._set = False

    def wait(self, seconds: float | None) -> asyncio.Future[bool]:
        """Await it: True once set (at once if it is), False after ``seconds`` (None:
        only once set). One sleeper: a new wait ends the one before with False."""
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[bool] = loop.create_future()
        if self._set:
            waiter.set_result(True)
            return waiter
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(False)
        if self._timer is not None:
            self._timer.cancel()
        self._waiter = waiter
        self._timer = (
            None
            if seconds is None
            else loop.call_later(seconds, _expire, waiter, context=_NO_CONTEXT)
        )
        return waiter


def _expire(waiter: asyncio.Future[bool]) -> None:
    if not waiter.done():  # a cancelled sleeper's future is done already
        waiter.set_result(False)
