"""Websocket connects paced: a fleet's sockets open at most CONNECT_RATE a second.

At a start every link would connect at once: 10 000 handshakes, then (with the derived
keys kept) 10 000 authentications and full statuses within a second or two, more than a
small machine's event loop - or one server, the cloud's - answers within the handshake
and live limits: the connects that time out come back, and the storm feeds itself
(docs/scaling.md). Paced, they come at a rate the loop keeps up with, the first at once.
Reconnects take their turn too. No connect holds anything while it runs: a charger that
never answers delays no other.
"""

from __future__ import annotations

import asyncio
import weakref

CONNECT_RATE = 250.0  # a second, as the first polls (bridge/startup.MAX_START_RATE)

_next_turn: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, float] = (
    weakref.WeakKeyDictionary()
)


async def connect_turn() -> None:
    """Wait for this connect's turn: turns are 1/CONNECT_RATE apart, in call order."""
    wait = take_turn(asyncio.get_running_loop())
    if wait > 0:
        await asyncio.sleep(wait)


def take_turn(loop: asyncio.AbstractEventLoop) -> float:
    """The next turn on this loop, taken: how long until it comes (0: now)."""
    now = loop.time()
    turn = max(now, _next_turn.get(loop, now))
    _next_turn[loop] = turn + 1.0 / CONNECT_RATE
    return turn - now
