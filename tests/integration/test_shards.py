"""Two instances split one fleet: each charger polled by one, commands answered once."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from goe2mqtt.config.settings import parse_settings
from goe2mqtt.mqtt.topics import Topics
from goe2mqtt.sim.broker import MosquittoBroker
from goe2mqtt.sim.simulator import SimulatedCharger, Simulator

from ..conftest import TOKEN, MqttProbe, RunningBridge

FLEET = [f"{n:06d}" for n in range(100100, 100112)]


@pytest.fixture
async def fleet() -> AsyncIterator[Simulator]:
    simulator = Simulator(SimulatedCharger(serial, TOKEN) for serial in FLEET)
    await simulator.start()
    yield simulator
    await simulator.stop()


async def test_two_shards_split_the_fleet_and_answer_each_command_once(
    broker: MosquittoBroker, fleet: Simulator
) -> None:
    chargers = [
        {"name": f"c{serial}", "serial": serial, "token": TOKEN,
         "api_url": fleet.url_for(serial), "scan_interval": 0.3}
        for serial in FLEET
    ]  # fmt: skip
    base = "goeshard"

    def settings(index: int) -> dict[str, object]:
        mqtt = {"host": broker.host, "port": broker.port, "base_topic": base,
                "client_id": f"goe2mqtt-shard-{index}", "discovery_prefix": "hashard"}  # fmt: skip
        return {"mqtt": mqtt, "chargers": chargers, "shard": {"index": index, "count": 2}}

    instances = [RunningBridge(parse_settings(settings(index))) for index in range(2)]
    topics = Topics(base)
    async with MqttProbe(broker.host, broker.port, [f"{base}/#"]) as probe:
        for instance in instances:
            await instance.start()
        try:
            for serial in FLEET:
                await probe.wait_text(topics.availability(f"c{serial}"), "online")
            owned = [set(instance.bridge.chargers) for instance in instances]
            assert owned[0].isdisjoint(owned[1])
            assert owned[0] | owned[1] == {f"c{serial}" for serial in FLEET}
            assert owned[0]  # twelve chargers do not all hash to one side
            assert owned[1]
            assert all(fleet.charger(serial).status_calls > 0 for serial in FLEET)
            # Each instance has its own bridge topics: one's last will is not the other's.
            for index in range(2):
                shard_topics = Topics(base, shard=index)
                await probe.wait_text(shard_topics.bridge_availability, "online")

            mark = probe.mark()
            for serial in FLEET:
                await probe.publish(
                    topics.command(f"c{serial}", "set_phase"), f'{{"phase": 1, "id": "{serial}"}}'
                )
            await probe.publish(topics.command("nosuch", "set_phase"), '{"phase": 1}')
            for serial in FLEET:
                await probe.wait_for(topics.result(f"c{serial}"), since=mark)
            await probe.wait_for(topics.result("nosuch"), since=mark)
            await asyncio.sleep(0.5)  # a second answer would show by now
            for serial in FLEET:
                results = probe.since(mark, topics.result(f"c{serial}"))
                assert [r.json()["ok"] for r in results] == [True], serial
                assert fleet.charger(serial).set_calls == [{"psm": 1}]
            assert len(probe.since(mark, topics.result("nosuch"))) == 1
        finally:
            for instance in instances:
                await instance.stop()
