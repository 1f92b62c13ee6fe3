"""transport: mqtt against a hostile publisher on the broker (issue 27, items 1-4, 10):
the other topic form spoofing the charger, thousands of unknown keys, a flood beside
the commands, a wrong serial. The charger is the friendly simulator; the hostile
publisher is written here."""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import AsyncIterator

import aiomqtt
import pytest
import structlog.testing

from goe2mqtt.catalogue import STATUS_KEYS
from goe2mqtt.config.settings import parse_settings
from goe2mqtt.goe.charger_mqtt import OTHER_FORM, WRONG_SERIAL, ChargerMqttTransport
from goe2mqtt.goe.transport import TransientError
from goe2mqtt.mqtt.topics import Topics
from goe2mqtt.sim.broker import MosquittoBroker
from tests.conftest import SERIALS, MqttProbe, RunningBridge, cancel, until
from tests.integration.test_charger_mqtt import charger_on_mqtt

SERIAL = SERIALS["garage"]
PLAIN = f"go-eCharger/{SERIAL}"
SLASHED = f"/go-eCharger/{SERIAL}"


@contextlib.asynccontextmanager
async def running_bridge(
    broker: MosquittoBroker, *, online: bool = True
) -> AsyncIterator[tuple[RunningBridge, Topics, MqttProbe]]:
    own = uuid.uuid4().hex[:8]  # a session of its own: nothing queued by another test
    settings = parse_settings({
        "mqtt": {"host": broker.host, "port": broker.port,
                 "client_id": f"goe2mqtt-{own}", "base_topic": f"h{own}"},
        "chargers": [{"name": "garage", "serial": SERIAL, "transport": "mqtt"}],
    })  # fmt: skip
    topics = Topics(settings.mqtt.base_topic)
    running = RunningBridge(settings, info_interval=0.3)
    async with MqttProbe(broker.host, broker.port, [f"{topics.base}/#"]) as probe:
        await running.start()
        try:
            if online:
                await probe.wait_text(topics.availability("garage"), "online")
            yield running, topics, probe
        finally:
            await running.stop()


def transport_of(running: RunningBridge) -> ChargerMqttTransport:
    transport = running.bridge.chargers["garage"].transport
    assert isinstance(transport, ChargerMqttTransport)
    return transport


def skipped(running: RunningBridge) -> dict[str, int]:
    info: dict[str, int] = running.bridge.chargers["garage"].info().get("skipped", {})
    return info


class Spoofer:
    """Poses as the charger in the leading-slash form: publishes its own values and
    answers every write it is sent with success, echoing the value."""

    def __init__(self, broker: MosquittoBroker) -> None:
        self._client = aiomqtt.Client(broker.host, broker.port, identifier="spoofer")
        self.writes: list[str] = []
        self.published = 0

    async def run(self) -> None:
        async with self._client as client:
            await client.subscribe(f"{SLASHED}/+/set", qos=1)
            answering = asyncio.create_task(self._answer(client))
            try:
                while True:
                    await client.publish(f"{SLASHED}/amp", "32")
                    await client.publish(f"{SLASHED}/car", "2")
                    self.published += 2
                    await asyncio.sleep(0.02)
            finally:
                answering.cancel()

    async def _answer(self, client: aiomqtt.Client) -> None:
        async for message in client.messages:
            key = message.topic.value.removeprefix(f"{SLASHED}/").removesuffix("/set")
            self.writes.append(key)
            payload = message.payload if isinstance(message.payload, bytes) else b""
            await client.publish(f"{SLASHED}/{key}", payload)
            await client.publish(f"{SLASHED}/{key}/result", "success")


async def test_the_other_topic_form_moves_no_value_and_takes_no_write(
    broker: MosquittoBroker,
) -> None:
    """Items 1 and 4: the form is decided once (the charger's: it spoke first), a
    spoofer in the other form is ignored, counted, and logged once; writes go to the
    charger, whose key topic confirms them."""
    spoofer = Spoofer(broker)
    with structlog.testing.capture_logs() as logs:
        async with (
            charger_on_mqtt(broker) as wallbox,
            running_bridge(broker) as (running, topics, probe),
        ):
            await probe.wait_text(topics.state("garage", "connection"), "mqtt")
            spoofing = asyncio.create_task(spoofer.run())
            try:
                await until(lambda: spoofer.published > 50, "the spoof under way")
                result = await probe.command(
                    topics.command("garage", "change_charging_power"), "20"
                )
                assert spoofer.writes == []  # the write went to the charger only
                assert result["ok"] is True, result
                assert wallbox.charger.amp == 20
                assert skipped(running).get(OTHER_FORM, 0) > 50
            finally:
                await cancel(spoofing)
            current = topics.state("garage", "charging_current")
            assert "32" not in {m.text for m in probe.messages if m.topic == current}
            assert transport_of(running).base == PLAIN
    both = [e for e in logs if e["event"] == "charger_mqtt_both_forms"]
    assert len(both) == 1, both
    assert both[0]["log_level"] == "warning"
    assert both[0]["heard"] == [f"{PLAIN}/+", f"{SLASHED}/+"]


