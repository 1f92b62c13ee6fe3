"""The sender's side of the session's client for fake brokers: publish_acked()."""

from __future__ import annotations

import asyncio
import itertools
from typing import Any

from goe2mqtt.mqtt.sender import Answer

_MIDS = itertools.count(1)


class AckingBroker:
    """publish_acked() as mqtt/session_client.SessionClient has it, over the fake's own
    ``async publish``: answered when that returns, or with the error it raised."""

    async def publish(self, topic: str, payload: bytes, **_: Any) -> None:
        raise NotImplementedError

    def publish_acked(self, topic: str, payload: bytes, answer: Answer) -> int:
        mid = next(_MIDS)

        async def publishing() -> None:
            try:
                await self.publish(topic, payload)
            except Exception as exc:
                answer(mid, exc)
            else:
                answer(mid, None)

        task = asyncio.get_running_loop().create_task(publishing())
        _PUBLISHING.add(task)
        task.add_done_callback(_PUBLISHING.discard)
        return mid


_PUBLISHING: set[asyncio.Task[None]] = set()  # held: a task only the loop refers to may go
