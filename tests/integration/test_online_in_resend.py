"""A charger back "online" while everything retained is sent again (Home Assistant's
birth, a reconnect to a broker that lost its retained messages): a subscriber gets its
states before its "online" (mqtt/vouches.py). Before, the "online", a change, went ahead
of the re-send, and its states came at the re-send's pace, after every topic before them.
"""

from __future__ import annotations

import asyncio
import uuid

from goe2mqtt.charger.publish import ChargerOutput
from goe2mqtt.charger.state_family import states_key
from goe2mqtt.mqtt.session import InboundMessage, MqttOptions, MqttSession
from goe2mqtt.mqtt.topics import Topics
from goe2mqtt.sim.broker import MosquittoBroker

from ..conftest import MqttProbe, cancel, until

FILLERS = 2000  # retained before the charger's states: the re-send's first part
PROBE_PACE = 1000.0  # messages a second: what a probe in this process reads (see
# test_retained_priority)


async def test_a_charger_back_online_in_a_re_send_arrives_after_its_states(
    broker: MosquittoBroker,
) -> None:
    base = f"vouch{uuid.uuid4().hex[:8]}"
    topics = Topics(base)
    session = MqttSession(
        MqttOptions(
            host=broker.host,
            port=broker.port,
            client_id=f"{base}-bridge",
            availability_topic=f"{base}/bridge/availability",
            max_rate=PROBE_PACE,
            bulk_rate=PROBE_PACE / 2,  # the re-send takes seconds: the charger is back in it
        ),
        [],
    )

    def ignore(message: InboundMessage) -> None:
        pass

    out = ChargerOutput(
        "garage", session, topics=topics, discovery_prefix=None, leaf_topics=True,
        on_facts=lambda facts: None, min_interval=0.0,
    )  # fmt: skip
    online = topics.availability("garage")
    fillers = [f"{base}/filler/{n}" for n in range(FILLERS)]
    async with MqttProbe(broker.host, broker.port, [f"{base}/#"]) as probe:
        for topic in fillers:
            await session.publish_retained(topic, b"1")
        status = {"amp": 10, "alw": True, "car": 2, "fwv": "56.1"}
        await out.take(status, None, "012345")
        await out.availability(online=True)
        await out.availability(online=False)
        family = session._store.retained[states_key(topics, "garage")]
        assert not isinstance(family, bytes)
        states = list(family.topics())
        running = asyncio.create_task(session.run(ignore))
        try:
            await probe.wait_text(online, "offline")
            await until(lambda: all(probe.latest(t) for t in (*fillers, *states)), "all out")
            mark = probe.mark()
            await session.republish_retained()  # Home Assistant's birth
            await probe.wait_for(fillers[0], since=mark)  # the re-send is under way
            await out.take({**status, "amp": 11}, {"amp"}, "012345")  # back
            await out.availability(online=True)
            await probe.wait_text(online, "online", since=mark)
            arrived = [m.topic for m in probe.since(mark)]
            before = set(arrived[: arrived.index(online)])
            missing = [topic for topic in states if topic not in before]
            assert not missing, f"online before {len(missing)} of its states: {missing[:3]}"
            assert fillers[-1] not in before  # they went ahead of the re-send, not in it
        finally:
            out.stop()
            session.stop()
            await cancel(running)
