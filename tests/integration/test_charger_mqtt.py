"""transport: mqtt - a charger that publishes to the broker itself, through a real
Mosquitto: status from its key topics, writes by {key}/set confirmed by {key}/result and
the key topic, the PV feed by ids/set, old firmware's leading slash, and availability
from how recently it was heard."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import pytest

from goe2mqtt.config.settings import parse_settings
from goe2mqtt.goe.charger_mqtt import ChargerMqttTransport
from goe2mqtt.goe.transport import ChargerOffline
from goe2mqtt.mqtt.topics import Topics
from goe2mqtt.sim.broker import MosquittoBroker
from goe2mqtt.sim.charger_mqtt import MqttCharger
from goe2mqtt.sim.simulator import SimulatedCharger
from tests.conftest import SERIALS, MqttProbe, RunningBridge, cancel, until

SERIAL = SERIALS["garage"]


@contextlib.asynccontextmanager
async def charger_on_mqtt(
    broker: MosquittoBroker, *, leading_slash: bool = False, prefix: str = "go-eCharger"
) -> AsyncIterator[MqttCharger]:
    charger = MqttCharger(
        SimulatedCharger(SERIAL), broker.host, broker.port, prefix=prefix,
        interval=0.1, republish=2.0, leading_slash=leading_slash,
    )  # fmt: skip
    task = asyncio.create_task(charger.run())
    try:
        yield charger
    finally:
        await cancel(task)


@contextlib.asynccontextmanager
async def bridge_for(
    broker: MosquittoBroker, **charger: Any
) -> AsyncIterator[tuple[Topics, MqttProbe]]:
    settings = parse_settings({
        "mqtt": {"host": broker.host, "port": broker.port,
                 "client_id": f"goe2mqtt-{id(charger):x}", "base_topic": f"g{id(charger):x}"},
        "chargers": [{"name": "garage", "serial": SERIAL, "transport": "mqtt", **charger}],
    })  # fmt: skip
    topics = Topics(settings.mqtt.base_topic)
    running = RunningBridge(settings)
    async with MqttProbe(broker.host, broker.port, [f"{topics.base}/#"]) as probe:
        await running.start()
        try:
            await probe.wait_text(topics.availability("garage"), "online")
            yield topics, probe
        finally:
            await running.stop()


async def test_state_commands_and_pv_feed_over_the_chargers_own_mqtt(
    broker: MosquittoBroker,
) -> None:
    async with charger_on_mqtt(broker) as wallbox, bridge_for(broker) as (topics, probe):
        await probe.wait_text(topics.state("garage", "connection"), "mqtt")
        wallbox.charger.plug_in()
        await probe.wait_text(topics.state("garage", "car_status"), "charging")

        result = await probe.command(topics.command("garage", "change_charging_power"), "12")
        assert result["ok"] is True, result
        assert wallbox.charger.amp == 12
        assert ("amp", "success") in wallbox.results

        # A write the charger refuses: its own reason comes back in the result.
        wallbox.charger.faults.reject_sets = True
        result = await probe.command(topics.command("garage", "change_charging_power"), "8")
        assert result["ok"] is False
        assert result["error"] == "charger refused amp (rejected (simulated))"
        wallbox.charger.faults.reject_sets = False

        await probe.publish(topics.command("garage", "pv_grid"), "-900")
        await until(lambda: wallbox.charger.ids is not None, "ids written")
        assert wallbox.charger.ids == {"pGrid": -900.0}
        await probe.wait_text(topics.state("garage", "pv_feed"), "confirmed")


async def test_an_acknowledged_write_that_did_not_apply_is_not_confirmed(
    broker: MosquittoBroker,
) -> None:
    async with charger_on_mqtt(broker) as wallbox, bridge_for(broker) as (topics, probe):
        wallbox.charger.faults.drop_sets = True
        result = await probe.command(topics.command("garage", "change_charging_power"), "9")
        assert (result["ok"], result["error"]) == (False, "not confirmed"), result


async def test_old_firmware_with_a_leading_slash_and_a_custom_prefix(
    broker: MosquittoBroker,
) -> None:
    async with (
        charger_on_mqtt(broker, leading_slash=True, prefix="wallbox") as wallbox,
        bridge_for(broker, mqtt_prefix="/wallbox") as (topics, probe),  # the old form, said
    ):
        wallbox.charger.plug_in()
        await probe.wait_text(topics.state("garage", "car_status"), "charging")
        result = await probe.command(topics.command("garage", "change_charging_power"), "7")
        assert result["ok"] is True, result
        assert wallbox.charger.amp == 7


async def test_old_firmware_not_configured_is_told_how_not_guessed(
    broker: MosquittoBroker,
) -> None:
    """The form is never learnt from what is heard (a spoofer publishing all the time
    would win it from a quiet charger): heard only in the old form, the charger is not
    served, and the reason it is offline names the setting that serves it."""
    settings = parse_settings({
        "mqtt": {"host": broker.host, "port": broker.port, "client_id": "goe2mqtt-oldform",
                 "base_topic": "oldform"},
        "chargers": [{"name": "garage", "serial": SERIAL, "transport": "mqtt",
                      "mqtt_prefix": "wallbox", "scan_interval": 1}],
    })  # fmt: skip
    running = RunningBridge(settings)
    hint = (
        f"nothing heard on wallbox/{SERIAL}/+, only on /wallbox/{SERIAL}/+: for firmware"
        " before 055.7 give mqtt_prefix with that leading slash"
    )
    async with charger_on_mqtt(broker, leading_slash=True, prefix="wallbox") as wallbox:
        await running.start()
        try:
            await until(
                lambda: (
                    "garage" in running.bridge.chargers
                    and hint in str(running.bridge.chargers["garage"].last_error)
                ),
                "the reason names the setting",
            )
            assert not running.bridge.chargers["garage"].availability.online
        finally:
            await running.stop()
    assert wallbox.results == []  # nothing was written to the form it did not choose


async def test_availability_follows_how_recently_the_charger_was_heard() -> None:
    sent: list[tuple[str, bytes]] = []

    async def send(topic: str, payload: bytes) -> None:
        sent.append((topic, payload))

    transport = ChargerMqttTransport(SERIAL, "go-eCharger", name="garage", send=send,
                                     silence=0.3)  # fmt: skip
    with pytest.raises(ChargerOffline, match="nothing heard"):
        await transport.status(())
    transport.take(f"go-eCharger/{SERIAL}/amp", b"16")
    transport.take(f"go-eCharger/{SERIAL}/fna", b"not json")  # skipped, counted
    transport.take(f"go-eCharger/{SERIAL}/car", b"[" * 60_000)  # nested past the recursion limit
    assert transport.live
    assert await transport.status(()) == {"amp": 16}
    assert transport.skipped == {"a value that is not JSON": 2}
    await until(lambda: not transport.live, "silence noticed")
    assert transport.connection == "none (mqtt: not heard for 0 s)"
    with pytest.raises(ChargerOffline, match="not heard"):
        await transport.status(())


async def test_a_configured_leading_slash_hears_only_that_form() -> None:
    """mqtt_prefix: /go-eCharger fixes the old firmware's form from the start: the
    plain form is ignored (counted), whoever publishes there first."""
    settings = parse_settings({
        "mqtt": {"host": "127.0.0.1"},
        "chargers": [{"name": "garage", "serial": SERIAL, "transport": "mqtt",
                      "mqtt_prefix": "/go-eCharger"}],
    })  # fmt: skip

    async def send(topic: str, payload: bytes) -> None:
        raise AssertionError("no write here")

    transport = ChargerMqttTransport(SERIAL, settings.chargers[0].mqtt_prefix, name="garage",
                                     send=send)  # fmt: skip
    assert transport.base == f"/go-eCharger/{SERIAL}"
    transport.take(f"go-eCharger/{SERIAL}/amp", b"32")
    transport.take(f"/go-eCharger/{SERIAL}/amp", b"16")
    assert await transport.status(()) == {"amp": 16}
    assert transport.skipped == {"a message in the other topic form": 1}
