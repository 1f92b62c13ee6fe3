"""util/aio.cancel_until_ended, itself cancelled: a task that swallowed its first cancel
(3.11's wait_for inside aiomqtt) must not be left running. LookBack.stop runs it in the
session's finally, and the stop re-cancels the session's task every second: the look
back's read went on after the session had stopped."""

from __future__ import annotations

import asyncio

from goe2mqtt.util.aio import cancel_until_ended


async def test_cancelled_while_waiting_it_cancels_what_still_runs() -> None:
    swallowed = asyncio.Event()

    async def stubborn() -> None:
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            swallowed.set()  # the one cancel, dropped
        await asyncio.sleep(3600)

    task = asyncio.create_task(stubborn())
    await asyncio.sleep(0)
    try:
        stopping = asyncio.create_task(cancel_until_ended({task}))
        await swallowed.wait()
        stopping.cancel()  # the caller's task is cancelled meanwhile
        await asyncio.gather(stopping, return_exceptions=True)
        # Cancelled again on the way out: it ends at its next turn of the loop.
        for _ in range(3):
            await asyncio.sleep(0)
        assert task.cancelled(), "left running after the stop"
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
