"""A charger's "online" follows its first states on the wire, also when the connection is
lost while they go out: a subscriber that sees "online" has seen every state.

Between the bridge and Mosquitto sits a proxy that, from the first of the charger's
states on, passes nothing the bridge sends (the broker never gets them; the bridge waits
for their PUBACK), until the test cuts the connection. The states taken for sending were
owed again at the end, after the "online" owed behind them and not yet taken: after the
reconnect "online" went first, and Home Assistant showed the charger's entities
available with unknown values until the states came.
"""

from __future__ import annotations

import asyncio

from goe2mqtt.catalogue import STATUS_KEYS, read_states
from goe2mqtt.config.settings import parse_settings
from goe2mqtt.mqtt.topics import Topics
from goe2mqtt.sim.broker import MosquittoBroker
from goe2mqtt.sim.simulator import Simulator

from ..conftest import SERIALS, MqttProbe, RunningBridge, make_settings, until
from ..mqtt_proxy import PUBLISH, ProxyServer, publish_topic_and_id, split_packets


class StatesLost(ProxyServer):
    """Passes everything both ways; once a PUBLISH on one of ``topics`` comes, nothing
    more the client sends on that connection reaches the broker (the first time only)."""

    def __init__(self, broker: MosquittoBroker, topics: set[str]) -> None:
        super().__init__(broker.host, broker.port)
        self._topics = topics
        self.lost = asyncio.Event()  # the first state publish was swallowed

    async def _serve(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        broker_r, broker_w = await asyncio.open_connection(*self._broker)
        await self._pump((client_w, broker_w), (self._upstream(client_r, broker_w),
                         self._downstream(broker_r, client_w)), reset=True)  # fmt: skip

    async def _upstream(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        buffer, swallowing = bytearray(), False
        while data := await reader.read(65536):
            buffer += data
            for packet in split_packets(buffer):
                if not swallowing and not self.lost.is_set() and packet[0] >> 4 == PUBLISH:
                    swallowing = publish_topic_and_id(packet)[0] in self._topics
                    if swallowing:
                        self.lost.set()
                if not swallowing:
                    writer.write(packet)
            await writer.drain()

    async def _downstream(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()


async def test_online_follows_the_first_states_when_they_were_lost_on_the_way(
    broker: MosquittoBroker, simulator: Simulator
) -> None:
    raw = make_settings(broker, simulator, chargers=("garage",), scan_interval=60)
    topics = Topics(raw["mqtt"]["base_topic"])
    known, problems = read_states(simulator.charger(SERIALS["garage"]).status(STATUS_KEYS))
    assert not problems
    states = {topics.json_state("garage")} | {topics.state("garage", key) for key in known}
    assert len(states) > 16  # more than the sender's window: "online" is not taken yet
    proxy = StatesLost(broker, states)
    await proxy.start()
    raw["mqtt"]["port"] = proxy.port
    running = RunningBridge(parse_settings(raw))
    charger = None
    try:
        async with MqttProbe(broker.host, broker.port, [f"{topics.base}/#"]) as probe:
            await running.start()
            await until(lambda: "garage" in running.bridge.chargers, "the charger made")
            charger = running.bridge.chargers["garage"]
            await until(proxy.lost.is_set, "the first states on their way")
            await until(lambda: charger.availability.online, "the charger online")
            proxy.cut()  # the states and "online" owed again, on the next connection
            online = await probe.wait_text(topics.availability("garage"), "online")
            seen = set()
            for message in probe.messages:
                if message is online:
                    break
                seen.add(message.topic)
            assert states <= seen, f"online before {sorted(states - seen)[:3]} ..."
    finally:
        await running.stop()
        await proxy.stop()
