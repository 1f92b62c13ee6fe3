"""MQTT 5: never more QoS 1 and 2 publishes awaiting an answer than the broker's CONNACK
allows (Receive Maximum), on every connection, whatever paho owes from an earlier one.

Between the bridge and a real Mosquitto sits a proxy that reads the packets it forwards:
per connection, the client's QoS 1/2 PUBLISHes (and PUBRELs owed from an earlier
connection) the broker has not yet answered (PUBACK, PUBCOMP, a failing PUBREC) as they
reach the client. It notes every moment that count passes the CONNACK's Receive Maximum,
which it may rewrite, per connection of the bridge's session, to values of the test's.
A strict broker would disconnect with 0x93 there.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import structlog
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties, VariableByteIntegers

from goe2mqtt.config.settings import parse_settings
from goe2mqtt.mqtt.client import MqttOptions
from goe2mqtt.mqtt.stream import StreamConnection
from goe2mqtt.mqtt.topics import Topics
from goe2mqtt.sim.broker import MosquittoBroker
from goe2mqtt.sim.simulator import Simulator

from ..conftest import MqttProbe, RunningBridge, make_settings, until
from ..mqtt_proxy import (
    PUBACK,
    PUBCOMP,
    PUBLISH,
    PUBREC,
    PUBREL,
    ProxyServer,
    packet_body,
    packet_id,
    split_packets,
)

CONNECT, CONNACK = 1, 2
UNLIMITED = 65535  # a CONNACK without Receive Maximum
CONFIGS = 250  # discovery configs of the bridge and two chargers (~130 each)


def _string(data: bytes, at: int) -> tuple[str, int]:
    size = int.from_bytes(data[at : at + 2], "big")
    return data[at + 2 : at + 2 + size].decode(), at + 2 + size


def connect_client_id(packet: bytes) -> tuple[str, bool]:
    """A CONNECT's client id, and whether it is MQTT 5."""
    body = packet_body(packet)
    _, at = _string(body, 0)  # "MQTT"
    v5 = body[at] == 5
    at += 4  # level, flags, keep-alive
    if v5:
        size, used = VariableByteIntegers.decode(body[at:])
        at += used + size
    return _string(body, at)[0], v5


def connack_properties(packet: bytes) -> Properties:
    props = Properties(PacketTypes.CONNACK)  # type: ignore[no-untyped-call]
    props.unpack(packet_body(packet)[2:])
    return props


def with_receive_maximum(packet: bytes, value: int) -> bytes:
    body = packet_body(packet)
    props = connack_properties(packet)
    props.ReceiveMaximum = value
    rest = body[:2] + props.pack()
    return bytes([packet[0]]) + VariableByteIntegers.encode(len(rest)) + rest


@dataclass
class Connection:
    client_id: str = ""
    v5: bool = False
    limit: int = UNLIMITED  # the Receive Maximum the client was told (before: the default)
    awaiting: set[int] = field(default_factory=set)  # packet ids, as the client sees them
    highest: int = 0
    resent: int = 0  # PUBLISHes with DUP (owed from an earlier connection)


