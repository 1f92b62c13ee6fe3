"""QoS 2 across a reconnect under a lower Receive Maximum: the PUBRELs owed are held
back beyond the new limit and sent as slots free; each message arrives once."""

from __future__ import annotations

import asyncio
import contextlib
import uuid

from goe2mqtt.mqtt.client import MqttOptions
from goe2mqtt.mqtt.session_client import new_client
from goe2mqtt.sim.broker import MosquittoBroker

from ..conftest import MqttProbe, until
from ..mqtt_proxy import PUBCOMP, split_packets
from .test_receive_maximum import Connection, CountingProxy


class PubcompDropping(CountingProxy):
    """The counting proxy, dropping the broker's PUBCOMPs while ``drop`` is set."""

    drop = False

    async def _downstream(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, connection: Connection
    ) -> None:
        inner_r = asyncio.StreamReader()

        async def feed() -> None:
            buffer = bytearray()
            while data := await reader.read(65536):
                buffer += data
                for packet in split_packets(buffer):
                    if not (self.drop and packet[0] >> 4 == PUBCOMP):
                        inner_r.feed_data(packet)
            inner_r.feed_eof()

        feeding = asyncio.create_task(feed())
        try:
            await super()._downstream(inner_r, writer, connection)
        finally:
            feeding.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await feeding


async def test_pubrels_owed_after_a_reconnect_keep_within_the_new_receive_maximum(
    broker: MosquittoBroker,
) -> None:
    """Six QoS 2 messages the broker took (PUBREC) whose PUBCOMPs are lost with the
    connection (Receive Maximum 10); the next connection says 2: paho owes six PUBRELs
    and would send them at once. They go two at a time, each message arrives once."""
    run = uuid.uuid4().hex[:8]
    client_id = f"rm2-{run}"
    proxy = PubcompDropping(broker, client_id, [10, 2])
    await proxy.start()
    options = MqttOptions(host=broker.host, port=proxy.port, client_id=client_id,
                          session_expiry=300)  # fmt: skip
    client = new_client(options)
    topics = [f"rm2/{run}/{n}" for n in range(6)]
    try:
        async with MqttProbe(broker.host, broker.port, [f"rm2/{run}/#"]) as probe:
            proxy.drop = True
            async with client:
                done = [client.publish_once(t, b"x") for t in topics]
                first = proxy.of(client_id)[0]
                # Every PUBREL went out; the PUBCOMPs never come back.
                await until(lambda: len(first.awaiting) == 6, "6 awaiting PUBCOMP")
                proxy.cut()
                await until(lambda: client._disconnected.done(), "the connection lost")
            proxy.drop = False
            async with client:
                await asyncio.wait_for(asyncio.gather(*done), 20)
            await until(lambda: len(probe.messages) >= 6, "every message at the subscriber")
            arrived = sorted(m.topic for m in probe.messages)
    finally:
        await proxy.stop()
    second = proxy.of(client_id)[1]
    assert proxy.exceeded == []
    assert [c.limit for c in proxy.of(client_id)] == [10, 2]
    assert second.highest == 2  # 6 PUBRELs owed: 2 at a time
    assert arrived == sorted(topics)
