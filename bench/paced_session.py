"""A bridge's MQTT session alone, at a given bulk pace, for bench/bulk_pace.py and
bench/ha_intake.py: made, run while the block runs, stopped after it."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from goe2mqtt.mqtt.session import InboundMessage, MqttOptions, MqttSession
from goe2mqtt.sim.broker import MosquittoBroker


def paced_session(
    broker: MosquittoBroker, rate: float, max_rate: float = 0.0
) -> tuple[MqttSession, str]:
    """A session with bulk_rate ``rate`` and max_rate ``max_rate`` (0: no limit) and a
    base topic of its own."""
    base = f"pace{uuid.uuid4().hex[:8]}"
    options = MqttOptions(
        host=broker.host, port=broker.port, client_id=f"{base}-bridge",
        availability_topic=f"{base}/bridge/availability", bulk_rate=rate, max_rate=max_rate,
    )  # fmt: skip
    return MqttSession(options, []), base


@asynccontextmanager
async def running(session: MqttSession) -> AsyncIterator[None]:
    """The session connected and sending for as long as the block runs."""

    def ignore(message: InboundMessage) -> None:
        pass

    task = asyncio.create_task(session.run(ignore))
    try:
        yield
    finally:
        session.stop()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
