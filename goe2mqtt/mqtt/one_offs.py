"""A session's one-off messages, each taken by the broker exactly once.

A one-off (a command's result) goes at QoS 2 through the session's one client
(mqtt/session_client.py), so a connection that dies mid-way is followed by the same
packet again (DUP, or PUBREL), never by a second message. Here: those an earlier process
gave the broker, resumed under their packet ids on the first connect, and the wait for
each one's PUBCOMP, which also tells a frozen broker: none within the session's
ack_timeout on a connection still up fails that connection's ``stalled`` future, and the
session reconnects (TCP alone can take minutes to notice a SIGSTOPped broker), which
sends it again. Knows nothing of go-e.
"""

from __future__ import annotations

import asyncio
from typing import Protocol

from goe2mqtt.mqtt.client import BrokerStalled
from goe2mqtt.mqtt.session_client import SessionClient


class Connections(Protocol):
    """The session, as the wait for a PUBCOMP sees it."""

    ack_timeout: float

    @property
    def connections(self) -> int: ...

    @property
    def connected(self) -> bool: ...


class OneOffs:
    def __init__(self) -> None:
        # From resume(): packet id -> done when the broker's PUBCOMP came.
        self._resumed: dict[int, asyncio.Future[None]] = {}
        # The connection's while it is up (the session's _serve): failed by taken() when
        # the broker stops acknowledging, which ends the connection.
        self.stalled: asyncio.Future[None] | None = None

    def resume(
        self, client: SessionClient, topic: str, data: bytes, packet_id: int, *, taken: bool
    ) -> None:
        """A message an earlier process published under ``packet_id``: out again on the
        first connect (SessionClient.resume_once); resumed(packet_id) then has it."""
        self._resumed[packet_id] = client.resume_once(topic, data, packet_id, taken=taken)

    def resumed(self, packet_id: int | None) -> asyncio.Future[None] | None:
        """The resumed message under ``packet_id``, once (None: none such)."""
        return None if packet_id is None else self._resumed.pop(packet_id, None)

    async def taken(self, done: asyncio.Future[None], session: Connections) -> None:
        """Wait until the broker has it (PUBCOMP), however many connections that takes;
        raises what it answered (PublishRefused)."""
        while not done.done():
            connection = session.connections
            await asyncio.wait({done}, timeout=session.ack_timeout)
            stalled = self.stalled
            # Not done on a connection that is still the same and up: the broker froze
            # or is gone (TCP alone can take minutes to tell). Reconnecting sends it again.
            if (
                not done.done()
                and session.connections == connection
                and session.connected
                and stalled is not None
                and not stalled.done()
            ):
                stalled.set_exception(
                    BrokerStalled(f"no PUBCOMP within {session.ack_timeout:.0f} s")
                )
        done.result()
