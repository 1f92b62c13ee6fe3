"""One broker, several goe2mqtt: the demo, a real bridge, a second copy by mistake."""

from __future__ import annotations

import asyncio
import io
import logging
from typing import Any

import aiomqtt
import pytest
import structlog

from goe2mqtt.bridge.startup import AnotherInstance
from goe2mqtt.config.settings import parse_settings
from goe2mqtt.mqtt.topics import Topics
from goe2mqtt.sim.broker import MosquittoBroker
from goe2mqtt.sim.demo import DEMO_BASE, DEMO_DISCOVERY_PREFIX, clean_up, run_demo
from goe2mqtt.sim.simulator import Simulator

from ..conftest import MqttProbe, RunningBridge, Setup, cancel, make_settings, until


async def _retained(broker: MosquittoBroker, *filters: str) -> dict[str, bytes]:
    """What a newcomer to the broker would see: every retained message under the filters."""
    found: dict[str, bytes] = {}
    async with aiomqtt.Client(broker.host, broker.port) as client:
        for topic in filters:
            await client.subscribe(topic)
        try:
            async with asyncio.timeout(1.0):
                async for message in client.messages:
                    if message.retain and isinstance(message.payload, bytes):
                        found[message.topic.value] = message.payload
        except TimeoutError:
            pass
    return found


async def test_the_demo_beside_a_real_bridge_leaves_it_alone(
    own_broker: MosquittoBroker, simulator: Simulator
) -> None:
    raw: dict[str, Any] = make_settings(own_broker, simulator, scan_interval=0.5)
    # The real installation uses the defaults and a charger named like the demo's.
    raw["mqtt"].update(base_topic="goe2mqtt", discovery_prefix="homeassistant")
    settings = parse_settings(raw)
    topics = Topics("goe2mqtt")
    garage = simulator.charger("012345")
    running = RunningBridge(settings)
    await running.start()
    try:
        async with MqttProbe(own_broker.host, own_broker.port, ["goe2mqtt/#"]) as probe:
            await probe.wait_text(topics.availability("garage"), "online")
        before = await _retained(own_broker, "goe2mqtt/#", "homeassistant/#")
        out = io.StringIO()
        await run_demo(
            mqtt_host=own_broker.host, mqtt_port=own_broker.port, duration=7, out=out, pace=0.15
        )
        assert "--- removed the demo's" in out.getvalue()
        after = await _retained(own_broker, "goe2mqtt/#", "homeassistant/#")
        demo_left = await _retained(own_broker, f"{DEMO_BASE}/#", f"{DEMO_DISCOVERY_PREFIX}/#")
        assert running.bridge.mqtt.connected
    finally:
        await running.stop()
    assert garage.set_calls == []  # the demo's commands never reached the real charger
    assert after[topics.bridge_availability] == b"online"
    assert after[topics.availability("garage")] == b"online"
    config_topics = {t for t in before if t.startswith("homeassistant/")}
    assert len(config_topics) > 20
    assert config_topics <= after.keys()  # no real discovery config was cleared
    assert demo_left == {}  # and the demo took its own devices and values away


async def test_the_demos_clean_up_of_a_broker_warns_of_nothing(
    own_broker: MosquittoBroker, caplog: pytest.LogCaptureFixture
) -> None:
    """--mqtt-host: the demo clears its ~540 retained messages at once at the end, which
    aiomqtt warned of one line per publish past 10 (529 'pending publish calls' lines)."""
    async with aiomqtt.Client(own_broker.host, own_broker.port) as client:
        for n in range(60):
            await client.publish(f"{DEMO_BASE}/garage/value_{n}", b"1", qos=1, retain=True)
    with caplog.at_level(logging.WARNING):
        cleared = await clean_up(own_broker.host, own_broker.port, "5")
    assert cleared == 60
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []
    assert await _retained(own_broker, f"{DEMO_BASE}/#") == {}


async def test_a_bridge_says_online_again_when_its_availability_is_overwritten(
    setup: Setup, probe: MqttProbe, bridge: RunningBridge
) -> None:
    with structlog.testing.capture_logs() as logs:
        mark = probe.mark()
        await probe.publish(setup.topics.bridge_availability, "offline", retain=True)
        await probe.wait_text(setup.topics.bridge_availability, "offline", since=mark)
        await probe.wait_text(setup.topics.bridge_availability, "online", since=mark + 1)
    assert [e["payload"] for e in logs if e["event"] == "availability_overwritten"] == ["offline"]


async def test_a_second_live_instance_on_the_same_topics_refuses_to_start(
    broker: MosquittoBroker, simulator: Simulator
) -> None:
    raw = make_settings(broker, simulator, scan_interval=60)
    raw["mqtt"]["keepalive"] = 10  # its heartbeat (bridge info) every 5 s
    first = RunningBridge(parse_settings(raw))
    await first.start()
    try:
        topics = Topics(raw["mqtt"]["base_topic"])
        async with MqttProbe(broker.host, broker.port, [f"{topics.base}/#"]) as probe:
            await probe.wait_text(topics.bridge_availability, "online")
        # Another machine (its own journal), even another client id: same topics.
        raw["mqtt"]["client_id"] += "-copy"
        second = RunningBridge(parse_settings(raw))
        with pytest.raises(AnotherInstance, match="another goe2mqtt is live on"):
            await second.bridge.run()
    finally:
        await first.stop()
    # Once the first is gone, the topics are free again.
    again = RunningBridge(parse_settings(raw))
    await again.start()
    await until(lambda: again.bridge.mqtt.connected, "the second one connected")
    await again.stop()


async def test_a_client_id_used_twice_is_named_as_the_cause_and_the_fight_slows(
    broker: MosquittoBroker, simulator: Simulator
) -> None:
    """Mosquitto's takeover reaches us as a reset, not as reason 142: the pattern tells."""
    settings = parse_settings(make_settings(broker, simulator, scan_interval=60))
    running = RunningBridge(settings)
    await running.start()
    await until(lambda: running.bridge.mqtt.connected, "connected")

    async def intruder() -> None:  # a copy of the bridge with the same client_id
        while True:
            try:
                async with aiomqtt.Client(
                    broker.host, broker.port, identifier=settings.mqtt.client_id,
                    protocol=aiomqtt.ProtocolVersion.V5,
                ):  # fmt: skip
                    await asyncio.sleep(0.3)
            except aiomqtt.MqttError:
                await asyncio.sleep(0.1)

    with structlog.testing.capture_logs() as logs:
        task = asyncio.create_task(intruder())
        try:
            await until(
                lambda: any(e["event"] == "mqtt_flapping" for e in logs), "named", within=30
            )
        finally:
            await cancel(task)  # aiomqtt may swallow one cancel
            await running.stop()
    flapping = next(e for e in logs if e["event"] == "mqtt_flapping")
    assert settings.mqtt.client_id in flapping["hint"]
    assert flapping["retry_in"] == 30.0


async def test_an_availability_overwritten_in_a_loop_is_said_again_and_logged_once(
    setup: Setup, probe: MqttProbe, bridge: RunningBridge
) -> None:
    topic = setup.topics.bridge_availability

    def said() -> list[str]:
        return [m.text for m in probe.since(mark, topic)]

    with structlog.testing.capture_logs() as logs:
        mark = probe.mark()
        for _ in range(50):  # someone's flow doing it in a loop
            await probe.publish(topic, "offline", retain=True)
        await until(
            lambda: said().count("offline") == 50 and said()[-1] == "online",
            "online said again after the last overwrite",
        )
    warnings = [e for e in logs if e["event"] == "availability_overwritten"]
    assert len(warnings) == 1, warnings  # not a line per message
