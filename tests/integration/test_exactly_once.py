"""Each command's result reaches a subscriber exactly once, also when the connection, the
broker or both die while the result is being published (issue 28, item 4).

Between the bridge and Mosquitto sits tests/mqtt_proxy.py: it lets the result's PUBLISH
reach the broker and holds the broker's answer (PUBACK/PUBREC, or the PUBCOMP after our
PUBREL). The broker has taken the result; the bridge does not know. Then the connection is
cut, the broker frozen, restarted (persistence on) or killed. An independent subscriber
(QoS 2, a session of its own that outlives broker restarts) counts the results by id: the
first command's exactly once, and a second command's after it (results go out in order,
so a repeat of the first would come before it).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import uuid
from collections.abc import AsyncIterator
from typing import Any, NamedTuple

import aiomqtt
import pytest
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from goe2mqtt.config.settings import parse_settings
from goe2mqtt.mqtt.topics import Topics
from goe2mqtt.sim.broker import MosquittoBroker
from goe2mqtt.sim.simulator import Simulator

from ..conftest import (
    PROCESS_WAIT,
    WAIT,
    Daemon,
    MqttProbe,
    RunningBridge,
    make_settings,
    until,
    write_config,
)
from ..mqtt_proxy import HoldingProxy


class _Client(aiomqtt.Client):
    """aiomqtt's client, entered again after a lost connection: it must wait for the
    new CONNACK (aiomqtt keeps the old "connected" future)."""

    async def __aenter__(self) -> _Client:
        if self._connected.done():
            self._connected = asyncio.Future()
        await super().__aenter__()
        return self


class ResultListener:
    """Node-RED or Home Assistant: subscribed to the result topic at QoS 2 with a session
    that outlives a broker restart, one client object throughout (paho keeps the QoS 2
    state of messages coming in there)."""

    def __init__(self, broker: MosquittoBroker, topic: str) -> None:
        properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        properties.SessionExpiryInterval = 600
        self._client = _Client(
            broker.host, broker.port, identifier=f"listener-{uuid.uuid4().hex[:8]}",
            protocol=aiomqtt.ProtocolVersion.V5, clean_start=False, properties=properties,
        )  # fmt: skip
        self._topic = topic
        self.ids: list[str] = []
        self.subscribed = 0  # connections on which it has subscribed

    async def run(self) -> None:
        while True:
            try:
                async with self._client:
                    await self._client.subscribe(self._topic, qos=2)
                    self.subscribed += 1
                    async for message in self._client.messages:
                        assert isinstance(message.payload, bytes)
                        self.ids.append(str(json.loads(message.payload).get("id")))
            except aiomqtt.MqttError:
                await asyncio.sleep(0.1)  # the broker is away: try again


async def send_command(broker: MosquittoBroker, topic: str, payload: dict[str, Any]) -> None:
    async with MqttProbe(broker.host, broker.port, []) as probe:
        await probe.publish(topic, json.dumps(payload))


class Held(NamedTuple):
    """A broker with persistence, the proxy in front of it and the listener behind it."""

    broker: MosquittoBroker
    raw: dict[str, Any]  # the bridge's settings: its MQTT goes through the proxy
    topics: Topics
    proxy: HoldingProxy
    listener: ResultListener


@contextlib.asynccontextmanager
async def held_results(simulator: Simulator, phase: str) -> AsyncIterator[Held]:
    """The proxy holds the broker's ``phase`` answer to the garage's result; the
    listener counts the results from the start to the end of the block."""
    with MosquittoBroker(persistence=True) as broker:
        raw = make_settings(broker, simulator)
        topics = Topics(raw["mqtt"]["base_topic"])
        result_topic = topics.result("garage")
        proxy = HoldingProxy(broker.host, broker.port, result_topic, phase)
        await proxy.start()
        raw["mqtt"]["port"] = proxy.port
        listener = ResultListener(broker, result_topic)
        listening = asyncio.create_task(listener.run())
        try:
            yield Held(broker, raw, topics, proxy, listener)
        finally:
            listening.cancel()
            await asyncio.gather(listening, return_exceptions=True)
            await proxy.stop()


CASES = [
    # (protocol, what happens while the broker's answer is held, which answer)
    ("5", "cut", "ack"),  # the network dies: the broker took the result, the PUBREC is lost
    ("5", "freeze", "ack"),  # SIGSTOP: the bridge gives up on it, then the broker thaws
    ("5", "restart", "ack"),  # SIGTERM + start, persistence on: the session survives
    ("5", "kill", "ack"),  # SIGKILL + start: the broker forgot everything
    ("5", "kill", "pubrel"),  # ... while it held the result for our PUBREL: sent anew
    ("5", "cut", "pubcomp"),  # the PUBREL went through, the PUBCOMP is lost
    ("5", "restart", "pubcomp"),
    ("3.1.1", "freeze", "ack"),
    ("3.1.1", "restart", "ack"),
    ("3.1.1", "restart", "pubcomp"),
]


@pytest.mark.parametrize(("protocol", "event", "phase"), CASES)
async def test_a_result_in_flight_reaches_a_subscriber_once(
    simulator: Simulator, tmp_path: Any, protocol: str, event: str, phase: str
) -> None:
    ids = await _result_in_flight(simulator, tmp_path, protocol, event, phase)
    assert ids == ["first", "second"]


async def test_a_broker_that_forgot_our_session_after_handing_a_result_on_may_repeat_it(
    simulator: Simulator, tmp_path: Any
) -> None:
    """The README's one exception: the broker handed the result on (our PUBREL went
    through), then died before saving and lost our session. Whether it had handed it on
    cannot be told, so it is published again: at worst twice, never lost."""
    ids = await _result_in_flight(simulator, tmp_path, "5", "kill", "pubcomp")
    assert ids[-1] == "second"
    assert ids.count("first") in (1, 2)  # 1 when the broker died before the listener had it


async def _result_in_flight(
    simulator: Simulator, tmp_path: Any, protocol: str, event: str, phase: str
) -> list[str]:
    async with held_results(simulator, phase) as (broker, raw, topics, proxy, listener):
        raw["mqtt"].update(protocol=protocol, keepalive=6)
        raw["state_dir"] = str(tmp_path)
        running = RunningBridge(parse_settings(raw))
        session = running.bridge.mqtt
        session.ack_timeout = 2.0  # a frozen broker is given up on after this
        await running.start()
        command = topics.command("garage", "change_charging_power")
        try:
            await until(lambda: session.connected and listener.subscribed > 0, "connected")
            proxy.armed = True
            await send_command(broker, command, {"charging_power": 10, "id": "first"})
            await asyncio.wait_for(proxy.held.wait(), WAIT)  # the broker took it
            if event == "cut":
                proxy.cut()
            elif event == "freeze":
                broker.pause()
                await until(lambda: not session.connected, "the frozen broker noticed")
                broker.resume()
            else:
                proxy.accepting = False  # the bridge comes back after the broker did
                proxy.cut()
                subscribed = listener.subscribed
                if event == "restart":
                    await asyncio.to_thread(broker.restart)
                else:
                    await asyncio.to_thread(broker.kill)
                    await asyncio.to_thread(broker.start)
                # A broker that forgot everything forgot the listener too: it subscribes
                # again before the bridge is back (else it misses the result, as a
                # subscriber of a broker without persistence does).
                await until(lambda: listener.subscribed > subscribed, "the listener is back")
                proxy.accepting = True
            await until(lambda: session.connected, "the bridge is back", within=20)
            await send_command(broker, command, {"charging_power": 11, "id": "second"})
            await until(lambda: "second" in listener.ids, "the second result", within=20)
            journal = running.bridge.desk.journal
            await until(lambda: journal.count() == {"published": 2}, "both taken as published")
        finally:
            await running.stop()
    return listener.ids


@pytest.mark.parametrize("phase", ["ack", "pubrel", "pubcomp"])
async def test_a_result_in_flight_when_the_bridge_is_killed_reaches_a_subscriber_once(
    simulator: Simulator, tmp_path: Any, phase: str
) -> None:
    """kill -9 while the result is on its way: the broker took it and its PUBREC is lost
    (the next process publishes it again: the broker drops the copy it never handed on);
    the bridge noted the PUBREC but its PUBREL never left, or the PUBREL left and the
    PUBCOMP is lost (the next process sends only the PUBREL: released once, or "done")."""
    async with held_results(simulator, phase) as (broker, raw, topics, proxy, listener):
        raw["state_dir"] = str(tmp_path / "state")
        config = write_config(tmp_path, raw)
        command = topics.command("garage", "change_charging_power")
        first, second = Daemon(config), Daemon(config)
        try:
            async with MqttProbe(broker.host, broker.port, [topics.bridge_availability]) as probe:
                await first.start()  # a process: its start is CPU a loaded machine shares
                await probe.wait_text(topics.bridge_availability, "online", within=PROCESS_WAIT)
                await until(lambda: listener.subscribed > 0, "the listener subscribed")
                proxy.armed = True
                await send_command(broker, command, {"charging_power": 10, "id": "first"})
                await asyncio.wait_for(proxy.held.wait(), WAIT)
                assert await first.end(signal.SIGKILL) == -signal.SIGKILL
                mark = probe.mark()
                await second.start()
                await probe.wait_text(
                    topics.bridge_availability, "online", since=mark, within=PROCESS_WAIT
                )
            await send_command(broker, command, {"charging_power": 11, "id": "second"})
            await until(lambda: "second" in listener.ids, "the second result", within=20)
            assert await second.end(signal.SIGTERM) == 0
        finally:
            for daemon in (first, second):
                if daemon.running:
                    await daemon.end(signal.SIGKILL)
    assert listener.ids == ["first", "second"]


async def test_a_result_comes_after_the_confirmed_state_under_a_flood_of_states(
    simulator: Simulator, tmp_path: Any
) -> None:
    """States go through the retained sender (newest per topic, a window of 16), results
    by themselves: with thousands of states queued, the result must still come after
    the state it reports, never overtake it."""
    # Mosquitto drops what a slow subscriber has not taken beyond 1000 queued messages:
    # the probe must see every one of the flood.
    with MosquittoBroker(extra_config=("max_queued_messages 0",)) as broker:
        await _flood_then_command(broker, simulator, tmp_path)


async def _flood_then_command(broker: MosquittoBroker, simulator: Simulator, tmp_path: Any) -> None:
    raw = make_settings(broker, simulator)
    raw["state_dir"] = str(tmp_path)
    topics = Topics(raw["mqtt"]["base_topic"])
    current = topics.state("garage", "charging_current")
    running = RunningBridge(parse_settings(raw))
    await running.start()
    session = running.bridge.mqtt
    try:
        async with MqttProbe(broker.host, broker.port, [f"{topics.base}/#"]) as probe:
            await probe.wait_text(current, "16")  # the simulator's charger starts at 16 A
            await until(lambda: session.backlog == 0, "the start-up publishes are out")
            mark = probe.mark()
            for n in range(5000):  # a flood of states, queued before the command
                await session.publish_retained(f"{topics.base}/flood/{n}", str(n))
            await probe.publish(
                topics.command("garage", "change_charging_power"),
                json.dumps({"charging_power": 10, "id": "ordered"}),
            )
            await probe.wait_for(topics.result("garage"), since=mark, within=30)
            flood = f"{topics.base}/flood/"

            def flood_seen() -> int:
                return len({m.topic for m in probe.since(mark) if m.topic.startswith(flood)})

            await until(lambda: flood_seen() == 5000, "the flood has arrived", within=30)
            seen = [m.topic for m in probe.since(mark)]
            state_at = [n for n, m in enumerate(probe.since(mark)) if m.topic == current]
        result_at = seen.index(topics.result("garage"))
        for n in range(0, 5000, 499):  # every state queued before the command is out first
            assert seen.index(f"{topics.base}/flood/{n}") < result_at
        assert state_at, "the confirmed state never came"
        assert state_at[0] < result_at, "the result overtook the state it reports"
    finally:
        await running.stop()