async def test_thousands_of_unknown_keys_are_counted_not_kept(broker: MosquittoBroker) -> None:
    """Item 2: distinct unknown keys with large payloads are dropped before they are
    parsed, counted in bridge/info's skipped, logged once."""
    hostile = 3000
    payload = json.dumps("x" * 60_000).encode()
    with structlog.testing.capture_logs() as logs:
        async with (
            charger_on_mqtt(broker),
            running_bridge(broker) as (running, _topics, _probe),
            aiomqtt.Client(broker.host, broker.port, identifier="flooder") as flooder,
        ):
            before = skipped(running).get("a key goe2mqtt does not read", 0)
            for n in range(hostile):
                await flooder.publish(f"{PLAIN}/junk{n}", payload, qos=1)
            await until(
                lambda: skipped(running).get("a key goe2mqtt does not read", 0) >= before + hostile,
                "every unknown key counted",
            )
            held = transport_of(running)._status.read()
            assert set(held) <= STATUS_KEYS
            # What bridge/info publishes: the counts, and the charger still online.
            garage = running.bridge.info()["chargers"]["garage"]
            assert garage["skipped"]["a key goe2mqtt does not read"] >= before + hostile
            assert garage["online"] is True
    unknown = [e for e in logs if e.get("reason") == "a key goe2mqtt does not read"]
    assert len(unknown) == 1, unknown


async def test_a_flood_on_the_chargers_topics_crowds_out_no_command(
    broker: MosquittoBroker,
) -> None:
    """Item 3: the charger's topics are on a connection of their own; a flood there
    while 20 QoS 1 commands are sent: all 20 get their result."""
    payload = json.dumps("y" * 60_000).encode()
    async with (
        charger_on_mqtt(broker),
        running_bridge(broker) as (running, topics, probe),
        aiomqtt.Client(broker.host, broker.port, identifier="flooder") as flooder,
    ):
        await probe.wait_text(topics.state("garage", "connection"), "mqtt")

        flooded = [0]

        async def flood() -> None:
            for n in range(20_000):
                await flooder.publish(f"{PLAIN}/{('nrg', 'amp', 'car')[n % 3]}", payload)
                flooded[0] += 1

        result_topic = topics.command("garage", "result")
        mark = probe.mark()
        flooding = asyncio.create_task(flood())
        try:
            # The commands go out while the flood is in full swing, not before it.
            await until(lambda: flooded[0] >= 5000, "the flood under way", within=60)
            for n in range(20):
                payload_n = json.dumps({"charging_power": 6 + n % 10, "id": f"c{n}"})
                await probe.publish(topics.command("garage", "change_charging_power"), payload_n)
            await until(
                lambda: len(probe.since(mark, result_topic)) >= 20, "20 results", within=120
            )
        finally:
            await cancel(flooding)
        ids = sorted(m.json()["id"] for m in probe.since(mark, result_topic))
        assert ids == sorted(f"c{n}" for n in range(20))
        stream = running.bridge._own_mqtt.connection  # the charger's own connection
        assert stream is not None
        assert stream.client_id.endswith("-chargers")


async def test_a_wrong_serial_is_refused_without_a_traceback(broker: MosquittoBroker) -> None:
    """Item 10: a retained sse naming another charger, on the charger's own topic: one
    clear line, no traceback, and the charger goes online on its own values."""
    async with aiomqtt.Client(broker.host, broker.port, identifier="retainer") as client:
        await client.publish(f"{PLAIN}/sse", '"999999"', qos=1, retain=True)
    try:
        with structlog.testing.capture_logs() as logs:
            async with (
                charger_on_mqtt(broker),
                running_bridge(broker) as (running, topics, probe),
            ):
                await probe.wait_text(topics.state("garage", "connection"), "mqtt")
                await until(lambda: running.bridge.chargers["garage"].availability.online, "online")
                refusals = skipped(running).get(WRONG_SERIAL, 0)
    finally:
        async with aiomqtt.Client(broker.host, broker.port, identifier="retainer") as client:
            await client.publish(f"{PLAIN}/sse", b"", qos=1, retain=True)
    assert not [e for e in logs if "exc_info" in e or e["log_level"] == "error"], logs
    assert refusals >= 1
    refused = [e for e in logs if e.get("reason") == WRONG_SERIAL]
    assert len(refused) == 1, refused
    assert refused[0]["log_level"] == "warning"