class CountingProxy(ProxyServer):
    def __init__(self, broker: MosquittoBroker, client_id: str, limits: list[int]) -> None:
        super().__init__(broker.host, broker.port)
        self._client_id = client_id  # whose CONNACKs are rewritten
        self._limits = list(limits)  # Receive Maximum of its connections, in turn; then as is
        self.connections: list[Connection] = []
        self.exceeded: list[str] = []
        self.published: Counter[str] = Counter()  # QoS 1/2 PUBLISHes without DUP, by topic
        self.hold = False  # the broker's bytes are dropped (the answers never come)

    def of(self, client_id: str) -> list[Connection]:
        return [c for c in self.connections if c.client_id == client_id]

    def _count(self, connection: Connection, mid: int) -> None:
        connection.awaiting.add(mid)
        connection.highest = max(connection.highest, len(connection.awaiting))
        self._check(connection)

    def _check(self, connection: Connection) -> None:
        if len(connection.awaiting) > connection.limit:
            self.exceeded.append(
                f"{connection.client_id}: {len(connection.awaiting)} awaiting an answer,"
                f" Receive Maximum {connection.limit}"
            )

    async def _serve(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        broker_r, broker_w = await asyncio.open_connection(*self._broker)
        connection = Connection()
        self.connections.append(connection)
        await self._pump((client_w, broker_w), (self._upstream(client_r, broker_w, connection),
                         self._downstream(broker_r, client_w, connection)), reset=True)  # fmt: skip

    async def _upstream(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, connection: Connection
    ) -> None:
        buffer = bytearray()
        while data := await reader.read(65536):
            buffer += data
            for packet in split_packets(buffer):
                kind = packet[0] >> 4
                if kind == CONNECT:
                    connection.client_id, connection.v5 = connect_client_id(packet)
                elif kind == PUBLISH and (packet[0] >> 1) & 3:
                    body = packet_body(packet)
                    topic, at = _string(body, 0)
                    if packet[0] & 0x08:
                        connection.resent += 1
                    else:
                        self.published[topic] += 1
                    self._count(connection, int.from_bytes(body[at : at + 2], "big"))
                elif kind == PUBREL:
                    self._count(connection, packet_id(packet))  # owed from before: counts
                writer.write(packet)
            with contextlib.suppress(ConnectionError):
                await writer.drain()

    async def _downstream(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, connection: Connection
    ) -> None:
        buffer = bytearray()
        while data := await reader.read(65536):
            buffer += data
            for packet in split_packets(buffer):
                if self.hold:
                    continue
                kind = packet[0] >> 4
                if kind == CONNACK and connection.v5:
                    if connection.client_id == self._client_id and self._limits:
                        packet = with_receive_maximum(packet, self._limits.pop(0))
                    told = getattr(connack_properties(packet), "ReceiveMaximum", UNLIMITED)
                    connection.limit = told
                    self._check(connection)  # what went before the CONNACK counts too
                elif kind in (PUBACK, PUBCOMP):
                    connection.awaiting.discard(packet_id(packet))
                elif kind == PUBREC and packet_body(packet)[2:3] >= b"\x80":
                    connection.awaiting.discard(packet_id(packet))  # refused: over
                writer.write(packet)  # the client knows the answer from here on
            with contextlib.suppress(ConnectionError):
                await writer.drain()


async def test_a_start_with_discovery_keeps_within_mosquittos_receive_maximum(
    simulator: Simulator,
) -> None:
    """Mosquitto with max_inflight_messages 3 tells v5 clients Receive Maximum 3. A start
    with discovery on (~130 configs per charger, states besides): never more than 3
    awaiting an answer, every config arrives once, a command's result (QoS 2) sent in the
    middle too, the value is logged once."""
    # The probe must not lose any of the burst (Mosquitto keeps 1000 for a slow reader).
    config = ("max_inflight_messages 3", "max_queued_messages 0")
    with MosquittoBroker(extra_config=config) as broker:
        raw = make_settings(broker, simulator, chargers=("garage", "carport"))
        client_id, prefix = raw["mqtt"]["client_id"], raw["mqtt"]["discovery_prefix"]
        topics = Topics(raw["mqtt"]["base_topic"])
        command = topics.command("garage", "change_charging_power")
        result = topics.result("garage")
        proxy = CountingProxy(broker, client_id, [])
        await proxy.start()
        raw["mqtt"]["port"] = proxy.port
        running = RunningBridge(parse_settings(raw))
        session = running.bridge.mqtt
        try:
            with structlog.testing.capture_logs() as logs:
                watched = [f"{prefix}/#", result]
                async with MqttProbe(broker.host, broker.port, watched) as probe:
                    await running.start()
                    await until(lambda: session.connected, "the session connected")
                    # A command's result (QoS 2) in the middle of the burst: one more.
                    await probe.publish(command, json.dumps({"charging_power": 10, "id": "r"}))

                    def configs_in() -> bool:
                        sent = {t for t in proxy.published if t.startswith(f"{prefix}/")}
                        got = {m.topic for m in probe.messages}
                        done = session.connected and session.backlog == 0
                        return done and len(sent) >= CONFIGS and sent <= got

                    await until(configs_in, "every discovery config at the subscriber", within=60)
                    await probe.wait_for(result)
                    arrived = Counter(m.topic for m in probe.messages)
        finally:
            await running.stop()
            await proxy.stop()
    sent = Counter({t: n for t, n in proxy.published.items() if t.startswith(f"{prefix}/")})
    assert proxy.exceeded == []
    assert {c.limit for c in proxy.of(client_id)} == {3}
    assert set(sent.values()) == {1}  # each config published once
    assert arrived == sent + Counter({result: 1})  # and arrived once, the result too
    told = [e for e in logs if e["event"] == "mqtt_receive_maximum"]
    assert len(told) == len(proxy.of(client_id))  # once per connection of the session
    assert {(e["broker"], e["in_flight_at_most"]) for e in told} == {(3, 3)}


async def test_each_connection_keeps_within_its_own_receive_maximum(
    simulator: Simulator,
) -> None:
    """The first connection is told 5, the next 2. The first is cut while the broker's
    answers are held (5 publishes await them): paho owes them on the next connection
    and would send them all at once. They go 2 at a time, nothing is lost."""
    with MosquittoBroker(extra_config=("max_queued_messages 0",)) as broker:
        raw = make_settings(broker, simulator, chargers=("garage", "carport"))
        client_id, prefix = raw["mqtt"]["client_id"], raw["mqtt"]["discovery_prefix"]
        proxy = CountingProxy(broker, client_id, [5, 2])
        await proxy.start()
        raw["mqtt"]["port"] = proxy.port
        running = RunningBridge(parse_settings(raw))
        session = running.bridge.mqtt
        try:
            await running.start()
            first = await _first_connection(proxy, client_id)
            await until(lambda: sum(proxy.published.values()) >= 20, "the burst under way")
            proxy.hold = True
            await until(lambda: len(first.awaiting) >= 5, "5 awaiting an answer")
            proxy.hold = False
            proxy.cut()
            await until(lambda: len(proxy.of(client_id)) >= 2, "the next connection")

            def burst_sent() -> bool:
                configs = [t for t in proxy.published if t.startswith(f"{prefix}/")]
                done = session.connected and session.backlog == 0
                return done and len(configs) >= CONFIGS

            await until(burst_sent, "the burst sent", within=60)
            async with MqttProbe(broker.host, broker.port, [f"{prefix}/#"]) as probe:
                retained = {m.topic for m in probe.messages if m.retain}
        finally:
            await running.stop()
            await proxy.stop()
    second = proxy.of(client_id)[1]
    assert proxy.exceeded == []
    assert [c.limit for c in proxy.of(client_id)[:2]] == [5, 2]
    assert second.resent >= 1  # paho sent again what the first connection left unanswered
    sent = {t for t in proxy.published if t.startswith(f"{prefix}/")}
    assert len(sent) >= CONFIGS
    assert retained == sent  # every config retained at the broker: none lost


async def test_the_chargers_connection_keeps_within_its_receive_maximum(
    broker: MosquittoBroker,
) -> None:
    """The connection that writes to chargers' own topics (mqtt/stream.py): a broker that
    says 1, twelve writes at once: one at a time, each arrives once."""
    run = uuid.uuid4().hex[:8]
    client_id = f"goe2mqtt-{run}-chargers"
    proxy = CountingProxy(broker, client_id, [1])
    await proxy.start()
    options = MqttOptions(host=broker.host, port=proxy.port, client_id=f"goe2mqtt-{run}")
    stream = StreamConnection(options, [], lambda message: None)
    running = asyncio.create_task(stream.run())
    topics = [f"go-eCharger/{run}/amp{n}/set" for n in range(12)]
    try:
        async with MqttProbe(broker.host, broker.port, [f"go-eCharger/{run}/#"]) as probe:
            await until(lambda: stream.connected, "the chargers' connection is up")
            await asyncio.gather(*(stream.publish(topic, b"16") for topic in topics))
            await until(lambda: len(probe.messages) >= len(topics), "every write arrived")
            arrived = Counter(m.topic for m in probe.messages)
    finally:
        stream.stop()
        await asyncio.gather(running, return_exceptions=True)
        await proxy.stop()
    assert proxy.exceeded == []
    assert [c.limit for c in proxy.of(client_id)] == [1]
    assert arrived == Counter(topics)


async def _first_connection(proxy: CountingProxy, client_id: str) -> Any:
    await until(lambda: bool(proxy.of(client_id)), "the session connected")
    return proxy.of(client_id)[0]
