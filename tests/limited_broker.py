"""A session connected to a Mosquitto that takes packets of 2000 bytes at most
(`max_packet_size`, said in its CONNACK), and a probe on the session's topics."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from goe2mqtt.mqtt.client import MqttOptions, Subscription
from goe2mqtt.mqtt.session import MqttSession
from goe2mqtt.sim.broker import MosquittoBroker

from .conftest import MqttProbe, cancel, until

LARGEST = 2000  # bytes: the broker's max_packet_size


@asynccontextmanager
async def session_at_limit(
    prefix: str, client_id: str, before: Callable[[MqttSession], None] | None = None
) -> AsyncIterator[tuple[MqttSession, MqttProbe]]:
    """The session connected (``before(session)`` runs before it starts), the probe on
    ``prefix/#``; the session is cancelled on the way out."""
    with MosquittoBroker(extra_config=(f"max_packet_size {LARGEST}",)) as broker:
        host, port = broker.host, broker.port
        options = MqttOptions(host=host, port=port, client_id=client_id,
                              availability_topic=f"{prefix}/availability", bulk_rate=0)  # fmt: skip
        async with MqttProbe(host, port, [f"{prefix}/#"]) as probe:
            session = MqttSession(options, [Subscription(f"{prefix}/cmd/+", qos=1)],
                                  reconnect_delays=(0.1,))  # fmt: skip
            if before is not None:
                before(session)
            running = asyncio.create_task(session.run(lambda message: None))
            try:
                await until(lambda: session.connected, "connected")
                yield session, probe
            finally:
                await cancel(running)