async def test_a_write_the_broker_did_not_acknowledge_says_so(
    broker: MosquittoBroker,
) -> None:
    """Item 15 (own MQTT): a write whose PUBACK did not come in time, on a connection
    that was up, is named so; not "the broker is not connected"."""
    async with (
        charger_on_mqtt(broker) as wallbox,
        running_bridge(broker) as (running, topics, probe),
    ):
        await probe.wait_text(topics.state("garage", "connection"), "mqtt")
        stream = running.bridge._own_mqtt.connection
        assert stream is not None
        assert stream.connected
        stream.ack_timeout = 0.0  # no broker acknowledges that fast
        wallbox.charger.faults.drop_sets = True  # nor does the value change
        result = await probe.command(topics.command("garage", "change_charging_power"), "9")
        assert result["ok"] is False, result
        assert "the broker did not acknowledge the write within 0 s" in result["error"], result
        assert "not connected" not in result["error"]


async def test_a_retained_spoof_in_the_other_form_does_not_win_the_form_at_start(
    broker: MosquittoBroker,
) -> None:
    """Item 1: many retained keys in the leading-slash form, there before the bridge
    starts, do not decide the form: the charger's (plain) keys do; the spoofed values
    never reach MQTT."""
    spoof = {"amp": "32", "car": "2", "sse": f'"{SERIAL}"', "alw": "true", "frc": "2",
             "psm": "2", "acs": "1", "err": "0", "wh": "99999", "eto": "99999"}  # fmt: skip
    async with aiomqtt.Client(broker.host, broker.port, identifier="retainer") as client:
        for key, value in spoof.items():
            await client.publish(f"{SLASHED}/{key}", value, qos=1, retain=True)
    try:
        async with (
            charger_on_mqtt(broker) as wallbox,
            running_bridge(broker) as (running, topics, probe),
        ):
            await probe.wait_text(topics.state("garage", "connection"), "mqtt")
            current = topics.state("garage", "charging_current")
            await probe.wait_text(current, str(wallbox.charger.amp))
            assert "32" not in {m.text for m in probe.messages if m.topic == current}
            assert transport_of(running).base == PLAIN
    finally:
        async with aiomqtt.Client(broker.host, broker.port, identifier="retainer") as client:
            for key in spoof:
                await client.publish(f"{SLASHED}/{key}", b"", qos=1, retain=True)


async def test_the_chargers_connection_comes_back_after_a_broker_restart(
    own_broker: MosquittoBroker,
) -> None:
    """Item 3: the second connection has its own reconnect loop: after the broker
    restarted, the charger is heard and written to again."""
    async with (
        charger_on_mqtt(own_broker) as wallbox,
        running_bridge(own_broker) as (running, topics, probe),
    ):
        await probe.wait_text(topics.state("garage", "connection"), "mqtt")
        stream = running.bridge._own_mqtt.connection
        assert stream is not None
        assert stream.connections == 1
        own_broker.stop()
        await until(lambda: not stream.connected, "the connection lost")
        own_broker.start()
        await until(lambda: stream.connections == 2, "the connection back", within=30)
        await until(lambda: running.bridge.mqtt.connected, "the session back", within=30)
        heard = stream.received[0]
        await until(lambda: stream.received[0] > heard, "the charger heard again")
        async with MqttProbe(own_broker.host, own_broker.port, [f"{topics.base}/#"]) as again:
            result = await again.command(topics.command("garage", "change_charging_power"), "11")
        assert result["ok"] is True, result
        assert wallbox.charger.amp == 11


async def test_a_frozen_broker_is_named_as_one_that_did_not_acknowledge(
    own_broker: MosquittoBroker,
) -> None:
    """Item 15 (own MQTT), with a real PUBACK that never comes: the broker frozen
    (SIGSTOP), the connection still up; the write says what happened."""
    async with (
        charger_on_mqtt(own_broker),
        running_bridge(own_broker) as (running, topics, probe),
    ):
        await probe.wait_text(topics.state("garage", "connection"), "mqtt")
        stream = running.bridge._own_mqtt.connection
        assert stream is not None
        stream.ack_timeout = 1.0
        own_broker.pause()
        try:
            with pytest.raises(TransientError) as caught:
                await transport_of(running).set({"amp": 10})
        finally:
            own_broker.resume()
        assert "the broker did not acknowledge the write within 1 s" in str(caught.value)
        assert "not connected" not in str(caught.value)
