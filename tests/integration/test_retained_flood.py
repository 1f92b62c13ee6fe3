"""A flood of retained messages never keeps the session down (issue 28, item 4).

Mosquitto drops every packet it has for a client once max_queued_messages wait to be
written to it, SUBACKs and PUBACKs included (eclipse/mosquitto#3542). The 30-minute
chaos soak met it: 50 chargers' discovery configs, read back on the session's own
connection by a bridge busy enough to read slower than the broker sent, crowded out the
SUBACK of the next subscription; the session timed out, reconnected, read them all
again, and never came up. Here a small max_queued_messages and a slow handler make the
same queue with fewer configs.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import aiomqtt
import pytest

from goe2mqtt.mqtt.session import InboundMessage, MqttOptions, MqttSession, Subscription
from goe2mqtt.sim.broker import MosquittoBroker

from ..conftest import WAIT, cancel, until

CONFIGS = 2000
QUEUE = 100  # Mosquitto's max_queued_messages: far below the configs
CONFIG_FILTER = "flood-ha/+/flood/+/config"


@pytest.fixture
def small_queue_broker() -> Iterator[MosquittoBroker]:
    with MosquittoBroker(
        persistence=True, extra_config=(f"max_queued_messages {QUEUE}",)
    ) as running:
        yield running


async def leave_configs(broker: MosquittoBroker) -> None:
    """What an earlier run left: a discovery config per entity, retained."""
    async with aiomqtt.Client(broker.host, broker.port, identifier="earlier-run") as client:
        for n in range(CONFIGS):
            topic = f"flood-ha/sensor/flood/c{n // 100}_{n % 100}/config"
            await client.publish(topic, b"{" + b"x" * 700 + b"}", qos=1, retain=True)


async def test_a_retained_flood_on_reconnect_does_not_keep_the_session_down(
    small_queue_broker: MosquittoBroker,
) -> None:
    broker = small_queue_broker
    await leave_configs(broker)
    retained: list[str] = []
    commands: list[bytes] = []

    def on_message(message: InboundMessage) -> None:
        if message.retain:
            retained.append(message.topic)
            time.sleep(0.0005)  # a bridge busy with its chargers reads slowly
        else:
            commands.append(message.payload)

    session = MqttSession(
        MqttOptions(
            host=broker.host,
            port=broker.port,
            client_id="flood-bridge",
            keepalive=5,
            availability_topic="flood/bridge/availability",
            session_expiry=300,
        ),
        [
            Subscription("flood/+/cmd/+", qos=1, no_local=True, retain_as_published=True),
            Subscription(CONFIG_FILTER, qos=0, retained_only=True),
        ],
        reconnect_delays=(0.2,),
    )
    running = asyncio.create_task(session.run(on_message))
    try:
        await until(lambda: session.connected, "first connection")
        await until(lambda: session.looked_back, "what earlier runs left was read")
        assert retained  # some at least: the broker drops what a slow reader cannot take
        # The user's client ends before the broker restart: one cut off by it would leave
        # aiomqtt's "Unexpected disconnection" unretrieved, reported in a later test.
        async with aiomqtt.Client(broker.host, broker.port, identifier="user") as user:
            await user.publish("flood/garage/cmd/set", b"1", qos=1)
            await until(lambda: commands == [b"1"], "a command after the flood")

        read_first = len(retained)
        broker.restart()
        await until(lambda: session.connections >= 2, "connected again", within=3 * WAIT)
        async with aiomqtt.Client(broker.host, broker.port, identifier="user") as again:
            await again.publish("flood/garage/cmd/set", b"2", qos=1)
            await until(lambda: commands == [b"1", b"2"], "a command after the restart")
        # Read once per process: the reconnect did not read the flood again.
        assert len(retained) == read_first
        assert set(retained) <= {
            f"flood-ha/sensor/flood/c{n // 100}_{n % 100}/config" for n in range(CONFIGS)
        }
    finally:
        session.stop()
        await cancel(running)
