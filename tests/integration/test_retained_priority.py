"""A change goes before a re-send of everything retained (Home Assistant's birth).

Before, everything owed again was queued with the changes, in one order: a change made
while a thousand chargers' 132 000 configs were sent again waited behind all of them
(17 s at p50), and so did every command's result that reported it.
"""

from __future__ import annotations

import asyncio
import uuid

from goe2mqtt.mqtt.session import InboundMessage, MqttOptions, MqttSession
from goe2mqtt.sim.broker import MosquittoBroker

from ..conftest import MqttProbe, cancel, until

TOPICS = 3000
PROBE_PACE = 1000.0  # messages a second, changes and re-send alike


async def test_a_change_made_during_a_re_send_arrives_before_the_re_send_ends(
    broker: MosquittoBroker,
) -> None:
    base = f"resend{uuid.uuid4().hex[:8]}"
    session = MqttSession(
        MqttOptions(
            host=broker.host,
            port=broker.port,
            client_id=f"{base}-bridge",
            availability_topic=f"{base}/bridge/availability",
            # The probe reads in this process, beside the sender: about 2000 messages a
            # second on a busy 2-CPU machine. Faster, the broker drops what passes its
            # queue for it (test_bulk_pace is of that); this test is of the order.
            max_rate=PROBE_PACE,
        ),
        [],
    )

    def ignore(message: InboundMessage) -> None:
        pass

    topics = [f"{base}/c{n}/config" for n in range(TOPICS)]
    async with MqttProbe(broker.host, broker.port, [f"{base}/+/config"]) as probe:
        for topic in topics:
            await session.publish_retained(topic, b'{"n": 1}')
        running = asyncio.create_task(session.run(ignore))
        try:
            await until(lambda: len(probe.messages) == TOPICS, "everything retained is out")
            mark = probe.mark()
            await session.republish_retained()  # Home Assistant's birth
            await probe.wait_for(topics[0], since=mark)  # the re-send is under way
            changed = topics[TOPICS // 2]
            await session.publish_retained(changed, b'{"n": 2}')
            # The change replaces the topic's place in the re-send: each topic once.
            await until(lambda: probe.mark() - mark == TOPICS, "the re-send and the change")
            arrived = [(m.topic, m.payload) for m in probe.since(mark)]
            assert len({topic for topic, _ in arrived}) == TOPICS
            assert arrived.index((changed, b'{"n": 2}')) < arrived.index((topics[-1], b'{"n": 1}'))
        finally:
            session.stop()
            await cancel(running)
