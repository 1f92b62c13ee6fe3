"""Small asyncio helpers the standard library gets subtly wrong on Python 3.11."""

from __future__ import annotations

import asyncio


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
