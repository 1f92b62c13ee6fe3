"""A pushing charger's push connection beside the poll loop: kept open, its messages counted.

A command's read-back takes a message the charger pushed after the command's writes
(``came_after`` a mark noted before them), and when the socket stands but says
nothing, asks the charger instead: what it pushed last may be stale.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any

import structlog

from goe2mqtt.catalogue import STATUS_KEYS, keep_known
from goe2mqtt.goe.transport import AskingTransport, PushTransport

log = structlog.get_logger()

# A read-back while the charger pushes waits this long for its next message; none
# came: the socket may stand and say nothing, and the charger is asked (HTTP) instead.
PUSH_WAIT = 2.0

# A first connection still under way is not polled instead (a fleet's connects are paced
# and its hashes queue: a poll meanwhile costs the CPU they wait for) - for this long at
# most after the push connection opened; a socket that fails is polled at once, as ever.
SETTLE_AT_MOST = 300.0

# A message (a full status, or the keys that changed), and the push connection coming up or down.
MessageListener = Callable[[Mapping[str, Any], bool], Awaitable[None]]
StateChanged = Callable[[], None]


class PushSide:
    def __init__(self, name: str, transport: PushTransport) -> None:
        self.name = name
        self.transport = transport
        self._asks = transport if isinstance(transport, AskingTransport) else None
        # Pushed messages that carried a key the bridge reads: a read-back counts
        # those after a mark (a command notes it before it writes).
        self.count = 0
        self._came = asyncio.Event()  # set as ``count`` moves
        self._settle_by = 0.0  # loop time: a first connection under way is polled after

    @property
    def live(self) -> bool:
        return self.transport.live

    @property
    def settling(self) -> bool:
        """The first connection is under way (its turn in the paced connects, its hash
        in the queue, its full status), and not for too long: no poll instead."""
        if not self.transport.settling:
            return False
        return asyncio.get_running_loop().time() < self._settle_by

    @property
    def can_ask(self) -> bool:
        """Whether the charger can be asked for its status while it pushes."""
        return self._asks is not None

    def info(self) -> dict[str, Any]:
        """What a pushing peer sent that was not kept (unknown keys, huge values...)."""
        skipped = self.transport.skipped
        return {"skipped": dict(skipped)} if skipped else {}

    def arrived(self) -> None:
        """A message with a key the bridge reads came."""
        self.count += 1
        self._came.set()

    async def came_after(self, mark: int) -> bool:
        """Whether a message came after the ``mark``-th, waiting PUSH_WAIT at most."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(PUSH_WAIT):
                while self.count <= mark:
                    self._came.clear()
                    await self._came.wait()
        return self.count > mark

    async def ask(self) -> dict[str, Any] | None:
        """The charger's status, asked rather than pushed (the bridge's keys); None
        when there is nobody to ask. GoeError when it did not answer."""
        if self._asks is None:
            return None
        answer = await self._asks.ask(STATUS_KEYS)
        return None if answer is None else keep_known(answer)

    @contextlib.asynccontextmanager
    async def open(self, listener: MessageListener, on_state: StateChanged) -> AsyncIterator[None]:
        """Keep the push connection open (messages to ``listener``) while the body runs."""
        self._settle_by = asyncio.get_running_loop().time() + SETTLE_AT_MOST
        pushing = asyncio.create_task(
            self.transport.push(listener, on_state), name=f"push:{self.name}"
        )
        try:
            yield
        finally:
            # Again until it ends: on 3.11 a wait_for inside may swallow one cancel.
            while not pushing.done():
                pushing.cancel()
                await asyncio.wait({pushing}, timeout=1.0)
            if not pushing.cancelled() and pushing.exception() is not None:
                log.error("push_crashed", charger=self.name, error=repr(pushing.exception()))
