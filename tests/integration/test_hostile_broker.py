"""Packet sizes both ways, against a hostile broker (a fake one, written here, on
loopback), a peer's retained message, and a Mosquitto with max_packet_size.

With MQTT 5 the bridge's CONNECT says the largest packet it takes (MaximumPacketSize:
256 KiB for the session and its side connections, 80 KiB for the charger-MQTT stream). A
compliant broker drops anything larger; one that does not (hostile, broken, or a proxy in
front) announces a PUBLISH of up to 256 MiB in its fixed header, and paho read and kept
all of it: the client ends the connection at the announcement instead. The other way, the
broker's CONNACK says the largest it takes, and a client that sends more is cut off: the
session refuses such a publish instead of sending it on every connection for good.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import uuid
from typing import Any

import aiomqtt
import pytest
import structlog.testing

from goe2mqtt.mqtt.client import MqttOptions, Subscription
from goe2mqtt.mqtt.look_back import read_retained
from goe2mqtt.mqtt.session import MqttSession, PublishRefused
from goe2mqtt.mqtt.session_client import MAX_INBOUND_PACKET, new_client
from goe2mqtt.mqtt.stream import MAX_INBOUND_PACKET as STREAM_MAX_INBOUND_PACKET
from goe2mqtt.mqtt.stream import StreamConnection
from goe2mqtt.mqtt.writes import MAX_QUEUED_PACKETS
from goe2mqtt.sim.broker import MosquittoBroker

from ..conftest import WAIT, cancel, until
from ..limited_broker import session_at_limit

CONNACK_V5 = b"\x20\x03\x00\x00\x00"  # session not present, success, no properties


def remaining_length(size: int) -> bytes:
    out = bytearray()
    while True:
        byte, size = size % 128, size // 128
        out.append(byte | (0x80 if size else 0))
        if not size:
            return bytes(out)


class HugePacketBroker:
    """Answers a CONNECT with CONNACK, then announces one PUBLISH of ``announced`` bytes
    and writes its body (64 KiB at a time) until the client ends the connection or
    ``at_most`` bytes of it were taken by the kernel."""

    def __init__(self, announced: int, at_most: int) -> None:
        self.announced = announced
        self.at_most = at_most
        self.port = 0
        self.connections = 0
        self.written = 0  # body bytes the kernel took on the last connection
        self.ended = asyncio.Event()  # the client ended the connection
        self.gave_up = asyncio.Event()  # at_most written and the client still reads
        self._server: asyncio.Server | None = None

    async def __aenter__(self) -> HugePacketBroker:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        assert self._server is not None
        self._server.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self.written = 0
        try:
            await reader.read(1)  # the CONNECT's first byte: the client is there
            writer.write(CONNACK_V5)
            topic = b"h/x"
            writer.write(b"\x30" + remaining_length(self.announced))
            head = len(topic).to_bytes(2, "big") + topic + b"\0\0"  # no properties
            writer.write(head)
            # Never past the packet's end: bytes after it would be another packet.
            left = min(self.at_most, self.announced - len(head))
            while self.written < left:
                chunk = b"\0" * min(65536, left - self.written)
                writer.write(chunk)
                await writer.drain()  # what the client reads, the kernel takes
                self.written += len(chunk)
            self.gave_up.set()
            await reader.read()  # until the client ends it: nothing more is sent
        except (ConnectionError, OSError):
            pass
        finally:
            self.ended.set()
            writer.transport.abort()


async def test_a_packet_larger_than_the_bridge_takes_ends_the_connection_unread() -> None:
    """A broker that ignores our Maximum Packet Size and announces a 200 MiB PUBLISH:
    the client ends the connection at its announcement. paho read and kept everything
    the broker sent (the test's broker stops at 8 MiB), whatever the bound we gave."""
    announced = 200 * 1024 * 1024
    at_most = 32 * MAX_INBOUND_PACKET  # 8 MiB: far past the bound, plus kernel buffers
    async with HugePacketBroker(announced, at_most) as fake:
        options = MqttOptions(host="127.0.0.1", port=fake.port, client_id="hostile-huge",
                              availability_topic="h/availability", bulk_rate=0)  # fmt: skip
        client = new_client(options)
        with contextlib.suppress(aiomqtt.MqttError):  # the end of the connection, told
            async with client:
                with contextlib.suppress(AssertionError):  # asserted below, outside
                    await until(
                        lambda: fake.ended.is_set() or fake.gave_up.is_set(),
                        "the client ended the connection, or read all the broker sent",
                    )
        assert not fake.gave_up.is_set(), (
            f"the client read {fake.written} bytes of a {announced}-byte packet, past its"
            f" own maximum of {MAX_INBOUND_PACKET}"
        )
        assert fake.ended.is_set()
        assert len(client._client._in_packet["packet"]) <= MAX_INBOUND_PACKET


async def test_the_charger_streams_client_keeps_its_own_smaller_bound() -> None:
    """The charger-MQTT stream says 80 KiB: a PUBLISH of 200 KiB (within the session's
    bound) ends its connection. The broker sends it whole, so here what tells is only
    whether the client ends the connection (it kept it, reading the packet, before)."""
    announced = 200 * 1024
    async with HugePacketBroker(announced, announced) as fake:
        options = MqttOptions(host="127.0.0.1", port=fake.port, client_id="hostile-stream")
        client = StreamConnection(options, ["h/#"], lambda *_: None)._new_client()
        with contextlib.suppress(aiomqtt.MqttError):
            async with client:
                with contextlib.suppress(AssertionError):  # asserted below, outside
                    await until(fake.ended.is_set, "the client ended the connection")
        assert fake.ended.is_set(), "the client read a packet past its maximum and stayed"
        assert len(client._client._in_packet["packet"]) <= STREAM_MAX_INBOUND_PACKET


async def test_a_peers_huge_retained_message_is_not_read_by_the_look_back(
    broker: MosquittoBroker,
) -> None:
    """What earlier runs left retained is read on a side connection (mqtt/look_back.py),
    and the look for another live bridge on one too (mqtt/preflight.py): both read what
    any broker user retained on our topics. A peer's 4 MiB retained availability was read
    whole at every start (and the broker lets a publish be up to 256 MiB): the side
    connections say the session's maximum packet size too, and the broker drops it."""
    base = f"huge{uuid.uuid4().hex[:8]}"
    huge, small = f"{base}/huge/availability", f"{base}/small/availability"
    async with aiomqtt.Client(broker.host, broker.port) as peer:
        await peer.publish(huge, b"x" * (4 * 1024 * 1024), qos=1, retain=True)
        await peer.publish(small, b"online", qos=1, retain=True)
    seen: dict[str, int] = {}
    options = MqttOptions(host=broker.host, port=broker.port, client_id=f"{base}-look")
    try:
        wanted = [Subscription(f"{base}/+/availability", qos=0, retained_only=True)]
        await read_retained(options, wanted, lambda m: seen.update({m.topic: len(m.payload)}))
    finally:
        async with aiomqtt.Client(broker.host, broker.port) as peer:
            for topic in (huge, small):
                await peer.publish(topic, b"", qos=1, retain=True)
    assert seen.get(small) == len(b"online")  # the look read what was there
    assert huge not in seen, f"a {seen.get(huge)}-byte retained message was read"


async def test_a_topic_past_the_brokers_maximum_packet_size_is_refused_not_sent() -> None:
    """A broker with max_packet_size (the README suggests it, to bound what a client can
    make the bridge read) says it in its CONNACK (MQTT 5) and ends the connection of a
    client that sends more. One topic of ours past it: the session sent it, was cut off,
    sent it again first thing on the next connection, and so on, for good: every other
    change waited, and the bridge said offline. It is refused instead (bridge/info's
    refused), and everything else goes out on the same connection."""
    async with session_at_limit("mps", "hostile-mps") as (session, probe):
        with structlog.testing.capture_logs() as logs:
            await session.publish_retained("mps/big", b"x" * 3000)
            await session.publish_retained("mps/small", b"after it")
            await until(lambda: "mps/big" in session.refused, "the big topic refused")
        said = [e for e in logs if e["event"] == "mqtt_publish_refused"]
        assert "max_packet_size" in said[0]["hint"]  # not the ACL's
        await probe.wait_text("mps/small", "after it")
        assert not session.disconnects, session.disconnects
    assert all(m.topic != "mps/big" for m in probe.messages)


async def test_a_result_past_the_brokers_maximum_packet_size_is_refused_not_sent() -> None:
    """The same for a one-off (a command's result, QoS 2): refused, and the next one goes."""
    async with session_at_limit("mpo", "hostile-mps-once") as (session, probe):
        with pytest.raises(PublishRefused):
            async with asyncio.timeout(WAIT):
                await session.publish_once("mpo/result", b"x" * 3000)
        async with asyncio.timeout(WAIT):
            await session.publish_once("mpo/result", b"after it")
        await probe.wait_text("mpo/result", "after it")
        assert not session.disconnects, session.disconnects


async def test_the_session_connects_again_after_a_packet_too_large() -> None:
    """The session behind it: the cut connection is counted and it connects again."""
    async with HugePacketBroker(200 * 1024 * 1024, 32 * MAX_INBOUND_PACKET) as fake:
        options = MqttOptions(host="127.0.0.1", port=fake.port, client_id="hostile-again",
                              availability_topic="h/availability", bulk_rate=0)  # fmt: skip
        session = MqttSession(options, [], reconnect_delays=(0.1,))
        running = asyncio.create_task(session.run(lambda message: None))
        try:
            await until(lambda: fake.connections >= 2 or fake.gave_up.is_set(),
                        "a second connection, or all the broker sent read")  # fmt: skip
            assert not fake.gave_up.is_set()
            assert sum(session.disconnects.values()) >= 1
        finally:
            await cancel(running)


async def test_the_look_back_ends_a_hostile_brokers_huge_packet_unread() -> None:
    """The side connections (look-back, preflight) end a packet past their maximum at its
    header too: against a broker that ignores it, the look-back read 8 MiB of 200 MiB."""
    async with HugePacketBroker(200 * 1024 * 1024, 32 * MAX_INBOUND_PACKET) as fake:
        options = MqttOptions(host="127.0.0.1", port=fake.port, client_id="hostile-look")
        wanted = [Subscription("h/+/availability", qos=0, retained_only=True)]
        with contextlib.suppress(aiomqtt.MqttError):  # the cut connection, told
            await read_retained(options, wanted, lambda message: None)
        await until(lambda: fake.ended.is_set() or fake.gave_up.is_set(), "the end told")
        assert not fake.gave_up.is_set(), f"the look-back read {fake.written} bytes of it"


class FloodingBroker:
    """Answers a CONNECT with CONNACK, then reads nothing more (its receive buffer small)
    and, once ``go`` is set, sends QoS 1 PUBLISHes, ``at_most`` of them, whatever the
    client's Receive Maximum: each one a PUBACK the client queues and cannot send."""

    def __init__(self, at_most: int) -> None:
        self.at_most = at_most
        self.port = 0
        self.sent = 0
        self.go = asyncio.Event()
        self.ended = asyncio.Event()
        self._server: asyncio.Server | None = None

    async def __aenter__(self) -> FloodingBroker:
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # inherited by accepts
        sock.bind(("127.0.0.1", 0))
        self._server = await asyncio.start_server(self._serve, sock=sock)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        assert self._server is not None
        self._server.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await reader.read(1)  # the CONNECT's first byte; then nothing more is read
            reader._transport.pause_reading()  # type: ignore[attr-defined]
            writer.write(CONNACK_V5)
            await self.go.wait()
            topic = b"h/flood"
            while self.sent < self.at_most:
                batch = bytearray()
                for _ in range(1000):
                    mid = self.sent % 65535 + 1
                    body = len(topic).to_bytes(2, "big") + topic + mid.to_bytes(2, "big") + b"\0"
                    batch += b"\x32" + remaining_length(len(body)) + body
                    self.sent += 1
                writer.write(bytes(batch))
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            self.ended.set()
            writer.transport.abort()


async def test_a_broker_that_reads_nothing_and_floods_cannot_grow_the_queue_unbounded() -> None:
    """A broker that stops reading and goes on sending QoS 1 messages (past any Receive
    Maximum): each is a PUBACK paho queues, and with the socket full none leaves. The
    connection ends once paho holds MAX_QUEUED_PACKETS; it held every one before."""
    async with FloodingBroker(100 * MAX_QUEUED_PACKETS) as fake:
        options = MqttOptions(host="127.0.0.1", port=fake.port, client_id="hostile-flood",
                              availability_topic="h/availability", bulk_rate=0)  # fmt: skip
        session = MqttSession(options, [], reconnect_delays=(30.0,))
        running = asyncio.create_task(session.run(lambda message: None))
        try:

            def socket_up() -> bool:  # connected: the session waits for its online's PUBACK
                client = session._session_client
                return client is not None and client._client._sock is not None

            await until(socket_up, "connected")
            assert session._session_client is not None
            paho = session._session_client._client
            sock: Any = paho._sock
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)  # the kernel holds little
            fake.go.set()
            bound = MAX_QUEUED_PACKETS + 1000
            await until(lambda: fake.ended.is_set() or len(paho._out_packet) > bound,
                        "the connection ended, or paho's queue grew past its bound",
                        within=6 * WAIT)  # fmt: skip
            assert len(paho._out_packet) <= bound, f"{len(paho._out_packet)} packets queued"
            assert fake.ended.is_set()
        finally:
            await cancel(running)
