"""A publish paho already holds, past the Maximum Packet Size the broker says now.

The size check at publish time (SessionClient.publish, publish_once) knows the limit of
the connection it was made on. paho keeps a QoS 1 or 2 publish until it is answered and
sends it first thing on the next connection: one made before the broker's limit was
lowered, or a command's result an earlier process journaled under its packet id
(resume_once) - one the bridge before the size check had already sent, for good, into a
broker that ended the connection each time. Real Mosquitto, loopback.
"""

from __future__ import annotations

import asyncio

import aiomqtt
import pytest

from goe2mqtt.mqtt.client import MAX_INBOUND_PACKET, MqttOptions, Subscription, publish_size
from goe2mqtt.mqtt.session import MqttSession, PublishRefused
from goe2mqtt.sim.broker import MosquittoBroker

from ..conftest import WAIT, cancel, until
from ..limited_broker import session_at_limit


async def test_a_resumed_result_past_the_brokers_maximum_is_refused_not_sent_forever() -> None:
    """An earlier process sent a 3000-byte result under packet id 7 (journaled), the
    broker now takes 2000 bytes at most: resumed, paho sent it first thing on every
    connection and the broker ended each one. It is refused at the CONNACK instead, and
    the next result goes out on the same connection."""

    def resume(session: MqttSession) -> None:
        session.resume_once("mpr/result", b"x" * 3000, 7, taken=False)

    async with session_at_limit("mpr", "mps-resumed", resume) as (session, probe):
        with pytest.raises(PublishRefused):
            async with asyncio.timeout(WAIT):
                await session.publish_once("mpr/result", b"x" * 3000, packet_id=7)
        async with asyncio.timeout(WAIT):
            await session.publish_once("mpr/result", b"after it")
        await probe.wait_text("mpr/result", "after it")
        assert not session.disconnects, session.disconnects
        assert "mpr/result" in session.refused


async def test_a_message_mosquitto_sends_at_our_maximum_plus_its_header_byte_is_read() -> None:
    """Mosquitto counts a packet it sends against our CONNECT's Maximum Packet Size
    without its first byte: it sends one of exactly MAX_INBOUND_PACKET + 1 bytes. Ended
    at its header, the message stayed unacknowledged, and the broker (which keeps our
    session) sent it again at every connect: any user who may publish a command could
    keep the bridge offline with one message of that size."""
    with MosquittoBroker() as broker:
        host, port = broker.host, broker.port
        options = MqttOptions(host=host, port=port, client_id="mpi-edge", session_expiry=60,
                              availability_topic="mpi/availability", bulk_rate=0)  # fmt: skip
        topic = "mpi/cmd/x"
        size = next(n for n in range(MAX_INBOUND_PACKET - 64, MAX_INBOUND_PACKET)
                    if publish_size(topic, b"x" * n, 1, {}) == MAX_INBOUND_PACKET + 1)  # fmt: skip
        got: list[int] = []
        session = MqttSession(options, [Subscription("mpi/cmd/+", qos=1)],
                              reconnect_delays=(0.1,))  # fmt: skip
        running = asyncio.create_task(session.run(lambda message: got.append(len(message.payload))))
        try:
            await until(lambda: session.connected, "connected")
            async with aiomqtt.Client(host, port, identifier="mpi-peer",
                                      protocol=aiomqtt.ProtocolVersion.V5) as peer:  # fmt: skip
                await peer.publish(topic, b"x" * size, qos=1)
                await peer.publish(topic, b"after it", qos=1)
            await until(lambda: len(b"after it") in got, "the message after it read")
            assert got == [size, len(b"after it")]
            assert not session.disconnects, session.disconnects
        finally:
            await cancel(running)
