"""The harness's MqttProbe against a real Mosquitto: a mark taken right after entering means
"from now on", even when the broker has a large retained backlog for its subscriptions."""

from __future__ import annotations

import asyncio
import logging

import aiomqtt

from goe2mqtt.sim.broker import MosquittoBroker

from ..conftest import MqttProbe

PREFIX = "probe-selftest"
RETAINED = 2000  # enough that Mosquitto is still sending the backlog when SUBACK is in


async def test_a_mark_taken_on_entering_holds_none_of_the_retained_backlog(
    own_broker: MosquittoBroker,
) -> None:
    broker = own_broker  # nobody else's retained messages, nothing to clear afterwards
    kept = [f"{PREFIX}/{'ab'[n % 2]}/{n}" for n in range(RETAINED)]
    quiet = logging.getLogger("probe-selftest")  # not a warning per publish in flight
    quiet.setLevel(logging.ERROR)
    async with aiomqtt.Client(broker.host, broker.port, logger=quiet) as client:
        # Both QoS, as the bridge's states (QoS 1) and a user's mosquitto_pub -r (QoS 0);
        # a quarter QoS 1, well inside what Mosquitto queues for a client (1000).
        await asyncio.gather(
            *(
                client.publish(topic, str(n), qos=int(n % 8 < 2), retain=True)
                for n, topic in enumerate(kept)
            )
        )
        kept.append(f"{PREFIX}/a/last")
        await client.publish(kept[-1], "last", qos=1, retain=True)  # after all: all stored

    async with MqttProbe(broker.host, broker.port, ["#"]) as watcher:  # sees any sentinel
        filters = [f"{PREFIX}/a/#", f"{PREFIX}/b/#"]  # a SUBSCRIBE each
        async with MqttProbe(broker.host, broker.port, filters) as probe:
            mark = probe.mark()
            live = f"{PREFIX}/a/live"
            await probe.publish(live, "now")  # after the probe is up: after its backlog
            await probe.wait_text(live, "now", since=mark)
            await watcher.wait_text(live, "now")

            assert [m.topic for m in probe.since(mark)] == [live]
            backlog = probe.messages[:mark]
            assert {m.topic for m in backlog} == set(kept)
            assert len(backlog) == len(kept)
            assert all(m.retain for m in backlog)
        # The probes' sentinels are no message of theirs, nor of a probe that sees all.
        assert {m.topic for m in watcher.messages} == {*kept, live}
